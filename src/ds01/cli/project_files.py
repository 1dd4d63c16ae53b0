"""dir-create, git-init and readme-create: the pieces of a project folder (also `ds01 dir|git|readme ...`).

There are deliberately no `dir`, `git` or `readme` dispatcher scripts: they would shadow coreutils' `dir`
and git itself. The root app mounts them as `ds01 dir create`, `ds01 git init`, `ds01 readme create`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ds01.cli.common import JsonOpt, UserOpt, handle_errors, new_app

if TYPE_CHECKING:
    from ds01.atomic.project_files import Created
    from ds01.context import Context

NameArg = Annotated[str | None, typer.Argument(metavar="NAME", help="The project name.", show_default=False)]

dir_app = new_app("dir", "Project folders.")
git_app = new_app("git", "Git for a project folder.")
readme_app = new_app("readme", "A project's README.")


def _start(name: str | None, command: str, json_out: bool, user: str | None) -> tuple[Context, str]:
    from ds01 import naming
    from ds01.cli.select import new_name
    from ds01.context import Context

    ctx = Context.load(json_mode=json_out)
    return ctx, naming.normalise_name(new_name(ctx, name, command=command))


def _report(ctx: Context, created: Created, what: str) -> None:
    if ctx.out.json_mode:
        ctx.out.json({**created.as_dict(), "changed": created.changed})
        return
    for d in created.dirs:
        ctx.out.info(f"created {d}/")
    for f in created.files:
        ctx.out.info(f"wrote {f}")
    for note in created.notes:
        ctx.out.info(note)
    if created.changed:
        ctx.out.success(f"{what} in {created.workspace}")
    else:
        ctx.out.say(f"nothing to do: {what} already in {created.workspace}")


@dir_app.command("create")
@handle_errors
def dir_create(
    name: NameArg = None,
    kind: Annotated[
        str,
        typer.Option(
            "--type", help="data-science (data/raw, notebooks, src, models, results, ...) or blank."
        ),
    ] = "data-science",
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create the project's workspace folder and, for data-science, its standard layout.

    Idempotent: existing folders and files are left as they are.

    Examples:
      dir-create thesis
      dir-create scratch --type blank
    """
    from ds01.atomic.project_files import create_dirs

    ctx, project = _start(name, "dir-create", json_out, user)
    _report(ctx, create_dirs(ctx, ctx.target_user(user), project, kind), "project folders")


@git_app.command("init")
@handle_errors
def git_init(
    name: NameArg = None,
    kind: Annotated[
        str, typer.Option("--type", help="data-science (data, models and results stay out of git) or blank.")
    ] = "data-science",
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Make the project a git repository: .gitignore for data, models and caches; git-lfs for model files
    when git-lfs is installed; your name and e-mail from your account unless git already knows them.

    Idempotent: an existing repository, .gitignore or .gitattributes is left as it is.

    Examples:
      git-init thesis
      git-init scratch --type blank
    """
    from ds01.atomic.project_files import init_git

    ctx, project = _start(name, "git-init", json_out, user)
    _report(ctx, init_git(ctx, ctx.target_user(user), project, kind=kind), "git repository")


@readme_app.command("create")
@handle_errors
def readme_create(
    name: NameArg = None,
    project_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            help="data-science (with a layout section) or blank; a project type (nlp, ...) is the title.",
        ),
    ] = None,
    description: Annotated[
        str | None, typer.Option("--description", "-d", help="One or two sentences.")
    ] = None,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a starter README.md for the project (never replaces an existing one).

    Examples:
      readme-create thesis --description "Fine-tuning a small LLM on court rulings."
    """
    from ds01.atomic.project_files import create_readme

    ctx, project = _start(name, "readme-create", json_out, user)
    owner = ctx.target_user(user)
    _report(
        ctx, create_readme(ctx, owner, project, project_type=project_type, description=description), "README"
    )
