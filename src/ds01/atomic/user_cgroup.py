"""Per-user totals: every container of a user lives under one cgroup parent whose limits ds01d sets.

`max_cpus_total` and `memory_total` (layered like every key; `null` = no total) hold across all of a user's
containers, so three containers do not get three times `max_cpus` and `memory`. The parent goes into the
container's HostConfig `CgroupParent`:

- the engine's cgroupfs driver: `/ds01-u<uid>`, made by ds01d in the `memory` and `cpu` hierarchies
  (cgroup v1: `memory.limit_in_bytes`, `memory.memsw.limit_in_bytes`, `cpu.cfs_quota_us`; v2: `memory.max`,
  `memory.swap.max`, `cpu.max`);
- the systemd driver: the slice `ds01-u<uid>.slice`, whose `MemoryMax` and `CPUQuota` ds01d sets with
  `systemctl set-property --runtime`.

A ds01d with another state dir than the default (a second instance on one host, a test) names its parents
`ds01-<hash>-u<uid>`, so two instances never set each other's limits. Without totals no parent is used.
A container whose own `max_cpus` or `memory` is above the user's total could never run under it: create
refuses it (exit 4) and says why. Limits are written at each create and again by every lifecycle pass, so
a config edit reaches the parents of existing containers.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ds01.config import Config, Limits, PathSettings
from ds01.errors import QuotaExceeded
from ds01.units import format_size

if TYPE_CHECKING:
    from ds01.context import Context
    from ds01.identity import User

log = logging.getLogger("ds01d")
CGROUP_ROOT = Path("/sys/fs/cgroup")
CFS_PERIOD_US = 100_000
UNLIMITED_V1 = "-1"


@dataclass(frozen=True)
class Totals:
    cpus: float | None
    memory: int | None

    @property
    def any(self) -> bool:
        return self.cpus is not None or self.memory is not None


@dataclass(frozen=True)
class Engine:
    """How the engine makes cgroups: `cgroupfs` or `systemd`, cgroup `1` or `2`."""

    driver: str
    version: str


def totals(limits: Limits) -> Totals:
    return Totals(limits.max_cpus_total, limits.memory_total)


def check_fit(limits: Limits) -> None:
    """A container's own limits must fit in the user's totals, or it could never run: exit 4, saying why."""
    t = totals(limits)
    if t.cpus is not None and limits.max_cpus is not None and limits.max_cpus > t.cpus:
        raise QuotaExceeded(
            f"a container's max_cpus ({limits.max_cpus:g}) is more than your max_cpus_total "
            f"({t.cpus:g}) across all your containers: it could not run under your total",
            hint="ask an admin to set max_cpus at or below max_cpus_total for your group",
        )
    if t.memory is not None and limits.memory is not None and limits.memory > t.memory:
        raise QuotaExceeded(
            f"a container's memory ({format_size(limits.memory)}) is more than your memory_total "
            f"({format_size(t.memory)}) across all your containers: it could not run under your total",
            hint="ask an admin to set memory at or below memory_total for your group",
        )


def parent_stem(paths: PathSettings, uid: int) -> str:
    """`ds01-u<uid>` for the host's ds01d; another instance (its own state dir) gets its own names."""
    if paths.state_dir == PathSettings().state_dir:
        return f"ds01-u{uid}"
    tag = hashlib.sha256(str(paths.state_dir).encode()).hexdigest()[:8]
    return f"ds01-{tag}-u{uid}"


def engine_kind(ctx: Context) -> Engine | None:
    """The engine's cgroup driver, when it runs on this host (its cgroups are ours to limit); else None."""
    from ds01.engine_api import unix_socket_path

    if unix_socket_path(ctx.gateway.address) is None:
        return None
    try:
        info = ctx.gateway.info()
    except Exception:  # no totals is the answer when the engine does not say
        return None
    driver = str(info.get("CgroupDriver") or "cgroupfs")
    version = str(info.get("CgroupVersion") or "1")
    if driver not in ("cgroupfs", "systemd") or version not in ("1", "2"):
        return None
    return Engine(driver, version)


def cgroup_parent(engine: Engine, stem: str) -> str:
    return f"{stem}.slice" if engine.driver == "systemd" else f"/{stem}"


