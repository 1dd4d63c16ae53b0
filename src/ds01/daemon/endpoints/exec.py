"""Endpoints: exec, the interactive sessions of attach, run and `--open`.

ds01d creates the exec as the container's own user (never root) in /workspace, starts it on a fresh
connection to the engine's Unix socket, and hands that connection, already upgraded to the exec's raw
stream, to the client with SCM_RIGHTS: one marker byte `F` carrying the descriptor, sent before the JSON
answer. When anything fails first, the marker is `E` (no descriptor) and the error follows as usual. The
engine speaks no HTTP on a hijacked connection, so the descriptor reaches only the session's process; the
session ends when its process does or when the client closes the stream.
"""

from __future__ import annotations

import contextlib
import functools
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ds01.daemon.routes import Request, route
from ds01.daemon.schema import limit
from ds01.daemon.service import ExecSession
from ds01.errors import NotFound, OperationFailed, PermissionDenied
from ds01.output import Output

if TYPE_CHECKING:
    from ds01.atomic.container_view import ContainerView

# bash when the image has it, else sh, as a login shell, in one exec (no extra round trip to look first).
LOGIN_SHELL = ("/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -l; fi; exec sh -l")
WORKDIR = "/workspace"
RUNNING = frozenset({"running", "restarting"})
EXEC_ID = limit(max_len=128)


@dataclass(frozen=True)
class ExecBody:
    user: str | None = field(default=None, metadata=limit(max_len=64))
    cmd: tuple[str, ...] = ()
    tty: bool = False
    stdin: bool = False
    start: bool = False


@dataclass(frozen=True)
class ResizeBody:
    height: int = field(metadata=limit(min=1, max=10000))
    width: int = field(metadata=limit(min=1, max=10000))


class _Deferred(Output):
    """The handler's messages, held back until the marker byte is out (nothing may precede it)."""

    def __init__(self) -> None:
        super().__init__(json_mode=False)
        self.held: list[tuple[str, str]] = []

    def say(self, message: str) -> None:
        self.held.append(("say", message))

    def info(self, message: str) -> None:
        self.held.append(("info", message))

    def success(self, message: str) -> None:
        self.held.append(("success", message))

    def warn(self, message: str) -> None:
        self.held.append(("warn", message))

    def hint(self, message: str) -> None:
        self.held.append(("hint", message))

    def replay(self, out: Output) -> None:
        for level, message in self.held:
            getattr(out, level)(message)


class Handoff:
    """The marker byte, sent exactly once: `F` with the stream's descriptor, or `E` on failure."""

    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self.sent = False

    def stream(self, stream: socket.socket) -> None:
        self.sent = True
        socket.send_fds(self.connection, [b"F"], [stream.fileno()])

    def failed(self) -> None:
        if not self.sent:
            self.sent = True
            with contextlib.suppress(OSError):  # the client went away: the error has no one to go to
                self.connection.sendall(b"E")


def passes_stream(fn: Callable[[Request[Any], Handoff], Any]) -> Callable[[Request[Any]], Any]:
    """Route handlers that hand a stream over: the marker goes out before any message or answer, `E` on
    every failure path (exactly once), and the messages held meanwhile follow it."""

    @functools.wraps(fn)
    def handler(req: Request[Any]) -> Any:
        handoff = Handoff(req.connection)
        out, held = req.ctx.out, _Deferred()
        req.ctx.out = held
        try:
            result = fn(req, handoff)
        except BaseException:
            handoff.failed()
            raise
        finally:
            req.ctx.out = out
            held.replay(out)
        return result

    return handler


def _exec_user(view: ContainerView) -> str:
    """`uid:gid` of the container's owner: the session never runs as root or a system account."""
    from ds01.identity import uid_min, user_by_uid

    uid = view.uid
    if uid is None or uid == 0 or uid < uid_min():
        raise PermissionDenied(
            f"container {view.docker_name} has no lab member as its owner; ds01 opens no session in it",
            hint="only containers made by ds01 for a user can be entered",
        )
    return f"{uid}:{user_by_uid(uid).gid}"


@route("POST", "/containers/{name}/exec", ExecBody)
@passes_stream
def exec_session(req: Request[ExecBody], handoff: Handoff) -> dict[str, Any]:
    from ds01.atomic.containers import find_container, start_container

    ctx, b = req.ctx, req.body
    view = find_container(ctx, req.params["name"], user=b.user)
    user = _exec_user(view)
    if view.state not in RUNNING:
        if not b.start:
            raise OperationFailed(
                f"{view.name} is {view.state}, not running",
                hint=f"container-start {view.name} first, or container-run {view.name} to start it and enter",
            )
        start_container(ctx, view)
        ctx.out.info(f"started {view.name}")
        view = replace(view, state="running")
    gateway = ctx.gateway
    env = {"TERM": "xterm"} if b.tty else {}
    exec_id = gateway.exec_create(
        view.id, list(b.cmd) or list(LOGIN_SHELL), user=user, workdir=WORKDIR, tty=b.tty, stdin=b.stdin,
        environment=env,
    )  # fmt: skip
    stream = gateway.exec_attach(exec_id, tty=b.tty)
    try:
        handoff.stream(stream)
    finally:
        stream.close()  # ds01d keeps no copy: the session lives and ends with the client's
    req.daemon.remember_exec(ExecSession(exec_id=exec_id, uid=req.caller.uid, container_id=view.id))
    return {"exec_id": exec_id, "tty": b.tty}


def _session(req: Request[Any]) -> ExecSession:
    session = req.daemon.exec_session(req.params["id"], req.caller.uid)
    if session is None:  # someone else's session looks exactly like a missing one
        raise NotFound(
            f"no exec session {req.params['id'][:64]!r}", hint="sessions belong to who opened them"
        )
    return session


@route("POST", "/exec/{id}/resize", ResizeBody)
def resize(req: Request[ResizeBody]) -> dict[str, Any]:
    session = _session(req)
    req.ctx.gateway.exec_resize(session.exec_id, height=req.body.height, width=req.body.width)
    return {}


@route("GET", "/exec/{id}")
def inspect(req: Request[Any]) -> dict[str, Any]:
    session = _session(req)
    raw = req.ctx.gateway.exec_inspect(session.exec_id)
    code = raw.get("ExitCode")
    return {"running": bool(raw.get("Running")), "exit_code": code if isinstance(code, int) else None}
