"""`container-stats`: CPU %, memory used/limit, GPU slots and utilisation, for all containers in one pass.

The formulas are Docker's own (docker/cli `stats_helpers.go`): CPU % over the sampling interval the engine
takes (`precpu_stats` -> `cpu_stats`), memory without the inactive page cache (cgroup v1 and v2 keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ds01.atomic.container_view import ContainerView
from ds01.atomic.containers import RUNNING, known_slots
from ds01.context import Context
from ds01.gpu.model import Slot


@dataclass(frozen=True)
class GpuUse:
    slot: str
    uuid: str
    profile: str | None
    utilization: float | None
    processes: int | None


@dataclass(frozen=True)
class ContainerStats:
    name: str
    container: str
    user: str
    status: str
    cpu_percent: float | None
    memory_used: int | None
    memory_limit: int | None
    memory_percent: float | None
    pids: int | None
    gpus: tuple[GpuUse, ...]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["gpus"] = [asdict(g) for g in self.gpus]
        return out


def cpu_percent(stats: Mapping[str, Any]) -> float | None:
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    try:
        cpu_delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        system_delta = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
    except (KeyError, TypeError):
        return None
    online = cpu.get("online_cpus") or len(cpu.get("cpu_usage", {}).get("percpu_usage") or []) or 1
    if system_delta <= 0 or cpu_delta < 0:
        return 0.0
    return round(float(cpu_delta) / float(system_delta) * float(online) * 100.0, 2)


def memory_used(stats: Mapping[str, Any]) -> int | None:
    mem = stats.get("memory_stats") or {}
    usage = mem.get("usage")
    if usage is None:
        return None
    detail = mem.get("stats") or {}
    # cgroup v1 reports total_inactive_file, v2 inactive_file; both are reclaimable page cache.
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    return int(usage - inactive) if inactive < usage else int(usage)


def memory_limit(stats: Mapping[str, Any]) -> int | None:
    limit = (stats.get("memory_stats") or {}).get("limit")
    return int(limit) if limit else None


def _gpu_use(view: ContainerView, known: Mapping[str, Slot]) -> tuple[GpuUse, ...]:
    out = []
    uuids = view.gpu_uuids
    for i, slot_id in enumerate(view.gpu_slots):
        uuid = uuids[i] if i < len(uuids) else ""
        slot = known.get(uuid)
        out.append(
            GpuUse(
                slot_id,
                uuid,
                slot.profile if slot else None,
                slot.utilization if slot else None,
                slot.processes if slot else None,
            )
        )
    return tuple(out)


def container_stats(
    view: ContainerView, stats: Mapping[str, Any], known: Mapping[str, Slot]
) -> ContainerStats:
    used, limit = memory_used(stats), memory_limit(stats)
    percent = round(used / limit * 100.0, 2) if used is not None and limit else None
    pids = (stats.get("pids_stats") or {}).get("current")
    return ContainerStats(
        name=view.name,
        container=view.docker_name,
        user=view.user,
        status=view.state,
        cpu_percent=cpu_percent(stats) if stats else None,
        memory_used=used,
        memory_limit=limit,
        memory_percent=percent,
        pids=int(pids) if pids is not None else None,
        gpus=_gpu_use(view, known),
    )


def collect_stats(ctx: Context, views: list[ContainerView]) -> list[ContainerStats]:
    """Every running container sampled at once (the engine takes about a second per sample)."""
    running = [v for v in views if v.state in RUNNING]
    samples = ctx.gateway.stats_many([v.id for v in running])
    known = known_slots(ctx, views)
    return [container_stats(v, samples.get(v.id, {}), known) for v in views]
