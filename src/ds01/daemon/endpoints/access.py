"""Endpoints: the ways into a container (SSH, Jupyter, ports). See `atomic/access.py` for the mechanisms.

Ownership is `find_container`'s (missing: exit 3; someone else's: exit 5; admins: any). Every session and
server runs as the container's owner, never root; every socket is in the owner's 0700 run folder.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

# the session machinery of exec (the stream handed over by SCM_RIGHTS, a session ending with its client)
from ds01.daemon.endpoints.exec import (
    RUNNING,
    ClientProcess,
    Handoff,
    _end_with_client,
    end_exec,
    exec_user,
    passes_stream,
)
from ds01.daemon.routes import Request, route
from ds01.daemon.schema import limit
from ds01.daemon.service import ExecSession
from ds01.errors import NotFound, OperationFailed

if TYPE_CHECKING:
    from ds01.atomic.container_view import ContainerView
    from ds01.context import Context
    from ds01.identity import User

log = logging.getLogger("ds01d")

USER = limit(max_len=64)


@dataclass(frozen=True)
class SshBody:
    keys: str = field(metadata=limit(max_len=65536))
    user: str | None = field(default=None, metadata=USER)
    start: bool = True


@dataclass(frozen=True)
class JupyterBody:
    user: str | None = field(default=None, metadata=USER)
    start: bool = True


@dataclass(frozen=True)
class UserBody:
    user: str | None = field(default=None, metadata=USER)


@dataclass(frozen=True)
class PortBody:
    port: int = field(metadata=limit(min=1, max=65535))
    user: str | None = field(default=None, metadata=USER)
    start: bool = True


def _restore(req: Request[Any]) -> None:
    """The port relays a previous ds01d ran, opened again at the first access request after a restart."""
    from ds01.atomic import access

    try:
        access.RELAYS.restore(req.daemon.gateway, req.ctx.config.paths)
    except Exception:  # never in the way of the request itself
        log.warning("restoring port relays failed", exc_info=True)


def _owner(view: ContainerView) -> User:
    from ds01.identity import user_by_uid

    exec_user(view)  # a lab member's container, or exit 5
    assert view.uid is not None
    return user_by_uid(view.uid)


def _running(ctx: Context, view: ContainerView, start: bool) -> ContainerView:
    from ds01.atomic.containers import start_container

    if view.state in RUNNING:
        return view
    if not start:
        raise OperationFailed(
            f"{view.name} is {view.state}, not running", hint=f"start it with container-start {view.name}"
        )
    start_container(ctx, view)
    ctx.out.info(f"started {view.name}")
    return replace(view, state="running")


@route("POST", "/containers/{name}/ssh", SshBody)
@passes_stream
def ssh_session(req: Request[SshBody], handoff: Handoff) -> dict[str, Any]:
    from ds01.atomic import access
    from ds01.atomic.containers import find_container

    _restore(req)
    ctx, b = req.ctx, req.body
    view = find_container(ctx, req.params["name"], user=b.user)
    user = exec_user(view)
    owner = _owner(view)
    keys = access.clean_keys(b.keys)  # before anything starts: a bad key file is exit 2
    view = _running(ctx, view, b.start)
    gateway = ctx.gateway
    cmd, env = access.ssh_exec(ctx.config.paths, owner, view.name, gateway.inspect(view.id), keys)
    client = ClientProcess.of(req.caller.pid)
    try:
        exec_id = gateway.exec_create(
            view.id, cmd, user=user, workdir=access.WORKDIR, tty=False, stdin=True, environment=env
        )
        stream = gateway.exec_attach(exec_id, tty=False)
    except BaseException:
        client.close()
        raise
    threading.Thread(
        target=_end_with_client, args=(client, gateway, exec_id, req.daemon.stopping), daemon=True,
        name=f"ssh-{exec_id[:12]}",
    ).start()  # fmt: skip
    try:
        handoff.stream(stream)
    finally:
        stream.close()
    req.daemon.remember_exec(ExecSession(exec_id=exec_id, uid=req.caller.uid, container_id=view.id))
    return {"exec_id": exec_id, "tty": False}


@route("GET", "/containers/{name}/ssh-host-key", UserBody)
def ssh_host_key(req: Request[UserBody]) -> dict[str, Any]:
    from ds01.atomic import access
    from ds01.atomic.containers import find_container

    _restore(req)

    view = find_container(req.ctx, req.params["name"], user=req.body.user)
    _, public = access.host_key(req.ctx.config.paths, _owner(view), view.name)
    return {"project": view.name, "host_key": public}


# -- ports -------------------------------------------------------------------------------------------------
def _describe(req: Request[Any], relay: Any) -> dict[str, Any]:
    return {**relay.describe(), "user": req.ctx.user.name}


@route("POST", "/containers/{name}/ports", PortBody)
def port_open(req: Request[PortBody]) -> dict[str, Any]:
    from ds01.atomic import access
    from ds01.atomic.containers import find_container

    _restore(req)
    ctx, b = req.ctx, req.body
    port = access.check_port(b.port)
    view = find_container(ctx, req.params["name"], user=b.user)
    owner = _owner(view)
    view = _running(ctx, view, b.start)
    relay = access.RELAYS.open(req.daemon.gateway, ctx.config.paths, owner, view.name, view.docker_name, port)
    return relay.describe()


@route("GET", "/containers/{name}/ports", UserBody)
def port_list(req: Request[UserBody]) -> list[dict[str, Any]]:
    from ds01.atomic import access
    from ds01.atomic.containers import find_container

    _restore(req)

    view = find_container(req.ctx, req.params["name"], user=req.body.user)
    owner = _owner(view)
    return [r.describe() for r in access.RELAYS.of(owner.uid, view.name)]


@route("DELETE", "/containers/{name}/ports/{port}", UserBody)
def port_close(req: Request[UserBody]) -> dict[str, Any]:
    from ds01.atomic import access
    from ds01.atomic.containers import find_container

    _restore(req)
    from ds01.errors import UsageError

    raw = req.params["port"]
    if not raw.isdigit():
        raise UsageError(f"port {raw[:16]!r} is not a number", hint="e.g. container-port NAME 8000 --remove")
    port = access.check_port(int(raw))
    view = find_container(req.ctx, req.params["name"], user=req.body.user)
    owner = _owner(view)
    if not access.RELAYS.close(req.ctx.config.paths, owner, view.name, access.port_socket_name(port)):
        raise NotFound(
            f"{view.name} has no relay for port {port}", hint=f"see container-port {view.name} --list"
        )
    return {"removed": True, "port": port}


# -- Jupyter -----------------------------------------------------------------------------------------------
def _jupyter_answer(relay: Any, record: dict[str, Any], started: bool) -> dict[str, Any]:
    return {
        "project": relay.project,
        "socket": relay.path,
        "token": record["token"],
        "url": f"http://localhost:{8888}/?token={record['token']}",
        "started": started,
    }


def _jupyter_live(ctx: Context, view: ContainerView, record: dict[str, Any] | None) -> bool:
    """The recorded notebook server still runs in this very container (a redeploy or a restart ends it)."""
    from ds01.errors import Ds01Error

    if not record or record.get("container_id") != view.id or view.state not in RUNNING:
        return False
    try:
        return bool(ctx.gateway.exec_inspect(str(record["exec_id"])).get("Running"))
    except Ds01Error:  # the engine forgets the execs of a container that stopped
        return False


def _jupyter_relay(req: Request[Any], owner: User, view: ContainerView) -> Any:
    """The relay to the notebook server: the one running, or a new one (e.g. after ds01d restarted)."""
    from ds01.atomic import access

    relay = access.RELAYS.get(owner.uid, view.name, access.JUPYTER_SOCKET)
    if relay is not None:
        return relay
    return access.RELAYS.open(
        req.daemon.gateway, req.ctx.config.paths, owner, view.name, view.docker_name, access.JUPYTER_PORT,
        filename=access.JUPYTER_SOCKET, kind="jupyter",
    )  # fmt: skip


@route("POST", "/containers/{name}/jupyter", JupyterBody)
def jupyter_start(req: Request[JupyterBody]) -> dict[str, Any]:
    from ds01.atomic import access
    from ds01.atomic.containers import find_container

    _restore(req)
    ctx, b = req.ctx, req.body
    paths = ctx.config.paths
    view = find_container(ctx, req.params["name"], user=b.user)
    user = exec_user(view)
    owner = _owner(view)
    view = _running(ctx, view, b.start)
    gateway = ctx.gateway
    record = access.read_jupyter(paths, view.docker_name)
    if record is not None and _jupyter_live(ctx, view, record):
        return _jupyter_answer(_jupyter_relay(req, owner, view), record, started=False)
    token = access.new_token()
    exec_id = access.start_jupyter(gateway, view, user, token)
    try:
        access.wait_listening(gateway, view, exec_id, access.JUPYTER_PORT, wait=60.0)
    except BaseException:
        end_exec(gateway, exec_id)
        raise
    record = {"token": token, "exec_id": exec_id, "container_id": view.id}
    access.write_jupyter(paths, view.docker_name, record)
    return _jupyter_answer(_jupyter_relay(req, owner, view), record, started=True)


@route("GET", "/containers/{name}/jupyter", UserBody)
def jupyter_show(req: Request[UserBody]) -> dict[str, Any]:
    from ds01.atomic import access
    from ds01.atomic.containers import find_container

    _restore(req)
    ctx = req.ctx
    view = find_container(ctx, req.params["name"], user=req.body.user)
    owner = _owner(view)
    record = access.read_jupyter(ctx.config.paths, view.docker_name)
    if record is None or not _jupyter_live(ctx, view, record):
        raise NotFound(
            f"{view.name} runs no Jupyter server", hint=f"start one with container-jupyter {view.name}"
        )
    return _jupyter_answer(_jupyter_relay(req, owner, view), record, started=False)


@route("DELETE", "/containers/{name}/jupyter", UserBody)
def jupyter_stop(req: Request[UserBody]) -> dict[str, Any]:
    from ds01.atomic import access
    from ds01.atomic.containers import find_container

    _restore(req)
    ctx = req.ctx
    paths = ctx.config.paths
    view = find_container(ctx, req.params["name"], user=req.body.user)
    owner = _owner(view)
    record = access.read_jupyter(paths, view.docker_name)
    stopped = access.RELAYS.close(paths, owner, view.name, access.JUPYTER_SOCKET)
    if record is not None and _jupyter_live(ctx, view, record):
        end_exec(ctx.gateway, str(record["exec_id"]))
        stopped = True
    access.forget_jupyter(paths, view.docker_name)
    return {"stopped": stopped, "project": view.name}
