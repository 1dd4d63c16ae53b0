"""Endpoints: an image off the server, `image-push` (to a registry, with the caller's own login for that push
only) and `image-save` (a `docker save` tarball the client writes as the user).

Save passes the read end of a pipe with SCM_RIGHTS (marker `F`, or `E` on failure, as exec does) and writes
the tarball into it; the JSON answer follows once the tarball is whole. ds01d opens no file of the user's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from ds01.daemon.endpoints.exec import Handoff, passes_stream
from ds01.daemon.endpoints.images import image_name
from ds01.daemon.routes import Request, route
from ds01.daemon.schema import limit

USER = limit(max_len=64)
SECRET = limit(max_len=8192)
PIPE_SIZE = 1 << 20


@dataclass(frozen=True)
class PushBody:
    target: str = field(metadata=limit(max_len=300))
    user: str | None = field(default=None, metadata=USER)
    username: str | None = field(default=None, metadata=limit(max_len=256))
    password: str | None = field(default=None, metadata=SECRET, repr=False)
    identitytoken: str | None = field(default=None, metadata=SECRET, repr=False)


@dataclass(frozen=True)
class SaveBody:
    user: str | None = field(default=None, metadata=USER)


@route("POST", "/images/{name}/push", PushBody)
@route("POST", "/images/{repo}/{name}/push", PushBody)
def push(req: Request[PushBody]) -> dict[str, Any]:
    from ds01.atomic.image_transfer import Login, push_image
    from ds01.atomic.images import resolve_ref
    from ds01.registry_ref import parse_target

    b = req.body
    target = parse_target(b.target)
    ref = resolve_ref(req.ctx, image_name(req), user=b.user)
    login = Login(username=b.username, password=b.password, identitytoken=b.identitytoken)
    return push_image(req.ctx, ref, target, login, emit=lambda ev: req.emit("event", ev))


@route("POST", "/images/{name}/save", SaveBody)
@route("POST", "/images/{repo}/{name}/save", SaveBody)
@passes_stream
def save(req: Request[SaveBody], handoff: Handoff) -> dict[str, Any]:
    from ds01.atomic.image_transfer import save_chunks
    from ds01.atomic.images import resolve_ref

    ctx = req.ctx
    ref = resolve_ref(ctx, image_name(req), user=req.body.user)
    chunks, result = save_chunks(ctx, ref)
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    try:
        try:
            handoff.sent = True
            socket.send_fds(req.connection, [b"F"], [read_end])
        finally:
            os.close(read_end)  # the client holds it now; ds01d keeps only the write end
        written = 0
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                n = os.write(write_end, view)  # a client gone away: BrokenPipeError ends the save
                view = view[n:]
                written += n
    finally:
        os.close(write_end)
    ctx.log("image_save", None, user=ref.owner.name, image=ref.ref, bytes=written,
            **({"by": ctx.user.name} if ref.owner.uid != ctx.user.uid else {}))  # fmt: skip
    return {**result, "bytes": written}
