"""`project-launch`: from a project to a running container, building its image when it is missing.

The client reads the project's files as the user (the recipe, `[tool.ds01]`), builds through
`build_project_image` (the context packed here, streamed to ds01d) and deploys with `POST /v1/deploy`, which
runs wholly inside ds01d.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ds01 import naming
from ds01.client import path_of
from ds01.errors import NotFound
from ds01.project import files

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
    deployment: dict[str, Any]  # the result of POST /v1/deploy: {action, entry, idle_timeout_h, ...}


def workspaces(client: Any, user: str | None = None) -> tuple[Path, list[str]]:
    """(`<workspace_root>/<owner>`, its project folders) as ds01d sees them."""
    answer = client.call("GET", path_of("workspaces"), {"user": user})
    return Path(answer["root"]), list(answer["projects"])


def image_ready(client: Any, name: str, user: str | None) -> bool:
    try:
        client.call("GET", path_of("images", name), {"user": user})
    except NotFound:
        return False
    return True


def project_info(client: Any, root: Path, name: str, user: str | None) -> Project:
    workspace = root / name
    gpus = files.read_tool_table(workspace).get("gpus")
    return Project(
        name,
        workspace,
        naming.image_name(name, files.owner_uid(user)),
        image_ready(client, name, user),
        gpus if isinstance(gpus, int) and not isinstance(gpus, bool) else None,
    )


def list_projects(client: Any, user: str | None = None) -> list[Project]:
    """Folders of the workspace root that hold a Dockerfile or a [tool.ds01] table."""
    root, names = workspaces(client, user)
    found = [n for n in names if files.exists(root / n / DOCKERFILE) or files.read_tool_table(root / n)]
    return [project_info(client, root, n, user) for n in found]


def launch_project(
    client: Any,
    name: str,
    *,
    user: str | None = None,
    rebuild: bool = False,
    gpus: int | None = None,
    cpu_only: bool = False,
    show: bool = True,
    deploy_call: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Launch:
    """`deploy_call` sends the deploy body (`--wait`: the caller's waiting call); default: a plain deploy."""
    name = naming.normalise_name(name)
    root, _ = workspaces(client, user)
    project = project_info(client, root, name, user)
    has_recipe = files.exists(project.workspace / DOCKERFILE)
    if not has_recipe and not project.image_ready:
        raise NotFound(
            f"no project named {name!r} (no workspace recipe and no image)",
            hint=f"create it with project-init {name}",
        )
    built = False
    if rebuild or not project.image_ready:
        from ds01.project.build import build_project_image

        build_project_image(
            client, name=name, context_dir=project.workspace, user=user, interface="wizard", show=show
        )
        built = True
        if rebuild:
            _retire_old(client, name, user)
    if not cpu_only and gpus is None:
        gpus = project.default_gpus
    body = {
        "name": name,
        "gpus": gpus or None,
        "cpu_only": cpu_only or not gpus,
        "user": user,
        "interface": "wizard",
    }
    if deploy_call is not None:
        deployment = deploy_call(body)
    else:
        deployment = client.call("POST", path_of("deploy"), body)
    return Launch(project_info(client, root, name, user), built, deployment)


def _retire_old(client: Any, name: str, user: str | None) -> None:
    """After a rebuild the running container still has the old image: hand it back (the workspace stays)."""
    try:
        client.call("POST", path_of("retire"), {"name": name, "user": user})
    except NotFound:
        return
