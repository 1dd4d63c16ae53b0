"""Endpoints: exec, the interactive sessions of attach, run and `--open`.

ds01d creates the exec as the container's own user (never root) in /workspace, starts it on a fresh
connection to the engine's Unix socket, and hands that connection, already upgraded to the exec's raw
stream, to the client with SCM_RIGHTS: one marker byte `F` carrying the descriptor, sent before the JSON
answer. When anything fails first, the marker is `E` (no descriptor) and the error follows as usual. The
engine speaks no HTTP on a hijacked connection, so the descriptor reaches only the session's process. The
session ends when its process does, or when the client process does (ds01d then ends what is left of it).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import select
import signal
import socket
import threading
import time
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
    from ds01.docker_gateway import Gateway

log = logging.getLogger("ds01d")

# bash when the image has it, else sh, as a login shell, in one exec (no extra round trip to look first).
LOGIN_SHELL = ("/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -l; fi; exec sh -l")
WORKDIR = "/workspace"
RUNNING = frozenset({"running", "restarting"})
SESSION_CHECK_S = 60.0  # how often a watched session with a live client is checked for its end


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


def exec_user(view: ContainerView) -> str:
    """`uid:gid` of the container's owner: the session never runs as root or a system account."""
    from ds01.identity import uid_min, user_by_uid

    uid = view.uid
    if uid is None or uid == 0 or uid < uid_min():
        raise PermissionDenied(
            f"container {view.docker_name} has no lab member as its owner; ds01 opens no session in it",
            hint="only containers made by ds01 for a user can be entered",
        )
    return f"{uid}:{user_by_uid(uid).gid}"


def session_env(view: ContainerView, tty: bool) -> dict[str, str]:
    """The environment of an exec'd command: the engine hands the GPU variables to the container's first
    process only (an exec gets Config.Env), so a command run in a GPU container is given them here."""
    env = {"TERM": "xterm"} if tty else {}
    if view.gpu_uuids:
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(view.gpu_uuids)
    return env


@route("POST", "/containers/{name}/exec", ExecBody)
@passes_stream
def exec_session(req: Request[ExecBody], handoff: Handoff) -> dict[str, Any]:
    from ds01.atomic.containers import find_container, start_container

    ctx, b = req.ctx, req.body
    view = find_container(ctx, req.params["name"], user=b.user)
    user = exec_user(view)
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
    client = ClientProcess.of(req.caller.pid)  # before the session exists: no pid reuse can fool it
    try:
        exec_id = gateway.exec_create(
            view.id, list(b.cmd) or list(LOGIN_SHELL), user=user, workdir=WORKDIR, tty=b.tty, stdin=b.stdin,
            environment=session_env(view, b.tty),
        )  # fmt: skip
        stream = gateway.exec_attach(exec_id, tty=b.tty)
    except BaseException:
        client.close()
        raise
    # From here the watch owns the client's pidfd: whatever happens next, the session ends with the client.
    threading.Thread(
        target=_end_with_client, args=(client, gateway, exec_id, req.daemon.stopping), daemon=True,
        name=f"exec-{exec_id[:12]}",
    ).start()  # fmt: skip
    try:
        handoff.stream(stream)
    finally:
        stream.close()  # ds01d keeps no copy: the session lives and ends with the client's
    req.daemon.remember_exec(ExecSession(exec_id=exec_id, uid=req.caller.uid, container_id=view.id))
    return {"exec_id": exec_id, "tty": b.tty}


# -- a session ends with its client ----------------------------------------------------------------------
# The engine keeps an exec's process running when the attached stream closes (a terminal session is not
# even hung up), so a client killed half-way would leave its command running. ds01d watches the client
# process (its pid from SO_PEERCRED) and, once it is gone, ends what is left of the session.
class ClientProcess:
    def __init__(self, pid: int, pidfd: int | None, started: str | None) -> None:
        self.pid, self.pidfd, self.started = pid, pidfd, started

    @classmethod
    def of(cls, pid: int) -> ClientProcess:
        try:
            return cls(pid, os.pidfd_open(pid), None)
        except (AttributeError, OSError):  # an old kernel: the start time tells a reused pid apart
            return cls(pid, None, start_time(pid))

    @classmethod
    def adopt(cls, pid: int, started: str) -> ClientProcess | None:
        """The process `pid` if it is still the one that started at `started` (`start_time`), else None:
        how a restarted ds01d finds again the client of a session it handed out before."""
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            return None
        except (AttributeError, OSError):
            pidfd = None
        if start_time(pid) != started:  # read after the pidfd: a match is the process the pidfd holds
            if pidfd is not None:
                os.close(pidfd)
            return None
        return cls(pid, pidfd, started)

    def wait(self, timeout: float) -> bool:
        """True once the process has ended (False after `timeout` s while it runs)."""
        if self.pidfd is not None:
            ready, _, _ = select.select([self.pidfd], [], [], timeout)
            return bool(ready)
        deadline = time.monotonic() + timeout
        while self.started is not None and start_time(self.pid) == self.started:
            if time.monotonic() > deadline:
                return False
            time.sleep(1.0)
        return True

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def start_time(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, as /proc says): with the pid, names one process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _end_with_client(
    client: ClientProcess, gateway: Gateway, exec_id: str, stopping: threading.Event
) -> None:
    try:
        while not stopping.is_set():
            if client.wait(SESSION_CHECK_S):
                end_exec(gateway, exec_id)
                return
            if not gateway.exec_inspect(exec_id).get("Running"):
                return
    except Exception:  # the engine went away, or the exec with it: nothing left to end
        log.debug("watching exec %s", exec_id[:12], exc_info=True)
    finally:
        client.close()


def end_exec(gateway: Gateway, exec_id: str, grace: float = 2.0) -> None:
    """Hang up, then kill, what still runs of a session: its process, its children and its session."""
    deadline = time.monotonic() + 10
    while True:  # a session just started may not be running yet (no exit code either)
        raw = gateway.exec_inspect(exec_id)
        if raw.get("Running") or raw.get("ExitCode") is not None or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    pid = int(raw.get("Pid") or 0)
    if not raw.get("Running") or pid <= 1:
        return
    for sig in (signal.SIGHUP, signal.SIGKILL):
        targets = _session_of(pid)
        if not targets:
            return
        for target in targets:
            with contextlib.suppress(OSError):
                os.kill(target, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _session_of(pid):
            time.sleep(0.05)
    log.info("ended exec %s: its client was gone", exec_id[:12])


def _session_of(pid: int) -> list[int]:
    """`pid`, its descendants and the members of its session, all in `pid`'s own PID namespace (never one
    of the host's processes: the session's process runs in the container's namespace, not ds01d's)."""
    try:
        ns = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return []
    if ns == os.readlink("/proc/self/ns/pid"):
        return []  # not in a container: not something ds01d will signal
    procs: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            procs[int(entry)] = (int(fields[1]), int(fields[3]))  # ppid, session id
        except (OSError, IndexError, ValueError):
            continue
    if pid not in procs:
        return []
    found = {pid}
    grew = True
    while grew:
        grew = False
        for p, (ppid, sid) in procs.items():
            if p not in found and (ppid in found or sid == pid):
                found.add(p)
                grew = True
    out = []
    for p in sorted(found):
        try:
            if os.readlink(f"/proc/{p}/ns/pid") == ns:
                out.append(p)
        except OSError:
            continue
    return out


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
