"""Time limits other than idleness: runtime, holds after stop, created-never-started, high demand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ds01.config import Limits, Policies
from ds01.gpu.model import Holding, Inventory
from ds01.lifecycle.clock import iso
from ds01.lifecycle.decision import CLEANUP, NONE, RUNTIME_STOP, RUNTIME_WARNING, Decision, minutes
from ds01.lifecycle.state import ContainerState

RUNTIME_LEVELS = (75, 90)
FINAL_RUNTIME_LEVEL = RUNTIME_LEVELS[-1]


@dataclass(frozen=True)
class Demand:
    allocated_gpueq: float
    total_gpueq: float
    threshold: float

    @property
    def ratio(self) -> float:
        return self.allocated_gpueq / self.total_gpueq if self.total_gpueq > 0 else 0.0

    @property
    def high(self) -> bool:
        return self.total_gpueq > 0 and self.ratio >= self.threshold

    def as_dict(self) -> dict[str, float | bool]:
        return {
            "allocated_gpueq": round(self.allocated_gpueq, 4),
            "total_gpueq": round(self.total_gpueq, 4),
            "ratio": round(self.ratio, 4),
            "threshold": self.threshold,
            "high": self.high,
        }


def demand(holdings: list[Holding], inventory: Inventory | None, policies: Policies) -> Demand:
    """Allocated over total GPU-equivalents; a stopped container past its hold no longer counts."""
    allocated = sum(h.gpueq for h in holdings if not h.reclaimable)
    total = inventory.total_gpueq if inventory else 0.0
    return Demand(allocated, total, policies.high_demand_threshold)


def judge_runtime(record: ContainerState, now: datetime, started_at: datetime, limits: Limits) -> Decision:
    """Warn at 75 % and 90 % of max_runtime_h from the container's FIRST start (`started_at`: stops, starts
    and pauses do not reset it); stop (not remove) at 100 %, never in the pass that first gives the final
    warning."""
    limit_h = limits.max_runtime_h
    ran_s = (now - started_at).total_seconds()
    values: dict[str, Any] = {
        "runtime_s": round(ran_s),
        "max_runtime_s": None if limit_h is None else round(limit_h * 3600),
        "started_at": iso(started_at),
    }
    if limit_h is None:
        return Decision(NONE, "max_runtime_h is null for this user: no runtime limit", values)
    limit_s = limit_h * 3600
    share = ran_s / limit_s if limit_s > 0 else float("inf")
    values["runtime_share"] = round(share, 3)
    # a raised limit (container-extend, a config edit) takes back the warnings above the new share
    record.runtime_warned = [lvl for lvl in record.runtime_warned if lvl <= share * 100]
    shown = f"running {minutes(ran_s)} since its first start, of max_runtime_h {limit_h:g} h"
    if share >= 1 and FINAL_RUNTIME_LEVEL in record.runtime_warned:
        return Decision(RUNTIME_STOP, f"{shown}: max_runtime_h reached", values)
    due = [lvl for lvl in RUNTIME_LEVELS if share * 100 >= lvl]
    pending = [lvl for lvl in due if lvl not in record.runtime_warned]
    if pending:
        level = FINAL_RUNTIME_LEVEL if share >= 1 else pending[-1]
        record.runtime_warned = sorted({*record.runtime_warned, *due, level})
        return Decision(RUNTIME_WARNING, f"{shown}: {level} % of max_runtime_h", values, level=level)
    return Decision(NONE, shown, values)


def judge_stopped(now: datetime, finished_at: datetime | None, holds_gpu: bool, limits: Limits) -> Decision:
    """A stopped container is removed once its hold has passed: the GPU hold for GPU containers, else the
    container hold. `null` keeps it."""
    key = "gpu_hold_after_stop_h" if holds_gpu else "container_hold_after_stop_h"
    hold_h = getattr(limits, key)
    if finished_at is None:
        return Decision(NONE, "stopped, but the engine gives no stop time: kept", {"hold_key": key})
    stopped_s = (now - finished_at).total_seconds()
    values = {
        "stopped_s": round(stopped_s),
        "hold_key": key,
        "hold_s": None if hold_h is None else round(hold_h * 3600),
        "finished_at": iso(finished_at),
    }
    if hold_h is None:
        return Decision(NONE, f"stopped {minutes(stopped_s)} ago; {key} is null: kept", values)
    if stopped_s >= hold_h * 3600:
        return Decision(CLEANUP, f"stopped {minutes(stopped_s)} ago: {key} ({hold_h:g} h) passed", values)
    return Decision(NONE, f"stopped {minutes(stopped_s)} ago; removed after {key} {hold_h:g} h", values)


def judge_created(now: datetime, created: datetime | None, policies: Policies) -> Decision:
    """Created but never started: removed after created_container_timeout_m."""
    if created is None:
        return Decision(NONE, "created, never started; no creation time: kept")
    age_s = (now - created).total_seconds()
    limit_s = policies.created_container_timeout_m * 60
    values = {"created_s": round(age_s), "created_timeout_s": round(limit_s), "created": iso(created)}
    if age_s >= limit_s:
        return Decision(
            CLEANUP,
            f"created {minutes(age_s)} ago and never started: "
            f"created_container_timeout_m ({policies.created_container_timeout_m:g}) passed",
            values,
        )
    return Decision(
        NONE,
        f"created {minutes(age_s)} ago, never started; removed after "
        f"created_container_timeout_m {policies.created_container_timeout_m:g}",
        values,
    )
