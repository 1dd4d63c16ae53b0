"""Runtime limits, holds after stop, created-never-started, high demand, and the CPU/process readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ds01.config import Limits, Policies
from ds01.gpu.model import Gpu, Holding, Inventory
from ds01.lifecycle.decision import CLEANUP, NONE, RUNTIME_STOP, RUNTIME_WARNING
from ds01.lifecycle.policy import demand, judge_created, judge_runtime, judge_stopped
from ds01.lifecycle.signals import _from_snapshots, _Snapshot, processes_from_top
from ds01.lifecycle.state import ContainerState

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def test_runtime_warns_at_75_and_90_percent_then_stops():
    record, limits = ContainerState(id="b" * 64), Limits(max_runtime_h=24)
    actions = [(h, judge_runtime(record, at(h), START, limits)) for h in (10, 18.1, 19, 21.7, 24.2)]
    assert [d.action for _, d in actions] == [NONE, RUNTIME_WARNING, NONE, RUNTIME_WARNING, RUNTIME_STOP]
    assert actions[1][1].level == 75 and actions[3][1].level == 90
    assert "max_runtime_h reached" in actions[4][1].reason


def test_runtime_past_the_limit_unannounced_gets_the_final_warning_first():
    record = ContainerState(id="b" * 64)
    first = judge_runtime(record, at(30), START, Limits(max_runtime_h=24))
    assert first.action == RUNTIME_WARNING and first.level == 90
    assert judge_runtime(record, at(30.1), START, Limits(max_runtime_h=24)).action == RUNTIME_STOP
    assert judge_runtime(record, at(900), START, Limits(max_runtime_h=None)).action == NONE


def test_holds_differ_for_gpu_and_cpu_only_containers_and_null_keeps():
    limits = Limits(gpu_hold_after_stop_h=0.25, container_hold_after_stop_h=12)
    assert judge_stopped(at(0.2), START, True, limits).action == NONE
    gone = judge_stopped(at(0.3), START, True, limits)
    assert gone.action == CLEANUP and "gpu_hold_after_stop_h" in gone.reason
    assert judge_stopped(at(11), START, False, limits).action == NONE
    assert judge_stopped(at(12.5), START, False, limits).action == CLEANUP
    keep = Limits(container_hold_after_stop_h=None)
    assert judge_stopped(at(9999), START, False, keep).action == NONE
    assert judge_stopped(at(1), None, True, limits).action == NONE


def test_created_never_started_is_removed_after_its_timeout():
    policies = Policies(created_container_timeout_m=30)
    assert judge_created(START + timedelta(minutes=29), START, policies).action == NONE
    late = judge_created(START + timedelta(minutes=31), START, policies)
    assert late.action == CLEANUP and "created_container_timeout_m" in late.reason


def test_demand_counts_held_gpueq_over_the_inventory_and_ignores_reclaimable_holds():
    inventory = Inventory("simulated", tuple(Gpu(i, f"GPU-{i}", "A100", 81920) for i in range(4)))
    hold = lambda slot, reclaimable=False: Holding(slot, "", 1.0, "a", 1, "c", "running", "", reclaimable)  # noqa: E731
    high = demand([hold("0"), hold("1"), hold("2"), hold("3", True)], inventory, Policies())
    assert high.ratio == 0.75 and not high.high
    assert demand([hold("0"), hold("1"), hold("2"), hold("3")], inventory, Policies()).high
    assert not demand([hold("0")], None, Policies()).high


def test_cpu_and_process_shares_from_two_cgroup_snapshots():
    import os

    tick = os.sysconf("SC_CLK_TCK")
    first = _Snapshot(1_000_000_000, {1: ("docker-init", "S", 5), 8: ("python", "S", 100)})
    second = _Snapshot(1_450_000_000, {1: ("docker-init", "S", 5), 8: ("python", "S", 100 + tick // 2)})
    activity = _from_snapshots(first, second, elapsed=1.0)
    assert activity.cpu_percent == 45.0
    python = next(p for p in activity.processes if p.comm == "python")
    assert python.cpu_percent == 50.0 and activity.busy_processes(2.0) == ["python"]


def test_process_list_from_the_engines_top():
    top = {
        "Titles": ["PID", "PPID", "%CPU", "COMMAND"],
        "Processes": [["101", "90", "0.0", "docker-init"], ["120", "101", "97.5", "/usr/bin/python3"]],
    }
    procs = processes_from_top(top)
    assert [(p.pid, p.comm, p.cpu_percent) for p in procs] == [
        (101, "docker-init", 0.0),
        (120, "python3", 97.5),
    ]
