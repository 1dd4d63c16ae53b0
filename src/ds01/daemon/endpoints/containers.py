"""Endpoints: containers (CONTRACT §4 L2 verbs). Ownership is checked by `find_container` for every named
container; `--user` goes through `Context.target_user` (admins only, never root or a system account)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ds01.daemon.routes import Request, route
from ds01.daemon.schema import limit
from ds01.errors import PermissionDenied

NAME = limit(max_len=128)
USER = limit(max_len=64)


@dataclass(frozen=True)
class ListBody:
    all_users: bool = False
    status: str | None = field(default=None, metadata=limit(max_len=32))
    user: str | None = field(default=None, metadata=USER)


@route("GET", "/containers", ListBody)
def list_containers(req: Request[ListBody]) -> list[dict[str, Any]]:
    from ds01.atomic.container_view import list_entry
    from ds01.atomic.containers import known_slots, list_views

    ctx, b = req.ctx, req.body
    if b.all_users and not ctx.is_admin:
        raise PermissionDenied("--all-users is for admins", hint="drop it to list your own containers")
    views = list_views(ctx, owner=None if b.all_users else ctx.target_user(b.user), status=b.status)
    known = known_slots(ctx, views)
    return [list_entry(v, known) for v in views]
