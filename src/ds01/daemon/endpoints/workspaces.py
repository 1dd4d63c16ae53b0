"""Endpoints: workspaces (CONTRACT §2). ds01d makes `<root>/<user>/<name>` for its owner; what goes inside
is written by the client as the user. `user` (admins only) acts for a lab member, never root."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ds01.daemon.routes import Request, route
from ds01.daemon.schema import limit

USER = limit(max_len=64)


@dataclass(frozen=True)
class ListBody:
    user: str | None = field(default=None, metadata=USER)


@dataclass(frozen=True)
class CreateBody:
    name: str = field(metadata=limit(max_len=128))
    user: str | None = field(default=None, metadata=USER)


@route("GET", "/workspaces", ListBody)
def list_workspaces(req: Request[ListBody]) -> dict[str, Any]:
    from ds01.atomic import project_files

    paths = req.ctx.config.paths
    owner = req.ctx.target_user(req.body.user)
    return {
        "root": str(project_files.workspace_root(paths, owner)),
        "projects": project_files.list_workspaces(paths, owner),
    }


@route("POST", "/workspaces", CreateBody)
def create_workspace(req: Request[CreateBody]) -> dict[str, Any]:
    from ds01.atomic import project_files

    ctx = req.ctx
    owner = ctx.target_user(req.body.user)
    path, created = project_files.make_workspace(ctx.config.paths, owner, req.body.name)
    return {"path": str(path), "created": created}
