"""The `user` group (L4): `user-setup`; also `user setup` and `ds01 user setup`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ds01.cli.common import JsonOpt, UserOpt, handle_errors, new_app, stdin_is_tty

if TYPE_CHECKING:
    from ds01.output import Output
    from ds01.wizards.user_setup import SetupResult

app = new_app("user", "Onboarding and your account.")


def _render(out: Output, result: SetupResult, detailed_ssh: bool) -> None:
    from ds01.wizards.user_setup import vscode_steps

    out.success(f"ds01 answers ({result.engine}): you may use it, no special group needed")
    out.success(f"your projects live in {result.workspace_root}")
    _render_link(out, result)
    out.say("\n[bold]What you may use[/bold]")
    out.table(("", ""), list(result.limits.items()), header=False)
    out.say("\n[bold]Connecting from your laptop[/bold] (put this in ~/.ssh/config there):")
    out.say(result.ssh_block)
    alias = result.ssh_block.split()[1]
    steps = vscode_steps(alias) if detailed_ssh else vscode_steps(alias)[2:]
    for i, step in enumerate(steps, 1):
        out.say(f"  {i}. {step}")
    out.say(f"\nYour quick reference: {result.quickstart}")


def _render_link(out: Output, result: SetupResult) -> None:
    if result.link_advice:
        out.warn(result.link)
        out.hint(result.link_advice)
    else:
        out.info(result.link)


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
    from ds01.cli.common import connect
    from ds01.cli.project import run_init
    from ds01.errors import UsageError
    from ds01.wizards.prompts import prompter_for
    from ds01.wizards.user_setup import (
        LEVELS,
        Experience,
        ask_experience,
        ask_first_project,
        is_set_up,
        setup_user,
    )

    if experience is not None and experience not in LEVELS:
        raise UsageError(f"unknown experience {experience!r}", hint=f"use one of {', '.join(LEVELS)}")
    if project is not None:  # checked before anything is set up, even when it is not needed after all
        from ds01.naming import normalise_name

        project = normalise_name(project)
    client = connect(json_out)
    out = client.out
    prompter = prompter_for(yes=yes, tty=stdin_is_tty() and not json_out)
    given = Experience(experience, experience, experience) if experience else None
    set_up = given is None and is_set_up(user)
    exp = Experience() if set_up else ask_experience(prompter, given)  # set up before: no questions
    result = setup_user(client, exp, user=user, say=out.say)
    if json_out:
        out.json(result.as_dict())
        return
    if result.already_set_up:
        out.success(f"{result.user} is set up already; quick reference: {result.quickstart}")
        _render_link(out, result)
        out.say("[dim]next:[/dim] project-launch (pick a project)   ·   check-limits")
        return
    _render(out, result, detailed_ssh=exp.new_to("ssh"))
    if no_project:
        return
    wanted = ask_first_project(prompter, project)
    if not wanted:
        out.say("[dim]next:[/dim] project-init my-thesis   then   project-launch my-thesis --open")
        return
    from ds01.cli.orchestration import present
    from ds01.wizards.project_launch import launch_project

    name = run_init(client, prompter, wanted, user=user, guided=exp.new_to("containers"))
    launched = launch_project(client, name, user=user)
    raise typer.Exit(
        present(client, launched.deployment, open_=False, background=yes or not stdin_is_tty(), user=user)
    )
