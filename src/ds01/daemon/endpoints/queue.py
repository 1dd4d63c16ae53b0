"""Endpoints: the wait for GPUs (daemon/queue.py). Users see their own waiting requests in full and
everyone else's as counts by shape; admins see all. A request is cancelled by its owner or an admin; for
anyone else it does not exist (exit 3, as for a missing one)."""

from __future__ import annotations

import re
from typing import Any

from ds01.daemon.routes import Request, route
from ds01.daemon.schema import Empty
from ds01.errors import NotFound


@route("GET", "/queue", Empty)
def listing(req: Request[Empty]) -> dict[str, Any]:
    from ds01.daemon.queue import queue_of

    return queue_of(req.daemon).listing(req.ctx, everyone=req.ctx.is_admin)


@route("DELETE", "/queue/{id}", Empty)
def cancel(req: Request[Empty]) -> dict[str, Any]:
    from ds01.daemon.queue import queue_of

    q = queue_of(req.daemon)
    id_ = req.params["id"]
    e = q.get(id_)
    shown = id_[:32] if re.fullmatch(r"[0-9a-zA-Z_.-]+", id_) else "with that id"
    if e is None or (e.uid != req.ctx.user.uid and not req.ctx.is_admin):
        raise NotFound(f"no waiting request {shown}", hint="`ds01 queue` lists yours")
    if not q.leave(e, "cancel", by=req.ctx.user.name):
        raise NotFound(f"request {shown} is being granted already", hint="see container-list")
    return {"cancelled": e.id, "user": e.user, "name": e.request["name"]}
