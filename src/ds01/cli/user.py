"""The `user` group (L4): `user-setup`; also `user setup` and `ds01 user setup`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ds01.cli.common import JsonOpt, UserOpt, handle_errors, new_app, stdin_is_tty

if TYPE_CHECKING:
    from ds01.context import Context
    from ds01.wizards.user_setup import SetupResult

app = new_app("user", "Onboarding and your account.")


def _render(ctx: Context, result: SetupResult, detailed_ssh: bool) -> None:
    from ds01.wizards.user_setup import vscode_steps

    out = ctx.out
    out.success(f"the Docker engine answers ({result.engine}) and you may use it through ds01")
    out.success(f"your projects live in {result.workspace_root}")
    out.say("\n[bold]What you may use[/bold]")
    out.table(("", ""), list(result.limits.items()), header=False)
    out.say("\n[bold]Connecting from your laptop[/bold] (put this in ~/.ssh/config there):")
    out.say(result.ssh_block)
    alias = result.ssh_block.split()[1]
    steps = vscode_steps(alias) if detailed_ssh else vscode_steps(alias)[2:4]
    for i, step in enumerate(steps, 1):
        out.say(f"  {i}. {step}")
    out.say(f"\nYour quick reference: {result.quickstart}")


@app.command("setup")
@handle_errors
def setup(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="No questions: sensible defaults.")] = False,
    experience: Annotated[
        str | None, typer.Option("--experience", help="new, some or expert (answers all three questions).")
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", help="Create and launch this first project too.")
    ] = None,
    no_project: Annotated[bool, typer.Option("--no-project", help="Do not offer a first project.")] = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Get started: checks your access, shows your limits, how to connect, and offers a first project.

    Running it again on a set-up account is quick and says so.

    Examples:
      user-setup
      user-setup --yes
      user-setup --experience new --project my-first-project
    """
    from ds01.cli.project import run_init
    from ds01.context import Context
    from ds01.errors import UsageError
    from ds01.wizards.prompts import prompter_for
    from ds01.wizards.user_setup import LEVELS, Experience, ask_experience, ask_first_project, setup_user

    if experience is not None and experience not in LEVELS:
        raise UsageError(f"unknown experience {experience!r}", hint=f"use one of {', '.join(LEVELS)}")
    ctx = Context.load(json_mode=json_out)
    owner = ctx.target_user(user)
    prompter = prompter_for(yes=yes, tty=stdin_is_tty() and not json_out)
    given = Experience(experience, experience, experience) if experience else None
    from ds01.atomic import user_files
    from ds01.wizards.user_setup import QUICKSTART

    if user_files.exists(owner, owner.home / QUICKSTART) and given is None:
        exp = Experience()  # set up before: no questions
    else:
        exp = ask_experience(prompter, given)
    result = setup_user(ctx, owner, exp, say=ctx.out.say)
    if json_out:
        ctx.out.json(result.as_dict())
        return
    if result.already_set_up:
        ctx.out.success(f"{owner.name} is set up already; quick reference: {result.quickstart}")
        ctx.out.say("[dim]next:[/dim] project-launch (pick a project)   ·   check-limits")
        return
    _render(ctx, result, detailed_ssh=exp.new_to("ssh"))
    if no_project:
        return
    wanted = ask_first_project(prompter, project)
    if not wanted:
        ctx.out.say("[dim]next:[/dim] project-init my-thesis   then   project-launch my-thesis --open")
        return
    from ds01.cli.image import _views
    from ds01.cli.orchestration import present
    from ds01.wizards.project_launch import launch_project

    name = run_init(ctx, owner, prompter, wanted, guided=exp.new_to("containers"))
    launched = launch_project(ctx, owner, name, make_view=_views(ctx))
    raise typer.Exit(present(ctx, launched.deployment, open_=False, background=yes or not stdin_is_tty()))
