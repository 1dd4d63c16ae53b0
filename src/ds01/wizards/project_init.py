"""`project-init`: a project's workspace, recipe and git history in one go, teaching as it goes.

Chains the L2 pieces (dir-create, the Dockerfile generator through image-create --no-build, readme-create,
git-init) and adds `pyproject.toml` with a `[tool.ds01]` table, `requirements.txt` and, when asked, a VS Code
dev container. On an existing project it adds only what is missing and never overwrites a user's file.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ds01 import naming
from ds01.atomic import images, project_files, user_files
from ds01.project.catalogue import Catalogue, load_catalogue
from ds01.context import Context
from ds01.identity import User
from ds01.wizards.prompts import Choice, Prompter

Say = Callable[[str], None]

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
            "Add a VS Code dev container config (.devcontainer/devcontainer.json)?",
            default=False,
            flag="--devcontainer / --no-devcontainer",
        )
    )
    return InitRequest(req.name, project_type, framework, description, req.git, devcontainer, req.gpus)


def pyproject_text(name: str, req: InitRequest, image: str) -> str:
    description = (req.description or "").replace('"', "'")
    return (
        f'[project]\nname = "{name}"\nversion = "0.1.0"\ndescription = "{description}"\n'
        f'requires-python = ">=3.10"\n\n{tool_table(req, image)}'
    )


def tool_table(req: InitRequest, image: str) -> str:
    return (
        "[tool.ds01]\n"
        f'type = "{req.project_type}"\nframework = "{req.framework}"\nimage = "{image}"\n'
        f"gpus = {req.gpus if req.gpus is not None else 1}  # what project-launch asks for\n"
        f'created = "{naming.utc_now_iso()}"\n'
    )


def requirements_text(catalogue: Catalogue, project_type: str) -> str:
    _, pip = catalogue.packages(project_type)
    head = (
        f"# Python packages of this project ({project_type}). Edit, then: image-update NAME --rebuild\n"
        "# One per line, with a version if it matters (torch==2.5.1).\n"
    )
    return head + "".join(f"{p}\n" for p in pip)


def devcontainer_text(name: str, image: str) -> str:
    config = {
        "name": name,
        "image": image,
        "workspaceFolder": "/workspace",
        "workspaceMount": "source=${localWorkspaceFolder},target=/workspace,type=bind",
        "runArgs": ["--init", "--shm-size=8g"],
        "customizations": {"vscode": {"extensions": ["ms-python.python", "ms-toolsai.jupyter"]}},
    }
    return json.dumps(config, indent=2) + "\n"


def _write(owner: User, path: Path, text: str, result: InitResult) -> None:
    rel = str(path.relative_to(result.workspace))
    (result.created if user_files.write_new(owner, path, text) else result.kept).append(rel)


def _ensure_tool_table(owner: User, path: Path, req: InitRequest, image: str, result: InitResult) -> None:
    """An existing pyproject.toml gains a [tool.ds01] table when it has none; nothing else changes."""
    text = user_files.read_text(owner, path)
    try:
        has_table = "ds01" in tomllib.loads(text).get("tool", {})
    except tomllib.TOMLDecodeError:
        has_table = True  # not ours to repair
    if has_table:
        result.kept.append("pyproject.toml")
        return
    user_files.replace_with_backup(owner, path, text.rstrip("\n") + "\n\n" + tool_table(req, image))
    result.created.append("pyproject.toml [tool.ds01]")


def init_project(
    ctx: Context, owner: User, req: InitRequest, *, say: Say, guided: bool = False
) -> InitResult:
    name = naming.normalise_name(req.name)
    catalogue = load_catalogue(ctx.config.source)
    image = naming.image_name(name, owner.uid)
    assert req.project_type and req.framework
    layout = project_files.create_dirs(ctx, owner, name)
    result = InitResult(name, layout.workspace, req.project_type, req.framework, image)
    result.created += [str(p.relative_to(layout.workspace)) for p in layout.files]
    if guided:
        say(EXPLAIN["workspace"])
    pyproject = layout.workspace / "pyproject.toml"
    if user_files.exists(owner, pyproject):
        _ensure_tool_table(owner, pyproject, req, image, result)
    else:
        _write(owner, pyproject, pyproject_text(name, req, image), result)
    _write(
        owner, layout.workspace / "requirements.txt", requirements_text(catalogue, req.project_type), result
    )
    recipe = images.create_image(
        ctx,
        owner,
        images.CreateRequest(
            name=name, framework=req.framework, project_type=req.project_type, build=False, interface="wizard"
        ),
        lambda title: None,  # type: ignore[arg-type,return-value]
    )
    (result.created if recipe.wrote_dockerfile else result.kept).append("Dockerfile")
    if guided:
        say(EXPLAIN["image"])
    readme = project_files.create_readme(
        ctx, owner, name, project_type=req.project_type, description=req.description or None
    )
    (result.created if readme.files else result.kept).append("README.md")
    if req.devcontainer:
        folder = layout.workspace / ".devcontainer"
        user_files.make_dirs(owner, folder)
        _write(owner, folder / "devcontainer.json", devcontainer_text(name, image), result)
    if req.git:
        git = project_files.init_git(ctx, owner, name)
        result.created += [str(p.relative_to(layout.workspace)) for p in git.files]
        result.committed = project_files.commit_all(owner, layout.workspace, f"Start {name} with ds01")
    if guided:
        say(EXPLAIN["container"])
    return result
