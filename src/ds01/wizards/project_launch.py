"""`project-launch`: from a project to a running container, building its image when it is missing."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ds01 import naming
from ds01.atomic import images, project_files, user_files
from ds01.atomic.container_create import CreateRequest
from ds01.atomic.containers import find_container
from ds01.context import Context
from ds01.errors import NotFound
from ds01.identity import User
from ds01.orchestrators.deploy import Deployment, deploy_container
from ds01.orchestrators.retire import retire_container

DOCKERFILE = "Dockerfile"


@dataclass(frozen=True)
class Project:
    name: str
    workspace: Path
    image: str
    image_ready: bool
    default_gpus: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "workspace": str(self.workspace),
            "image": self.image,
            "image_ready": self.image_ready,
            "default_gpus": self.default_gpus,
        }


@dataclass(frozen=True)
class Launch:
    project: Project
    built: bool
    deployment: Deployment


def _tool_table(owner: User, workspace: Path) -> dict[str, Any]:
    path = workspace / "pyproject.toml"
    if not user_files.exists(owner, path):
        return {}
    try:
        table = tomllib.loads(user_files.read_text(owner, path)).get("tool", {}).get("ds01", {})
    except tomllib.TOMLDecodeError:
        return {}
    return table if isinstance(table, dict) else {}


def project_info(ctx: Context, owner: User, name: str) -> Project:
    workspace = project_files.workspace_path(ctx, owner, name)
    image = naming.image_name(name, owner.uid)
    gpus = _tool_table(owner, workspace).get("gpus")
    return Project(
        name,
        workspace,
        image,
        ctx.gateway.image_inspect(image) is not None,
        gpus if isinstance(gpus, int) and not isinstance(gpus, bool) else None,
    )


def list_projects(ctx: Context, owner: User) -> list[Project]:
    """Folders of the workspace root that hold a Dockerfile or a [tool.ds01] table."""
    root = project_files.workspace_root(ctx, owner)
    if not user_files.exists(owner, root):
        return []
    names = []
    for entry in sorted(root.iterdir()):
        if not naming.NAME_PATTERN.fullmatch(entry.name) or not entry.is_dir():
            continue
        if user_files.exists(owner, entry / DOCKERFILE) or _tool_table(owner, entry):
            names.append(entry.name)
    return [project_info(ctx, owner, n) for n in names]


def launch_project(
    ctx: Context,
    owner: User,
    name: str,
    *,
    rebuild: bool = False,
    gpus: int | None = None,
    cpu_only: bool = False,
    make_view: Any = None,
) -> Launch:
    name = naming.normalise_name(name)
    project = project_info(ctx, owner, name)
    if not user_files.exists(owner, project.workspace / DOCKERFILE) and not project.image_ready:
        raise NotFound(
            f"no project named {name!r} (no workspace recipe and no image)",
            hint=f"create it with project-init {name}",
        )
    built = False
    if rebuild or not project.image_ready:
        images.create_image(
            ctx, owner, images.CreateRequest(name=name, build=True, interface="wizard"), make_view
        )
        built = True
        if rebuild:
            _retire_old(ctx, owner, name)
    if not cpu_only and gpus is None:
        gpus = project.default_gpus
    request = CreateRequest(name=name, gpus=gpus or None, cpu_only=cpu_only or not gpus, interface="wizard")
    deployment = deploy_container(ctx, owner, request)
    return Launch(project_info(ctx, owner, name), built, deployment)


def _retire_old(ctx: Context, owner: User, name: str) -> None:
    """After a rebuild the running container still has the old image: hand it back (the workspace stays)."""
    try:
        view = find_container(ctx, name, user=None if owner.uid == ctx.user.uid else owner.name)
    except NotFound:
        return
    retire_container(ctx, view)
