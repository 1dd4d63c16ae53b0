"""Activity of many containers in one pass: CPU and processes from cgroup files, GPU from the probe.

The cgroup path samples every container twice, `sample_s` apart, so a pass over a hundred containers costs
one short sleep, not one `docker stats` second each. Where the cgroup files cannot be read (the reaper is
not on the engine's host), `Gateway.stats_many` and `Gateway.top` give the same figures in parallel.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ds01 import naming
from ds01.atomic.container_stats import cpu_percent
from ds01.errors import Ds01Error

if TYPE_CHECKING:
    from ds01.docker_gateway import Gateway
    from ds01.gpu.model import Inventory

# An init, a shell or a sleep is what an idle container runs; anything else that works is activity.
IDLE_COMMANDS = frozenset({
    "docker-init", "tini", "tini-static", "dumb-init", "init", "catatonit",
    "sh", "bash", "ash", "dash", "zsh", "fish", "ksh", "tcsh", "csh", "sleep",
})  # fmt: skip
BUSY_STATES = frozenset("RD")  # running, or in uninterruptible I/O (reading data, writing a checkpoint)
PROC = Path("/proc")
# A MIG slice has no utilisation; its memory in use above this share of the slice means a CUDA context works.
MIG_MEMORY_BUSY_SHARE = 0.01
MIG_MEMORY_BUSY_MIN_MIB = 32


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    comm: str
    state: str
    cpu_percent: float

    def busy(self, cpu_threshold: float) -> bool:
        if self.comm in IDLE_COMMANDS:
            return False
        return self.state in BUSY_STATES or self.cpu_percent >= cpu_threshold


@dataclass(frozen=True)
class Activity:
    """CPU in percent of one CPU over the sample, and the processes seen."""

    cpu_percent: float | None
    processes: tuple[ProcessInfo, ...] = ()
    source: str = "none"

    def busy_processes(self, cpu_threshold: float) -> list[str]:
        return sorted({p.comm for p in self.processes if p.busy(cpu_threshold)})

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]


@dataclass(frozen=True)
class SlotReading:
    slot: str
    kind: str | None  # None: the inventory has no such slot (any more)
    utilization: float | None
    processes: int | None
    memory_used_mib: int | None
    busy: bool | None  # None: nothing to judge by

    def as_dict(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "kind": self.kind,
            "utilization": self.utilization,
            "processes": self.processes,
            "memory_used_mib": self.memory_used_mib,
            "busy": self.busy,
        }


# -- cgroup files ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Cgroup:
    path: Path
    version: int  # 1: cpuacct.usage in ns; 2: cpu.stat usage_usec


@dataclass(frozen=True)
class _Snapshot:
    usage_ns: int
    procs: Mapping[int, tuple[str, str, int]]  # pid -> (comm, state, cpu ticks)


@lru_cache(maxsize=1)
def _cgroup_mounts() -> tuple[tuple[str, str, str, frozenset[str]], ...]:
    """(fstype, mount root, mount point, controllers) of every cgroup mount this process sees."""
    out = []
    with contextlib.suppress(OSError):
        for line in (PROC / "self" / "mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            parts, tail = left.split(), right.split()
            if len(parts) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
                continue
            opts = frozenset(tail[2].split(","))
            out.append((tail[0], parts[3], parts[4].replace("\\040", " "), opts))
    return tuple(out)


def _under(mount_root: str, mount_point: str, cg_path: str) -> Path:
    if mount_root != "/" and cg_path.startswith(mount_root):
        cg_path = cg_path[len(mount_root) :]
    return Path(mount_point) / cg_path.lstrip("/")


def cgroup_of(pid: int) -> _Cgroup | None:
    """The cgroup holding `pid` with a CPU usage counter: v1 cpuacct first (hybrid hosts), else v2."""
    try:
        lines = (PROC / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    v1 = v2 = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            v1 = path
        elif controllers == "":
            v2 = path
    for fstype, root, point, opts in _cgroup_mounts():
        if v1 is not None and fstype == "cgroup" and "cpuacct" in opts:
            cand = _under(root, point, v1)
            if (cand / "cpuacct.usage").exists():
                return _Cgroup(cand, 1)
    for fstype, root, point, _ in _cgroup_mounts():
        if v2 is not None and fstype == "cgroup2":
            cand = _under(root, point, v2)
            if (cand / "cpu.stat").exists():
                return _Cgroup(cand, 2)
    return None


def _usage_ns(cg: _Cgroup) -> int:
    if cg.version == 1:
        return int((cg.path / "cpuacct.usage").read_text())
    for line in (cg.path / "cpu.stat").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) * 1000
    raise OSError("no usage_usec in cpu.stat")


def cgroup_pids(cg: _Cgroup) -> list[int]:
    text = (cg.path / "cgroup.procs").read_text()
    return [int(p) for p in text.split()]


def _proc_stat(pid: int) -> tuple[str, str, int] | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name sits in parentheses and may itself hold spaces or parentheses
    comm = raw[raw.find("(") + 1 : raw.rfind(")")]
    fields = raw[raw.rfind(")") + 2 :].split()
    return comm, fields[0], int(fields[11]) + int(fields[12])


def _snapshot(cg: _Cgroup) -> _Snapshot | None:
    try:
        usage = _usage_ns(cg)
        pids = cgroup_pids(cg)
    except (OSError, ValueError):
        return None
    procs = {pid: st for pid in pids if (st := _proc_stat(pid)) is not None}
    return _Snapshot(usage, procs)


def _from_snapshots(first: _Snapshot, second: _Snapshot, elapsed: float) -> Activity:
    tick = os.sysconf("SC_CLK_TCK")
    cpu = max(0, second.usage_ns - first.usage_ns) / 1e9 / elapsed * 100
    procs = []
    for pid, (comm, state, ticks) in second.procs.items():
        before = first.procs.get(pid)
        used = ticks - before[2] if before else 0
        seen = state + (before[1] if before else "")
        state_shown = next((s for s in seen if s in BUSY_STATES), state)
        procs.append(ProcessInfo(pid, comm, state_shown, round(used / tick / elapsed * 100, 2)))
    return Activity(round(cpu, 2), tuple(sorted(procs, key=lambda p: p.pid)), "cgroup")


def sample_cgroups(pids: Mapping[str, int], sample_s: float) -> dict[str, Activity]:
    """Two reads of every container's cgroup, `sample_s` apart. Containers not found are left out."""
    groups = {cid: cg for cid, pid in pids.items() if pid > 0 and (cg := cgroup_of(pid)) is not None}
    first = {cid: snap for cid, cg in groups.items() if (snap := _snapshot(cg)) is not None}
    start = time.monotonic()
    if first:
        time.sleep(sample_s)
    elapsed = max(time.monotonic() - start, 1e-3)
    out = {}
    for cid, snap in first.items():
        second = _snapshot(groups[cid])
        if second is not None:
            out[cid] = _from_snapshots(snap, second, elapsed)
    return out


