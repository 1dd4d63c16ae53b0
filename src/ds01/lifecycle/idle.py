"""The idle rules for a running GPU container (CONTRACT §3 `policies`).

Idle means: every GPU slot under `gpu_idle_threshold` (a MIG slice: no compute process, no memory in use),
CPU under `cpu_idle_threshold`, and no process other than init, shells and sleep busy, for
`idle_detection_window` consecutive checks. Idle time runs from the last check that saw activity (or from
the start). Warnings go out at 80 % and 95 % of the owner's `idle_timeout_h`; the stop comes at 100 %, and
never in the same pass as the owner's final warning, so every stop is announced at least one check ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ds01.config import Policies
from ds01.lifecycle.clock import iso, parse_iso
from ds01.lifecycle.decision import IDLE_STOP, IDLE_WARNING, NONE, POSTPONED, Decision, minutes
from ds01.lifecycle.signals import Activity, SlotReading
from ds01.lifecycle.state import ContainerState

WARN_LEVELS = (80, 95)
FINAL_LEVEL = WARN_LEVELS[-1]
# a keep-alive file dated this far in the future is a trick (`touch -d 2100-01-01`), not a keep-alive
KEEPALIVE_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class IdleInputs:
    now: datetime
    started_at: datetime
    timeout_h: float | None  # the owner's idle_timeout_h; None = exempt
    high_demand: bool
    gpu: list[SlotReading]
    activity: Activity | None
    keepalive_mtime: datetime | None = None
    paused: bool = False  # frozen: idle whatever the GPU readings say (memory held is not work done)


def in_grace(started_at: datetime, now: datetime, policies: Policies) -> bool:
    return now < started_at + timedelta(minutes=policies.grace_period_m)


def timeout_seconds(timeout_h: float, high_demand: bool, policies: Policies) -> float:
    factor = policies.high_demand_idle_reduction if high_demand else 1.0
    return timeout_h * 3600 * factor


def activity_reasons(inputs: IdleInputs, policies: Policies) -> list[str]:
    """Why the container counts as active; empty when every signal is idle (always, while paused)."""
    if inputs.paused:
        return []
    reasons = []
    for r in inputs.gpu:
        if r.busy and r.utilization is not None:
            reasons.append(
                f"GPU {r.slot} at {r.utilization:g} % (threshold {policies.gpu_idle_threshold:g} %)"
            )
        elif r.busy:
            reasons.append(
                f"GPU slice {r.slot} in use ({r.processes} compute processes, {r.memory_used_mib} MiB)"
            )
    act = inputs.activity
    if act is not None and act.cpu_percent is not None and act.cpu_percent >= policies.cpu_idle_threshold:
        reasons.append(f"CPU at {act.cpu_percent:g} % (threshold {policies.cpu_idle_threshold:g} %)")
    if act is not None and (busy := act.busy_processes(policies.cpu_idle_threshold)):
        reasons.append(f"busy processes: {', '.join(busy)}")
    return reasons


def keepalive_valid(mtime: datetime | None, now: datetime, policies: Policies) -> bool:
    if mtime is None or mtime > now + KEEPALIVE_CLOCK_SKEW:
        return False
    return now - mtime < timedelta(hours=policies.keepalive_max_duration_h)


def _values(inputs: IdleInputs, record: ContainerState) -> dict[str, Any]:
    act = inputs.activity
    return {
        "gpu": [r.as_dict() for r in inputs.gpu],
        "cpu_percent": act.cpu_percent if act else None,
        "busy_processes": act.busy_processes(0.0) if act else [],
        "idle_streak": record.idle_streak,
        "last_activity": record.last_activity,
        "high_demand": inputs.high_demand,
        "paused": inputs.paused,
    }


def judge_idle(record: ContainerState, inputs: IdleInputs, policies: Policies) -> Decision:
    """Update `record` with this check and say what to do. The caller saves the record (not in dry runs)."""
    values = _values(inputs, record)
    if inputs.timeout_h is None:
        return Decision(NONE, "idle_timeout_h is null for this user: exempt from idle stops", values)
    if in_grace(inputs.started_at, inputs.now, policies):
        left = inputs.started_at + timedelta(minutes=policies.grace_period_m) - inputs.now
        return Decision(
            NONE, f"grace period after start: idle checks begin in {minutes(left.total_seconds())}", values
        )
    if inputs.activity is None:
        return Decision(NONE, "no CPU or process reading this pass (container gone?): check skipped", values)
    record.last_check = iso(inputs.now)
    reasons = activity_reasons(inputs, policies)
    if reasons:
        record.idle_streak, record.last_activity, record.idle_warned = 0, iso(inputs.now), []
        return Decision(
            NONE,
            "active: " + "; ".join(reasons),
            {**values, "idle_streak": 0, "last_activity": record.last_activity},
        )
    record.idle_streak += 1
    return _judge_idle_time(record, inputs, policies, {**values, "idle_streak": record.idle_streak})


def _judge_idle_time(
    record: ContainerState, inputs: IdleInputs, policies: Policies, values: dict[str, Any]
) -> Decision:
    assert inputs.timeout_h is not None
    last = parse_iso(record.last_activity) or inputs.started_at
    idle_s = (inputs.now - last).total_seconds()
    limit_s = timeout_seconds(inputs.timeout_h, inputs.high_demand, policies)
    share = idle_s / limit_s if limit_s > 0 else float("inf")
    demand = f" (x{policies.high_demand_idle_reduction:g}: GPUs in high demand)" if inputs.high_demand else ""
    values = {
        **values,
        "idle_s": round(idle_s),
        "idle_timeout_s": round(limit_s),
        "idle_share": round(share, 3),
    }
    shown = f"idle {minutes(idle_s)} of {minutes(limit_s)}{demand}"
    if inputs.paused:
        shown += " (paused: paused time counts as idle)"
    window = policies.idle_detection_window
    if record.idle_streak < window:
        return Decision(NONE, f"{shown}; idle for {record.idle_streak} of {window} checks (window)", values)
    due = [lvl for lvl in WARN_LEVELS if share * 100 >= lvl]
    if due and keepalive_valid(inputs.keepalive_mtime, inputs.now, policies):
        age = (inputs.now - inputs.keepalive_mtime).total_seconds()  # type: ignore[operator]
        reason = (
            f"{shown}; /workspace/.keep-alive touched {minutes(age)} ago postpones it "
            f"(honoured for {policies.keepalive_max_duration_h:g} h)"
        )
        return Decision(POSTPONED, reason, {**values, "keep_alive_age_s": round(age)})
    if share >= 1 and FINAL_LEVEL in record.idle_warned:
        return Decision(IDLE_STOP, f"{shown}: idle_timeout_h reached", values)
    pending = [lvl for lvl in due if lvl not in record.idle_warned]
    if pending:
        level = FINAL_LEVEL if share >= 1 else pending[-1]
        record.idle_warned = sorted({*record.idle_warned, *due, level})
        return Decision(IDLE_WARNING, f"{shown}: {level} % of idle_timeout_h", values, level=level)
    return Decision(NONE, shown, values)
