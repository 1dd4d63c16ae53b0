"""dir-create, git-init and readme-create: the pieces of a project folder (also `ds01 dir|git|readme ...`).

There are deliberately no `dir`, `git` or `readme` dispatcher scripts: they would shadow coreutils' `dir`
and git itself. The root app mounts them as `ds01 dir create`, `ds01 git init`, `ds01 readme create`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ds01.cli.common import JsonOpt, UserOpt, handle_errors, new_app, stdin_is_tty
from ds01.errors import UsageError

if TYPE_CHECKING:
    from ds01.output import Output
    from ds01.project.files import Created

NameArg = Annotated[str | None, typer.Argument(metavar="NAME", help="The project name.", show_default=False)]

dir_app = new_app("dir", "Project folders.")
git_app = new_app("git", "Git for a project folder.")
readme_app = new_app("readme", "A project's README.")


def _name(out: Output, name: str | None, command: str) -> str:
    from ds01 import naming

    if not name:
        if not stdin_is_tty():
            raise UsageError(
                f"missing argument NAME for {command}",
                hint=f"pass it, e.g. `{command} my-thesis` (no terminal to ask on)",
            )
        from rich.prompt import Prompt

        name = Prompt.ask("Name (e.g. my-thesis)", console=out.err_console).strip()
    return naming.normalise_name(name)


def run_in_workspace(
    name: str | None,
    command: str,
    json_out: bool,
    user: str | None,
    work: Callable[[Path], Created] | None,
) -> tuple[Output, Created]:
    """ds01d makes (or finds) the workspace; then `work` (if any) fills it in as its owner."""
    from ds01.cli.common import connect
    from ds01.project import files

    client = connect(json_out)
    project = _name(client.out, name, command)
    workspace, created = files.request_workspace(client, project, user)
    result = (
        files.Created(workspace)
        if work is None
        else files.as_owner(
            files.owner_uid(user), lambda: work(workspace), files.Created.as_dict, files.Created.from_dict
        )
    )
    if created:
        result.dirs.insert(0, workspace)
    return client.out, result


def _report(out: Output, created: Created, what: str) -> None:
    if out.json_mode:
        out.json({**created.as_dict(), "changed": created.changed})
        return
    for d in created.dirs:
        out.info(f"created {d}/")
    for f in created.files:
        out.info(f"wrote {f}")
    for note in created.notes:
        out.info(note)
    if created.changed:
        out.success(f"{what} in {created.workspace}")
    else:
        out.say(f"nothing to do: {what} already in {created.workspace}")


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
    from ds01.project.files import check_kind, create_dirs

    check_kind(kind)
    work = None if kind == "blank" else (lambda ws: create_dirs(ws, kind))  # blank: the folder is all
    out, made = run_in_workspace(name, "dir-create", json_out, user, work)
    _report(out, made, "project folders")


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
    from ds01.project.files import check_kind
    from ds01.project.git import check_git, init_git

    check_kind(kind)
    check_git()
    out, made = run_in_workspace(name, "git-init", json_out, user, lambda ws: init_git(ws, kind=kind))
    _report(out, made, "git repository")


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
    from ds01.project.files import create_readme

    def work(ws: Path) -> Created:
        return create_readme(ws, ws.name, project_type=project_type, description=description)

    out, made = run_in_workspace(name, "readme-create", json_out, user, work)
    _report(out, made, "README")
