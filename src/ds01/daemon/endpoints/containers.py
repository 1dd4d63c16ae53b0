"""Endpoints: containers (CONTRACT §4 L2 verbs). Ownership is checked by `find_container` for every named
container (missing: exit 3; someone else's: exit 5; admins: any); `--user` goes through
`Context.target_user` (admins only, never root or a system account). Mount sources are judged again by
`start_container` at every start (deploy starts through it too)."""

from __future__ import annotations

import codecs
import contextlib
import select
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ds01 import naming
from ds01.daemon.routes import Request, route
from ds01.daemon.schema import limit
from ds01.errors import PermissionDenied

if TYPE_CHECKING:
    from ds01.atomic.container_view import ContainerView
    from ds01.context import Context

NAME = limit(max_len=128)
USER = limit(max_len=64)
PATH = limit(max_len=1024)


@dataclass(frozen=True)
class ListBody:
    all_users: bool = False
    status: str | None = field(default=None, metadata=limit(max_len=32))
    user: str | None = field(default=None, metadata=USER)


@dataclass(frozen=True)
class UserBody:
    user: str | None = field(default=None, metadata=USER)


@dataclass(frozen=True)
class CreateBody:
    name: str = field(metadata=limit(max_len=1024))  # naming.normalise_name says what is wrong with it
    image: str | None = field(default=None, metadata=limit(max_len=512))
    gpus: int | None = field(default=None, metadata=limit(max=1024))
    mig_profile: str | None = field(default=None, metadata=limit(max_len=32))
    cpu_only: bool = False
    workspace: str | None = field(default=None, metadata=PATH)
    data: str | None = field(default=None, metadata=PATH)
    command: tuple[str, ...] | None = None
    image_cmd: bool = False
    dry_run: bool = False
    user: str | None = field(default=None, metadata=USER)
    interface: str = field(default="atomic", metadata=limit(choices=naming.INTERFACES))


@dataclass(frozen=True)
class StopBody:
    user: str | None = field(default=None, metadata=USER)
    timeout: int = field(default=10, metadata=limit(min=0, max=86400))
    force: bool = False


@dataclass(frozen=True)
class RemoveBody:
    user: str | None = field(default=None, metadata=USER)
    force: bool = False


@dataclass(frozen=True)
class LogsBody:
    user: str | None = field(default=None, metadata=USER)
    follow: bool = False
    tail: int | None = field(default=None, metadata=limit(min=0, max=10_000_000))


@dataclass(frozen=True)
class StatsBody:
    name: str | None = field(default=None, metadata=NAME)
    all_users: bool = False
    user: str | None = field(default=None, metadata=USER)


def _find(req: Request[Any], user: str | None) -> ContainerView:
    from ds01.atomic.containers import find_container

    return find_container(req.ctx, req.params["name"], user=user)


def entry_of(ctx: Context, view: ContainerView, *, refresh: bool = True) -> dict[str, Any]:
    """The container-list entry, read again from the engine after a change (unless `refresh=False`)."""
    from ds01.atomic.container_view import ContainerView, list_entry
    from ds01.atomic.containers import known_slots

    if refresh:
        view = ContainerView.from_inspect(ctx.gateway.inspect(view.id))
    return list_entry(view, known_slots(ctx, [view]))


@route("GET", "/containers", ListBody)
def list_containers(req: Request[ListBody]) -> list[dict[str, Any]]:
    from ds01.atomic.container_view import list_entry
    from ds01.atomic.containers import known_slots, list_views

    ctx, b = req.ctx, req.body
    if b.all_users and not ctx.is_admin:
        raise PermissionDenied("--all-users is for admins", hint="drop it to list your own containers")
    owner = None if b.all_users else ctx.target_user(b.user)
    views = list_views(ctx, owner=owner, status=b.status)
    known = known_slots(ctx, views)
    entries = [list_entry(v, known) for v in views]
    if ctx.config.cluster.slurm:  # cluster mode: each one's Slurm job, and the jobs still pending
        from ds01.atomic.slurm_jobs import with_slurm_jobs

        pending = b.status in (None, "pending")
        entries = with_slurm_jobs(entries, owner.name if owner else None, pending=pending)
    return entries


@route("POST", "/containers", CreateBody)
def create(req: Request[CreateBody]) -> dict[str, Any]:
    from ds01.atomic.container_create import CreateRequest, create_container
    from ds01.errors import UsageError

    ctx, b = req.ctx, req.body
    if b.command is not None and b.image_cmd:
        raise UsageError("--command and --image-cmd exclude each other", hint="pick one")
    request = CreateRequest(
        name=b.name, image=b.image, gpus=b.gpus, mig_profile=b.mig_profile, cpu_only=b.cpu_only,
        workspace=b.workspace, data=b.data, command=() if b.image_cmd else b.command, interface=b.interface,
    )  # fmt: skip
    result = create_container(ctx, ctx.target_user(b.user), request, dry_run=b.dry_run)
    if b.dry_run:
        return {"dry_run": True, "command": result.spec.docker_create_argv(), "container": result.entry}
    return result.entry


