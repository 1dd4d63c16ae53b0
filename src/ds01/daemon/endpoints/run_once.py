"""Endpoint: `container-run NAME --rm -- CMD`, a one-shot command in a fresh container (CI-style runs).

ds01d creates `<name>-run-<6 hex>` from the project's image exactly as a create does (the project's
workspace at /workspace, the owner's limits, user and labels; CPU-only unless `gpus`; it counts against the
quotas while it exists), starts it, and hands over the command's exec stream like `exec` does (marker `F`
with the descriptor, then `{exec_id, tty, container}`). The client reads the exit code and removes the
container; if the client process ends first (Ctrl-C, killed), ds01d ends the command and removes it.
The project's own `NAME` container, if any, is not touched.

The container carries its client in the label `ds01.run_once` (`<pid>:<start time>:<uid>`), so a ds01d
restarted meanwhile (or killed) settles it when it starts (`settle_runs`): a run whose client still runs is
watched again (and its session known again, for the exit code), every other is removed. The workspace is
never touched.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ds01 import naming
from ds01.daemon.endpoints.exec import (
    SESSION_CHECK_S,
    WORKDIR,
    ClientProcess,
    Handoff,
    end_exec,
    exec_user,
    passes_stream,
    session_env,
    start_time,
)
from ds01.daemon.routes import Request, route
from ds01.daemon.schema import limit
from ds01.daemon.service import ExecSession
from ds01.errors import NotFound, UsageError

if TYPE_CHECKING:
    from ds01.context import Context
    from ds01.daemon.service import Daemon
    from ds01.identity import User

log = logging.getLogger("ds01d")
RUN_INFIX = "-run-"
MAX_BASE = 63 - len(RUN_INFIX) - 6
RETRY_S = 3.0


@dataclass(frozen=True)
class RunOnceBody:
    cmd: tuple[str, ...] = field(metadata=limit(max_len=4096))
    user: str | None = field(default=None, metadata=limit(max_len=64))
    tty: bool = False
    stdin: bool = False
    gpus: int | None = field(default=None, metadata=limit(min=0, max=1024))
    mig_profile: str | None = field(default=None, metadata=limit(max_len=32))


def run_name(name: str) -> str:
    """`<name>-run-<6 hex>`, within the naming rules (a long name is cut to fit)."""
    base = name[:MAX_BASE].rstrip("-_.") or "run"
    return naming.normalise_name(f"{base}{RUN_INFIX}{secrets.token_hex(3)}")


def _image_of(ctx: Context, owner: User, name: str, user: str | None) -> str:
    """The project's image; else, when only the project's container exists, the image it runs."""
    from ds01.atomic.container_create import resolve_image
    from ds01.atomic.containers import find_container

    try:
        return resolve_image(ctx.gateway, None, name, owner)[0]
    except NotFound:
        try:
            view = find_container(ctx, name, user=user)
        except NotFound:
            raise NotFound(
                f"project {name!r} has no image yet ({naming.image_name(name, owner.uid)})",
                hint=f"build it with `image-create {name}`",
            ) from None
        return view.image


@route("POST", "/containers/{name}/run-once", RunOnceBody)
@passes_stream
def run_once(req: Request[RunOnceBody], handoff: Handoff) -> dict[str, Any]:
    from ds01.atomic.container_create import CreateRequest, create_container
    from ds01.atomic.container_view import ContainerView
    from ds01.atomic.containers import start_container

    ctx, b = req.ctx, req.body
    if not b.cmd:
        raise UsageError("--rm needs a command", hint="e.g. container-run NAME --rm -- pytest")
    owner = ctx.target_user(b.user)
    name = naming.normalise_name(req.params["name"])
    image = _image_of(ctx, owner, name, b.user)
    gpus = bool(b.gpus) or bool(b.mig_profile)
    client = ClientProcess.of(req.caller.pid)  # before anything exists: no pid reuse can fool it
    request = CreateRequest(
        name=run_name(name), image=image, gpus=b.gpus if gpus else None, mig_profile=b.mig_profile,
        cpu_only=not gpus, workspace=name,
        run_once=f"{req.caller.pid}:{start_time(req.caller.pid) or ''}:{req.caller.uid}",
    )  # fmt: skip
    gateway = ctx.gateway
    cid: str | None = None
    try:
        created = create_container(ctx, owner, request)
        cid = created.container_id
        assert cid is not None
        view = ContainerView.from_inspect(gateway.inspect(cid))
        user = exec_user(view)
        start_container(ctx, view)
        exec_id = gateway.exec_create(
            cid, list(b.cmd), user=user, workdir=WORKDIR, tty=b.tty, stdin=b.stdin,
            environment=session_env(view, b.tty),
        )  # fmt: skip
        stream = gateway.exec_attach(exec_id, tty=b.tty)
    except BaseException:
        client.close()
        if cid is not None:
            _remove(req.daemon, cid)
        raise
    _watch(client, req.daemon, cid, exec_id)
    try:
        handoff.stream(stream)
    finally:
        stream.close()
    req.daemon.remember_exec(ExecSession(exec_id=exec_id, uid=req.caller.uid, container_id=cid))
    ctx.out.info(f"running in {view.name} (removed when the command ends)")
    return {"exec_id": exec_id, "tty": b.tty, "container": view.name}


def _quiet_context(daemon: Daemon) -> Context:
    from ds01.context import Context
    from ds01.identity import user_by_uid
    from ds01.output import Output

    return Context(config=daemon.config, user=user_by_uid(0), out=Output(), gateway_factory=daemon.gateway)


def _remove(daemon: Daemon, cid: str) -> None:
    """Remove the run's container (whatever its state; its GPUs released); gone already is fine."""
    from ds01.atomic.container_view import ContainerView
    from ds01.atomic.host_paths import forget_staging
    from ds01.atomic.removal import remove_and_release

    ctx = _quiet_context(daemon)
    try:
        view = ContainerView.from_inspect(ctx.gateway.inspect(cid))
        remove_and_release(ctx, view, reason="run_once", by="ds01d", force=True)
        forget_staging(ctx.config.paths, view.docker_name)
    except NotFound:
        return
    except Exception:
        log.warning("could not remove the one-shot container %s", cid[:12], exc_info=True)


