"""Builds inside ds01d: the legacy builder's `POST /build` from an archive, with ds01d's labels, and the
engine's events followed (failure detected here) while each is forwarded to the client.

Confinement (CONTRACT §6): every RUN step gets the owner's CPU and memory limits (`cpuquota`/`cpuperiod`,
`memory`, `memswap`), a pids limit through a cgroup parent ds01d makes (the build API has no pids
parameter; see `pids_cgroup`), no network unless `images.build_network` (or a proxy) asks for one, and the
build is stopped at `images.build_timeout_m`: ds01d cuts its connection to the engine, which cancels the
build and kills the step's container. One build per user runs at a time; a second is refused (exit 4).

The request carries no registry credentials and none of root's `~/.docker/config.json` headers: it goes out
through the requests session itself, not docker-py's `build` (which sends `X-Registry-Config`) nor its
`_post` (which adds the config's `HttpHeaders`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ds01 import units
from ds01.context import Context
from ds01.errors import OperationFailed, QuotaExceeded
from ds01.identity import User
from ds01.project.build_view import BuildResult, BuildView, NullView, follow

Emit = Callable[[Mapping[str, Any]], None]
log = logging.getLogger(__name__)

CPU_PERIOD = 100_000  # µs, the kernel's default CFS period
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "ds01-build"


@dataclass(frozen=True)
class BuildLimits:
    """What confines a build's RUN steps (None: no limit of that kind)."""

    memory: int | None = None
    memswap: int | None = None
    nano_cpus: int | None = None
    pids: int | None = None
    network: str = "none"
    timeout_s: float | None = None
    timeout_m: float | None = None  # as configured, for the message

    def params(self) -> dict[str, str]:
        out = {"networkmode": self.network}
        if self.memory is not None:
            out["memory"] = str(self.memory)
            out["memswap"] = str(self.memswap if self.memswap is not None else self.memory)
        if self.nano_cpus:
            out["cpuperiod"] = str(CPU_PERIOD)
            out["cpuquota"] = str(max(1000, self.nano_cpus * CPU_PERIOD // 1_000_000_000))
        return out

    def describe(self) -> str:
        parts = []
        if self.nano_cpus:
            parts.append(f"{self.nano_cpus / 1e9:g} CPUs")
        if self.memory is not None:
            parts.append(f"{units.format_size(self.memory)} memory")
        if self.pids is not None:
            parts.append(f"{self.pids} processes")
        parts.append(f"network {self.network}")
        if self.timeout_m is not None:
            parts.append(f"{self.timeout_m:g} min")
        return ", ".join(parts)


def build_limits(ctx: Context, owner: User) -> BuildLimits:
    """The owner's container limits, the build network and the timeout, from the config."""
    from ds01.atomic.container_spec import limit_args
    from ds01.atomic.networks import build_network

    lim = limit_args(ctx.limits_for(owner).limits)
    images = ctx.config.images
    return BuildLimits(
        memory=lim.mem_limit, memswap=lim.memswap_limit, nano_cpus=lim.nano_cpus, pids=lim.pids_limit,
        network=build_network(ctx, owner), timeout_s=images.build_timeout_m * 60.0,
        timeout_m=images.build_timeout_m,
    )  # fmt: skip


# -- one build per user -----------------------------------------------------------------------------------

_running: set[int] = set()
_running_lock = threading.Lock()


@contextlib.contextmanager
def one_build_per_user(owner: User) -> Iterator[None]:
    """At most one build per user at a time: a second is refused at once (exit 4), never queued."""
    with _running_lock:
        if owner.uid in _running:
            raise QuotaExceeded(
                f"{owner.name} already has a build running: one build per user at a time",
                hint="wait for it to finish (or stop it with Ctrl-C), then build again",
            )
        _running.add(owner.uid)
    try:
        yield
    finally:
        with _running_lock:
            _running.discard(owner.uid)


# -- the pids limit ---------------------------------------------------------------------------------------


def _engine_local_cgroupfs(ctx: Context) -> str | None:
    """`1` or `2` when the engine is on this host with the cgroupfs driver (its cgroups are ours to make)."""
    from ds01.engine_api import unix_socket_path

    if unix_socket_path(ctx.gateway.address) is None:
        return None
    try:
        info = ctx.gateway.info()
    except Exception:  # no pids limit is the answer when the engine does not say
        return None
    if info.get("CgroupDriver") != "cgroupfs":
        return None
    version = str(info.get("CgroupVersion") or "1")
    return version if version in ("1", "2") else None


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@contextlib.contextmanager
def pids_cgroup(ctx: Context, owner: User, pids: int | None) -> Iterator[str | None]:
    """A cgroup parent (`/ds01-build/u<uid>.<pid>`) whose `pids.max` caps every RUN step of the owner's build,
    made for the build and removed after it. Only where the engine is local with the cgroupfs driver;
    elsewhere (systemd driver, remote engine) None: the build then has no pids limit, and ds01d logs why."""
    version = _engine_local_cgroupfs(ctx) if pids is not None else None
    if version is None:
        if pids is not None:
            log.info(
                "build of %s: no pids limit (the engine is not local with the cgroupfs driver)", owner.name
            )
        yield None
        return
    top = CGROUP_ROOT / "pids" / CGROUP_PARENT if version == "1" else CGROUP_ROOT / CGROUP_PARENT
    leaf = top / _leaf(owner.uid)
    _sweep(top, version)
    try:
        top.mkdir(mode=0o755, exist_ok=True)
        if version == "2":
            _write(CGROUP_ROOT / "cgroup.subtree_control", "+pids")
            _write(top / "cgroup.subtree_control", "+pids")
        leaf.mkdir(mode=0o755, exist_ok=True)
        _write(leaf / "pids.max", str(pids))
    except OSError as exc:
        log.warning("build of %s: no pids limit (cannot make %s: %s)", owner.name, leaf, exc)
        yield None
        return
    try:
        yield f"/{CGROUP_PARENT}/{leaf.name}"
    finally:
        _remove_cgroup(leaf.name, version)


def _leaf(uid: int) -> str:
    """`u<uid>.<ds01d's pid>`: the owner's one build in this ds01d (another ds01d on the host, e.g. a test's,
    never shares it)."""
    return f"u{uid}.{os.getpid()}"


def _remove_cgroup(name: str, version: str, wait_s: float = 3.0) -> None:
    """The build's cgroup folders in every hierarchy (the engine makes one under each controller). The engine
    removes a cancelled step's cgroup a moment after the build ends: a busy folder is tried again for up to
    `wait_s`, and one still left is swept by a later build (`_sweep`)."""
    rel = Path(CGROUP_PARENT) / name
    roots = [CGROUP_ROOT]
    if version == "1":
        roots = [p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink()]
    deadline = time.monotonic() + wait_s
    for root in roots:
        node = root / rel
        while node.is_dir():
            for child in (c for c in node.iterdir() if c.is_dir()):
                with contextlib.suppress(OSError):
                    child.rmdir()
            with contextlib.suppress(OSError):
                node.rmdir()
            if not node.is_dir() or time.monotonic() > deadline:
                break
            time.sleep(0.1)


def _sweep(top: Path, version: str) -> None:
    """Leaves of builds whose ds01d is gone (a restart, a kill)."""
    with contextlib.suppress(OSError):
        for leaf in top.iterdir():
            uid, dot, pid = leaf.name.partition(".")
            if leaf.is_dir() and dot and uid.startswith("u") and pid.isdigit() and not _alive(int(pid)):
                _remove_cgroup(leaf.name, version, wait_s=0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the request ------------------------------------------------------------------------------------------


def _socket_of(response: Any) -> socket.socket | None:
    """The connection under a streamed requests response (urllib3 → http.client → socket.makefile)."""
    with contextlib.suppress(AttributeError):
        sock = response.raw._fp.fp.raw._sock
        if isinstance(sock, socket.socket):
            return sock
    with contextlib.suppress(AttributeError):
        sock = response.raw._connection.sock
        if isinstance(sock, socket.socket):
            return sock
    return None


class _Watchdog:
    """Cuts the engine connection of a build at its deadline: the engine then cancels the build."""

    def __init__(self, response: Any, seconds: float | None) -> None:
        self.fired = False
        self._response = response
        self._timer = threading.Timer(seconds, self._cut) if seconds else None
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()

    def _cut(self) -> None:
        self.fired = True
        sock = _socket_of(self._response)
        with contextlib.suppress(OSError):
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._response.close()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _over_time(limits: BuildLimits) -> OperationFailed:
    return OperationFailed(
        f"the build ran over {limits.timeout_m:g} min (images.build_timeout_m) and was stopped",
        hint="make the slow step faster, or ask an admin to raise images.build_timeout_m",
    )


def engine_build(
    ctx: Context,
    archive: IO[bytes],
    *,
    dockerfile: str,
    tag: str,
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
    nocache: bool = False,
    limits: BuildLimits | None = None,
    cgroup_parent: str | None = None,
) -> Iterator[dict[str, Any]]:
    """The builder's JSON events for an uncompressed tar context (no credentials are sent)."""
    from ds01.docker_gateway import engine_errors

    limits = limits or BuildLimits()
    api = ctx.gateway.api
    params = {
        "t": tag, "dockerfile": dockerfile, "rm": "1", "forcerm": "1", "q": "0", "pull": "0",
        "nocache": "1" if nocache else "0",
        "buildargs": json.dumps(dict(buildargs)), "labels": json.dumps(dict(labels)),
        **limits.params(),
    }  # fmt: skip
    if cgroup_parent:
        params["cgroupparent"] = cgroup_parent
    watchdog: _Watchdog | None = None
    response = None
    try:
        with engine_errors(f"build {tag}"):
            # the session's own post: no docker-py decorator adds headers from root's Docker config
            response = api.post(
                api._url("/build"),
                data=archive,
                params=params,
                headers={"Content-Type": "application/x-tar"},
                stream=True,
                timeout=None,
            )
            watchdog = _Watchdog(response, limits.timeout_s)
            api._raise_for_status(response)
            for event in api._stream_helper(response, decode=True):
                if watchdog.fired:
                    break
                if isinstance(event, dict):
                    yield event
    except Exception:
        if watchdog is not None and watchdog.fired:
            raise _over_time(limits) from None
        raise
    finally:
        if watchdog is not None:
            watchdog.cancel()
        if response is not None:
            response.close()  # a build left early (client gone, time up) is cancelled by the engine
    if watchdog is not None and watchdog.fired:
        raise _over_time(limits)


def forwarded(events: Iterator[dict[str, Any]], emit: Emit) -> Iterator[dict[str, Any]]:
    for event in events:
        emit(event)
        yield event


def run_build(
    ctx: Context,
    archive: IO[bytes],
    *,
    dockerfile: str,
    tag: str,
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
    nocache: bool = False,
    emit: Emit | None = None,
    view: BuildView | None = None,
    owner: User | None = None,
) -> BuildResult:
    """Build and follow: the events go to `emit` (the client) as they come; a failure raises exit 1.

    With `owner`, the build is confined to the owner's limits (and is the owner's one build)."""
    from ds01.atomic.images import human_size

    if owner is None:  # the lab's base images (admins): no user's limits apply
        return _follow(ctx, archive, dockerfile, tag, buildargs, labels, nocache, emit, view, None, None)
    with one_build_per_user(owner):
        limits = build_limits(ctx, owner)
        with pids_cgroup(ctx, owner, limits.pids) as parent:
            try:
                return _follow(
                    ctx, archive, dockerfile, tag, buildargs, labels, nocache, emit, view, limits, parent
                )
            except OperationFailed as exc:
                if "non-zero code: 137" in exc.message and limits.memory is not None:
                    raise OperationFailed(
                        f"{exc.message} (killed: a build step may use at most "
                        f"{human_size(limits.memory)} of memory, your limit)",
                        hint="use less memory in that step, or ask an admin for a higher memory limit",
                    ) from None
                raise


def _follow(
    ctx: Context,
    archive: IO[bytes],
    dockerfile: str,
    tag: str,
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
    nocache: bool,
    emit: Emit | None,
    view: BuildView | None,
    limits: BuildLimits | None,
    parent: str | None,
) -> BuildResult:
    events = engine_build(
        ctx, archive, dockerfile=dockerfile, tag=tag, buildargs=buildargs, labels=labels, nocache=nocache,
        limits=limits, cgroup_parent=parent,
    )  # fmt: skip
    if emit is not None:
        events = forwarded(events, emit)
    return follow(events, view or NullView())