@route("GET", "/containers/{name}", UserBody)
def inspect(req: Request[UserBody]) -> dict[str, Any]:
    return entry_of(req.ctx, _find(req, req.body.user), refresh=False)


@route("POST", "/containers/{name}/start", UserBody)
def start(req: Request[UserBody]) -> dict[str, Any]:
    from ds01.atomic.containers import start_container

    view = _find(req, req.body.user)
    result = start_container(req.ctx, view)
    return {"action": result.action, "entry": entry_of(req.ctx, view)}


@route("POST", "/containers/{name}/stop", StopBody)
def stop(req: Request[StopBody]) -> dict[str, Any]:
    from ds01.atomic.containers import gpu_hold_hours, stop_container

    ctx, b = req.ctx, req.body
    view = _find(req, b.user)
    stopped = stop_container(ctx, view, timeout=b.timeout, force=b.force)
    hold = gpu_hold_hours(ctx, view) if view.gpu_slots else None
    return {"stopped": stopped, "entry": entry_of(ctx, view), "hold_h": hold}


@route("POST", "/containers/{name}/pause", UserBody)
def pause(req: Request[UserBody]) -> dict[str, Any]:
    from ds01.atomic.containers import pause_container

    view = _find(req, req.body.user)
    pause_container(req.ctx, view)
    return entry_of(req.ctx, view)


@route("POST", "/containers/{name}/unpause", UserBody)
def unpause(req: Request[UserBody]) -> dict[str, Any]:
    from ds01.atomic.containers import unpause_container

    view = _find(req, req.body.user)
    unpause_container(req.ctx, view)
    return entry_of(req.ctx, view)


@route("DELETE", "/containers/{name}", RemoveBody)
def remove(req: Request[RemoveBody]) -> dict[str, Any]:
    from ds01.atomic.containers import remove_container

    view = _find(req, req.body.user)
    remove_container(req.ctx, view, force=req.body.force)
    return {
        "removed": view.docker_name,
        "name": view.name,
        "freed_gpus": view.gpu_slots,
        "workspace": view.labels.get(naming.LABEL_WORKSPACE, ""),
    }


@route("GET", "/containers/{name}/logs", LogsBody)
def logs(req: Request[LogsBody]) -> dict[str, Any]:
    """Events `{"data": text}` as the engine sends them; with `follow` until the container stops or the
    client goes away (then the engine stream is closed, so no thread is left waiting on it)."""
    from ds01.atomic.containers import container_logs

    b = req.body
    view = _find(req, b.user)
    stream = container_logs(req.ctx, view, follow=b.follow, tail=b.tail)
    gone = threading.Event()
    done = threading.Event()
    if b.follow and isinstance(req.connection, socket.socket):
        threading.Thread(
            target=_watch_client, args=(req.connection, stream, gone, done), daemon=True, name="logs-watch"
        ).start()
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    try:
        for chunk in stream:
            text = decoder.decode(chunk)
            if text:
                req.emit("event", {"data": text})
        rest = decoder.decode(b"", final=True)
        if rest:
            req.emit("event", {"data": rest})
    except Exception:
        if not gone.is_set():
            raise  # a real failure; a stream closed under us because the client left is not one
    finally:
        done.set()
        _close(stream)
    return {}


def _close(stream: Iterator[bytes]) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()


def _watch_client(
    conn: socket.socket, stream: Iterator[bytes], gone: threading.Event, done: threading.Event
) -> None:
    """The client sends nothing after its request: the socket turning readable means it went away."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLHUP | select.POLLRDHUP | select.POLLERR)
    while not done.is_set():
        if not poller.poll(500):
            continue
        try:
            data = conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if data:
            return  # unexpected bytes: stop watching, the stream ends with the container
        gone.set()
        _close(stream)
        return


@route("GET", "/stats", StatsBody)
def stats(req: Request[StatsBody]) -> list[dict[str, Any]]:
    from ds01.atomic.container_stats import collect_stats
    from ds01.atomic.containers import find_container, list_views

    ctx, b = req.ctx, req.body
    if b.all_users and not ctx.is_admin:
        raise PermissionDenied("--all-users is for admins", hint="drop it to see your own containers")
    if b.name:
        views = [find_container(ctx, b.name, user=b.user)]
    else:
        views = list_views(ctx, owner=None if b.all_users else ctx.target_user(b.user))
    return [r.as_dict() for r in collect_stats(ctx, views)]