def _watch(client: ClientProcess, daemon: Daemon, cid: str, exec_id: str | None) -> None:
    threading.Thread(
        target=_remove_with_client, args=(client, daemon, cid, exec_id), daemon=True, name=f"run-{cid[:12]}"
    ).start()


def _remove_with_client(client: ClientProcess, daemon: Daemon, cid: str, exec_id: str | None) -> None:
    """Once the client process has ended (normally it removed the container itself), end what is left."""
    try:
        while not daemon.stopping.is_set():
            if client.wait(SESSION_CHECK_S):
                if exec_id is not None:
                    with contextlib.suppress(Exception):
                        end_exec(daemon.gateway(), exec_id)
                _remove(daemon, cid)
                return
    finally:
        client.close()


def _client_of(mark: str) -> tuple[ClientProcess | None, int | None]:
    """The client process a run's label names, if it still runs, and the uid that asked for the run."""
    pid, _, rest = mark.partition(":")
    started, _, uid = rest.partition(":")
    if not (pid.isdigit() and started.isdigit() and uid.isdigit()):
        return None, None
    client = ClientProcess.adopt(int(pid), started)
    if client is not None and client.wait(0):  # ended, not yet reaped
        client.close()
        return None, int(uid)
    return client, int(uid)


def settle_runs(daemon: Daemon) -> list[str]:
    """The one-shot containers a previous ds01d handed out: one whose client still runs is watched again (and
    its session known again, so the client gets its exit code); every other is removed now (the workspace
    is kept). Returns the names removed; the engine not answering raises (EngineUnavailable)."""
    from ds01.atomic.container_view import ContainerView

    gateway = daemon.gateway()
    removed: list[str] = []
    for summary in gateway.containers(labels=[naming.MANAGED_FILTER, naming.LABEL_RUN_ONCE]):
        view = ContainerView.from_summary(summary)
        mark = view.labels.get(naming.LABEL_RUN_ONCE) or ""
        if not mark:
            continue  # not a one-shot run
        client, uid = _client_of(mark)
        if client is None or uid is None:
            _remove(daemon, view.id)
            removed.append(view.docker_name)
            continue
        try:
            exec_ids = [str(e) for e in gateway.inspect(view.id).get("ExecIDs") or []]
        except NotFound:
            client.close()
            continue
        for exec_id in exec_ids:
            daemon.remember_exec(ExecSession(exec_id=exec_id, uid=uid, container_id=view.id))
        _watch(client, daemon, view.id, exec_ids[0] if exec_ids else None)
        log.info("run %s: watching its client (pid %d) again", view.docker_name, client.pid)
    if removed:
        log.warning("removed %d one-shot container(s) whose client was gone: %s", len(removed), removed)
    return removed


def start_settling(daemon: Daemon) -> None:
    """`settle_runs` now (before ds01d serves); when the engine does not answer, retried in the background
    every few seconds until it does."""
    try:
        settle_runs(daemon)
        return
    except Exception as exc:
        log.info("one-shot runs not settled yet (retrying): %s", exc)

    def retry() -> None:
        while not daemon.stopping.wait(RETRY_S):
            try:
                settle_runs(daemon)
                return
            except Exception as exc:
                log.debug("one-shot runs not settled yet: %s", exc)

    threading.Thread(target=retry, name="runs-settle", daemon=True).start()