# -- the engine's view ----------------------------------------------------------------------------------
def processes_from_top(top: Mapping[str, Any]) -> tuple[ProcessInfo, ...]:
    titles = [t.upper() for t in top.get("Titles") or []]
    out = []
    for row in top.get("Processes") or []:
        item = dict(zip(titles, row, strict=False))
        with contextlib.suppress(KeyError, ValueError):
            out.append(
                ProcessInfo(
                    int(item["PID"]),
                    str(item.get("COMMAND", "?")).rsplit("/", 1)[-1],
                    "?",
                    float(item.get("%CPU", 0) or 0),
                )
            )
    return tuple(out)


def engine_activity(gateway: Gateway, ids: list[str]) -> dict[str, Activity]:
    if not ids:
        return {}

    def top(cid: str) -> tuple[str, tuple[ProcessInfo, ...]]:
        try:
            return cid, processes_from_top(gateway.top(cid))
        except Ds01Error:
            return cid, ()

    with ThreadPoolExecutor(max_workers=min(16, len(ids))) as pool:
        futures = {cid: pool.submit(top, cid) for cid in ids}
        stats = gateway.stats_many(ids)  # its own pool, while the `top` calls run in this one
        processes = {cid: f.result()[1] for cid, f in futures.items()}
    return {
        cid: Activity(cpu_percent(stats[cid]) if stats.get(cid) else None, processes.get(cid, ()), "engine")
        for cid in ids
    }


def gather_activity(
    gateway: Gateway, pids: Mapping[str, int], sample_s: float = 1.0, *, use_cgroups: bool = True
) -> dict[str, Activity]:
    """Activity of every container in `pids` (id -> host pid of its first process), in one pass."""
    found = sample_cgroups(pids, sample_s) if use_cgroups else {}
    rest = [cid for cid in pids if cid not in found]
    return {**found, **engine_activity(gateway, rest)}


def container_pids(gateway: Gateway, container_id: str, pid: int) -> list[int]:
    """Host pids of every process in a container (its shells included), for delivering notices."""
    cg = cgroup_of(pid) if pid > 0 else None
    if cg is not None:
        with contextlib.suppress(OSError, ValueError):
            return cgroup_pids(cg)
    try:
        return [p.pid for p in processes_from_top(gateway.top(container_id))]
    except Ds01Error:
        return []


# -- GPUs ------------------------------------------------------------------------------------------------
def gpu_slots(labels: Mapping[str, str]) -> list[str]:
    return [s for s in labels.get(naming.LABEL_GPU_SLOTS, "").split(",") if s]


def read_slots(labels: Mapping[str, str], inventory: Inventory | None, threshold: float) -> list[SlotReading]:
    """Each GPU slot a container holds: busy when utilisation reaches `threshold`; a MIG slice (which has
    no utilisation) when compute processes run on it or its memory is in use."""
    out = []
    uuids = labels.get(naming.LABEL_GPU_UUIDS, "").split(",")
    for i, slot_id in enumerate(gpu_slots(labels)):
        slot = inventory.slot(slot_id) if inventory else None
        if slot is not None and i < len(uuids) and uuids[i] and slot.uuid != uuids[i]:
            slot = None  # the slot id now names another device (MIG layout changed)
        if slot is None:
            out.append(SlotReading(slot_id, None, None, None, None, None))
            continue
        used = slot.memory_used_mib
        if slot.utilization is not None:
            busy: bool | None = slot.utilization >= threshold
        else:
            floor = max(MIG_MEMORY_BUSY_MIN_MIB, slot.memory_mib * MIG_MEMORY_BUSY_SHARE)
            busy = slot.processes > 0 or (used is not None and used > floor)
        out.append(SlotReading(slot_id, slot.kind, slot.utilization, slot.processes, used, busy))
    return out
