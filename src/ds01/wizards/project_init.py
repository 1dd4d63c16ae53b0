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
from ds01.project.catalogue import Catalogue
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


def ask_missing(req: InitRequest, catalogue: Catalogue, prompter: Prompter) -> InitRequest:
    """Fill in what the flags left open, by asking (or taking defaults with --yes)."""
    project_type = req.project_type or prompter.select(
        "What kind of project is it?",
        [Choice(t.name, f"{t.name:7} {t.title}") for t in catalogue.types.values()],
        default=catalogue.default_type,
        flag="--type",
    )
    framework = req.framework or prompter.select(
        "Which framework should the image start from?",
        [Choice(f.name, f"{f.name:12} {f.title}") for f in catalogue.frameworks.values()],
        default=catalogue.default_framework,
        flag="--framework",
    )
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