def prepare(ctx: Context, owner: User, limits: Limits) -> str | None:
    """The CgroupParent for a new container of `owner`, its limits set; None when the user has no totals
    (or the engine is not on this host, which the log says)."""
    t = totals(limits)
    if not t.any:
        return None
    check_fit(limits)
    engine = engine_kind(ctx)
    if engine is None:
        log.warning("%s: per-user totals not enforced (the engine is not local)", owner.name)
        return None
    stem = parent_stem(ctx.config.paths, owner.uid)
    apply(engine, stem, t)
    return cgroup_parent(engine, stem)


def refresh(ctx: Context, config: Config, owners: list[tuple[int, Limits]]) -> None:
    """Write the current totals to the parents of these users (a lifecycle pass: config edits apply)."""
    wanted = [(uid, totals(lim)) for uid, lim in owners if totals(lim).any]
    if not wanted:
        return
    engine = engine_kind(ctx)
    if engine is None:
        return
    for uid, t in wanted:
        stem = parent_stem(config.paths, uid)
        if engine.driver == "cgroupfs" and not _exists(engine, stem):
            continue  # no container of theirs was made under a parent: nothing to hold
        try:
            apply(engine, stem, t)
        except OSError as exc:
            log.warning("per-user totals for uid %s: %s", uid, exc)


def apply(engine: Engine, stem: str, t: Totals) -> None:
    if engine.driver == "systemd":
        _apply_systemd(stem, t)
    elif engine.version == "2":
        _apply_v2(stem, t)
    else:
        _apply_v1(stem, t)


# -- cgroup v1 (cgroupfs) ---------------------------------------------------------------------------------
def _v1_dir(controller: str) -> Path | None:
    """The v1 hierarchy with this controller (`cpu`, or `cpu,cpuacct` where they are mounted together)."""
    with contextlib.suppress(OSError):
        for entry in sorted(CGROUP_ROOT.iterdir()):
            if entry.is_dir() and not entry.is_symlink() and controller in entry.name.split(","):
                return entry
    return None


def _exists(engine: Engine, stem: str) -> bool:
    if engine.version == "2":
        return (CGROUP_ROOT / stem).is_dir()
    mem = _v1_dir("memory")
    return mem is not None and (mem / stem).is_dir()


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _apply_v1(stem: str, t: Totals) -> None:
    mem, cpu = _v1_dir("memory"), _v1_dir("cpu")
    if mem is not None:
        node = mem / stem
        node.mkdir(mode=0o755, exist_ok=True)
        value = str(t.memory) if t.memory is not None else UNLIMITED_V1
        memsw = node / "memory.memsw.limit_in_bytes"
        # memsw may never be below memory: raise it first, lower it last
        if memsw.exists():
            with contextlib.suppress(OSError):
                _write(memsw, value)
        _write(node / "memory.limit_in_bytes", value)
        if memsw.exists():
            _write(memsw, value)
    if cpu is not None:
        node = cpu / stem
        node.mkdir(mode=0o755, exist_ok=True)
        _write(node / "cpu.cfs_period_us", str(CFS_PERIOD_US))
        quota = str(round(t.cpus * CFS_PERIOD_US)) if t.cpus is not None else UNLIMITED_V1
        _write(node / "cpu.cfs_quota_us", quota)


# -- cgroup v2 (cgroupfs) ---------------------------------------------------------------------------------
def _apply_v2(stem: str, t: Totals) -> None:
    node = CGROUP_ROOT / stem
    with contextlib.suppress(OSError):
        _write(CGROUP_ROOT / "cgroup.subtree_control", "+cpu +memory")
    node.mkdir(mode=0o755, exist_ok=True)
    with contextlib.suppress(OSError):
        _write(node / "cgroup.subtree_control", "+cpu +memory")
    value = str(t.memory) if t.memory is not None else "max"
    _write(node / "memory.max", value)
    with contextlib.suppress(OSError):
        _write(node / "memory.swap.max", "0" if t.memory is not None else "max")
    quota = str(round(t.cpus * CFS_PERIOD_US)) if t.cpus is not None else "max"
    _write(node / "cpu.max", f"{quota} {CFS_PERIOD_US}")


# -- systemd ----------------------------------------------------------------------------------------------
def _apply_systemd(stem: str, t: Totals) -> None:
    memory = str(t.memory) if t.memory is not None else "infinity"
    cpu = f"{round(t.cpus * 100)}%" if t.cpus is not None else ""
    done = subprocess.run(
        ["systemctl", "set-property", "--runtime", f"{stem}.slice", f"MemoryMax={memory}", f"CPUQuota={cpu}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        raise OSError(f"systemctl set-property {stem}.slice: {done.stderr.strip() or done.returncode}")
