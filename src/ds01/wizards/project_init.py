"""`project-init`: a project's workspace, recipe and git history in one go, teaching as it goes.

ds01d makes the workspace (`POST /v1/workspaces`); everything in it is written here, as the user: the
dir-create layout, `pyproject.toml` with a `[tool.ds01]` table, `requirements.txt`, the Dockerfile
(image-create's recipe writer, from the catalogue ds01d serves), the README, a VS Code dev container when
asked, and git. On an existing project it adds only what is missing and never overwrites a user's file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ds01 import naming
from ds01.project import files
from ds01.project.catalogue import Availability, Catalogue
from ds01.wizards.prompts import Choice, Prompter

Say = Callable[[str], None]
DOCKERFILE = "Dockerfile"

EXPLAIN = {
    "workspace": "Your workspace is the hard drive that stays: every container of this project sees it at "
    "/workspace, and nothing ds01 does ever deletes it.",
    "image": "The image is the recipe (the Dockerfile in your workspace): the software your project needs. "
    "Change the recipe, rebuild, and every new container has it.",
    "container": "A container is a laptop you can hand back: start one when you work, retire it when you "
    "are done. Your files stay in the workspace.",
}


@dataclass(frozen=True)
class InitRequest:
    name: str
    project_type: str | None = None
    framework: str | None = None
    description: str | None = None
    git: bool = True
    devcontainer: bool | None = None
    gpus: int | None = None


@dataclass
class InitResult:
    name: str
    workspace: Path
    project_type: str
    framework: str
    image: str
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    committed: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "workspace": str(self.workspace),
            "type": self.project_type,
            "framework": self.framework,
            "image": self.image,
            "created": self.created,
            "kept": self.kept,
            "committed": self.committed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InitResult:
        return cls(
            data["name"], Path(data["workspace"]), data["type"], data["framework"], data["image"],
            list(data["created"]), list(data["kept"]), bool(data["committed"]),
        )  # fmt: skip


def fetch_catalogue(client: Any) -> Catalogue:
    """The image catalogue as ds01d serves it (the client never reads the config)."""
    from ds01.project.build import fetch_catalogue as fetch

    return fetch(client)


def fetch_bases(client: Any) -> Availability | None:
    """What this server can build from (`GET /v1/catalogue/bases`); None from a ds01d that does not say."""
    from ds01.client import path_of
    from ds01.errors import NotFound
    from ds01.project.catalogue import availability_from_json

    try:
        return availability_from_json(client.call("GET", path_of("catalogue", "bases")))
    except NotFound:
        return None


def _downloads(catalogue: Catalogue, project_type: str) -> bool:
    return any(catalogue.packages(project_type))


def ask_type(
    req: InitRequest, catalogue: Catalogue, prompter: Prompter, bases: Availability | None, say: Say
) -> str:
    """Builds with no network cannot install packages: offer the types that download none first."""
    offline = bases is not None and not bases.packages_reachable
    if req.project_type:
        if offline and _downloads(catalogue, req.project_type):
            say(
                "Note: builds on this server have no network (images.build_network: none), so the packages "
                f"of type {req.project_type} cannot be installed until an admin enables it (--type custom "
                "downloads nothing)."
            )
        return req.project_type
    default = catalogue.default_type
    mark = " (downloads packages: builds here have no network)" if offline else ""
    choices = [
        Choice(t.name, f"{t.name:7} {t.title}" + (mark if _downloads(catalogue, t.name) else ""))
        for t in catalogue.types.values()
    ]
    if offline and _downloads(catalogue, default):
        quiet = next((t for t in catalogue.types if not _downloads(catalogue, t)), None)
        if quiet is not None:
            default = quiet
            choices.sort(key=lambda c: c.value != quiet)
            say(
                "Builds on this server have no network (images.build_network: none), so the default is "
                f"{quiet}: it downloads nothing (an admin can enable build network for the others)."
            )
    return prompter.select("What kind of project is it?", choices, default=default, flag="--type")


def _framework_choices(
    catalogue: Catalogue, bases: Availability
) -> tuple[list[Choice], str | None, str | None]:
    """(choices here-first, the default, a one-line note when the default had to change)."""
    rows = []
    for f in catalogue.frameworks.values():
        status = bases.of(catalogue.resolve(f.name).image)
        rank = 2 if status is None else 0 if status.present else 1 if status.buildable else 3
        rows.append((rank, f, status))
    rows.sort(key=lambda r: r[0])
    any_buildable = any(rank < 3 for rank, _, _ in rows)
    choices = []
    for rank, f, status in rows:
        mark = status.mark() if status is not None else ""
        if any_buildable and rank == 3:  # shown, greyed out, with why
            choices.append(Choice(f.name, f"{f.name:12} {f.title}", disabled=mark.strip("()")))
        else:
            choices.append(Choice(f.name, f"{f.name:12} {f.title}  {mark}".rstrip()))
    default = catalogue.default_framework
    status = bases.of(catalogue.resolve(default).image)
    if status is None or status.buildable:
        return choices, default, None
    if not any_buildable:
        note = f"Note: nothing can be built on this server yet: {default} {status.mark()}."
        return choices, default, note
    chosen = next(f.name for rank, f, _ in rows if rank < 3)
    image = catalogue.resolve(chosen).image
    why = (
        f"this server cannot reach {status.registry} to download {status.image}"
        if not status.lab
        else f"{status.image} is not built here"
    )
    note = f"{why[0].upper()}{why[1:]}, so the default is {chosen} ({image}, on this server)."
    return choices, chosen, note


def ask_framework(
    req: InitRequest, catalogue: Catalogue, prompter: Prompter, bases: Availability | None, say: Say
) -> str:
    if bases is None:
        return req.framework or prompter.select(
            "Which framework should the image start from?",
            [Choice(f.name, f"{f.name:12} {f.title}") for f in catalogue.frameworks.values()],
            default=catalogue.default_framework,
            flag="--framework",
        )
    framework = req.framework
    if not framework:
        choices, default, note = _framework_choices(catalogue, bases)
        if note:
            say(note)
        framework = prompter.select(
            "Which framework should the image start from?", choices, default=default, flag="--framework"
        )
    status = bases.of(catalogue.resolve(framework).image)
    if status is not None and not status.buildable and req.framework:
        from ds01.project.catalogue import unavailable_base

        raise unavailable_base(status)  # an explicit choice that cannot be had: before anything is made
    if status is not None and status.buildable and not status.present:
        size = f", ~{status.download_gb:g} GB" if status.download_gb else ""
        where = f"{status.registry}{size}"
        say(f"{status.image} is not on this server yet: the first build downloads it ({where}).")
    return framework


def ask_missing(
    req: InitRequest,
    catalogue: Catalogue,
    prompter: Prompter,
    bases: Availability | None = None,
    *,
    say: Say | None = None,
) -> InitRequest:
    """Fill in what the flags left open, by asking (or taking defaults with --yes). With `bases`, the
    choices say what this server can build: bases here first, downloads with their size, the rest
    unavailable; a default that cannot be built here gives way to one that can (said in one line), and
    a --framework whose base cannot be had is refused (exit 1) before anything is made."""
    say = say or (lambda _: None)
    if req.framework is not None:  # a bad flag is its one error line, before any notice or question
        catalogue.resolve(req.framework)
    if req.project_type is not None:
        catalogue.project_type(req.project_type)
    project_type = ask_type(req, catalogue, prompter, bases, say)
    framework = ask_framework(req, catalogue, prompter, bases, say)
    description = (
        req.description
        if req.description is not None
        else prompter.text("One line about the project (optional)", default="", flag="--desc")
    )
    devcontainer = (
        req.devcontainer
        if req.devcontainer is not None
        else prompter.confirm(
            "Add VS Code settings for working inside the container (Remote-SSH to NAME.ds01)?",
            default=False,
            flag="--devcontainer / --no-devcontainer",
        )
    )
    return InitRequest(req.name, project_type, framework, description, req.git, devcontainer, req.gpus)


def devcontainer_text(name: str, image: str) -> str:
    """VS Code's recommended extensions for the Remote-SSH route (`ssh NAME.ds01` lands in the container,
    through ds01, with its GPUs, limits and reaper). No dev container config is written: VS Code would start
    its own container with `docker`, past ds01's quotas (and users have no docker group)."""
    config = {
        "recommendations": ["ms-vscode-remote.remote-ssh", "ms-python.python", "ms-toolsai.jupyter"],
    }
    return json.dumps(config, indent=2) + "\n"


def _write(path: Path, text: str, result: InitResult) -> None:
    rel = str(path.relative_to(result.workspace))
    (result.created if files.write_new(path, text) else result.kept).append(rel)


def fill_project(
    workspace: Path, req: InitRequest, catalogue: Catalogue, image: str, *, say: Say, guided: bool
) -> InitResult:
    """Everything inside the workspace, written by the caller (who is the owner)."""
    assert req.project_type and req.framework
    name = workspace.name
    layout = files.create_dirs(workspace)
    result = InitResult(name, workspace, req.project_type, req.framework, image)
    result.created += [str(p.relative_to(workspace)) for p in layout.files]
    if guided:
        say(EXPLAIN["workspace"])
    table = files.tool_table(req.project_type, req.framework, image, req.gpus)
    pyproject = workspace / files.PYPROJECT
    if files.exists(pyproject):
        added = files.ensure_tool_table(pyproject, table)
        (result.created if added else result.kept).append(
            "pyproject.toml [tool.ds01]" if added else files.PYPROJECT
        )
    else:
        _write(pyproject, files.pyproject_text(name, req.description, table), result)
    _, pip = catalogue.packages(req.project_type)
    _write(workspace / files.REQUIREMENTS, files.requirements_text(req.project_type, pip), result)
    if os.path.lexists(workspace / DOCKERFILE):
        result.kept.append(DOCKERFILE)  # an existing recipe, generated or not, stays as it is
    else:
        from ds01.project.build import RecipeRequest, write_recipe

        wrote = write_recipe(
            catalogue, workspace, RecipeRequest(name, framework=req.framework, project_type=req.project_type)
        ).wrote_dockerfile
        (result.created if wrote else result.kept).append(DOCKERFILE)
    if guided:
        say(EXPLAIN["image"])
    readme = files.create_readme(
        workspace, name, project_type=req.project_type, description=req.description or None
    )
    (result.created if readme.files else result.kept).append("README.md")
    if req.devcontainer:  # the Remote-SSH route (docs/access.md): extensions, and no dev container config
        files.make_dirs(workspace / ".vscode")
        _write(workspace / ".vscode" / "extensions.json", devcontainer_text(name, image), result)
    if req.git:
        from ds01.project import git

        made = git.init_git(workspace)
        result.created += [str(p.relative_to(workspace)) for p in made.files]
        result.committed = git.commit_all(workspace, f"Start {name} with ds01")
    if guided:
        say(EXPLAIN["container"])
    return result


def init_project(
    client: Any,
    req: InitRequest,
    catalogue: Catalogue,
    *,
    user: str | None = None,
    say: Say,
    guided: bool = False,
) -> InitResult:
    """ds01d makes the workspace; the files are written as its owner (the caller, or root for `--user`)."""
    name = naming.normalise_name(req.name)
    assert req.project_type and req.framework
    catalogue.project_type(req.project_type)  # unknown type or framework: exit 2 before anything is made
    catalogue.resolve(req.framework)
    if req.git:
        from ds01.project.git import check_git

        check_git()
    uid = files.owner_uid(user)
    workspace, _ = files.request_workspace(client, name, user)
    image = naming.image_name(name, uid)

    def work() -> InitResult:
        return fill_project(workspace, req, catalogue, image, say=say, guided=guided)

    return files.as_owner(uid, work, InitResult.as_dict, InitResult.from_dict)
