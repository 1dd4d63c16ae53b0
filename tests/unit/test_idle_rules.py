"""The idle rules on their own: signals, the detection window, warnings, keep-alive, high demand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ds01.config import Policies
from ds01.gpu.model import Gpu, Inventory, Slot
from ds01.lifecycle.decision import IDLE_STOP, IDLE_WARNING, NONE, POSTPONED
from ds01.lifecycle.idle import IdleInputs, judge_idle, keepalive_valid, timeout_seconds
from ds01.lifecycle.signals import Activity, ProcessInfo, read_slots
from ds01.lifecycle.state import ContainerState

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
POLICIES = Policies()  # 5 % GPU, 2 % CPU, window 3, grace 30 min, keep-alive 24 h, demand x0.5
QUIET = Activity(0.1, (ProcessInfo(1, "docker-init", "S", 0.0), ProcessInfo(7, "sh", "S", 0.0),
                       ProcessInfo(9, "sleep", "S", 0.0)), "cgroup")  # fmt: skip
INVENTORY = Inventory("simulated", (
    Gpu(0, "GPU-a", "A100", 81920, utilization=0.0),
    Gpu(1, "GPU-b", "A100", 81920, utilization=63.0),
    Gpu(2, "GPU-c", "A100", 81920, mig_enabled=True, migs=(
        Slot("2.0", "MIG-0", "mig", 2, "A100", "3g.40gb", 3 / 7, 40960, None, 0, 0),
        Slot("2.1", "MIG-1", "mig", 2, "A100", "2g.20gb", 2 / 7, 20480, None, 1, 900),
        Slot("2.2", "MIG-2", "mig", 2, "A100", "1g.10gb", 1 / 7, 10240, None, 0, 4000),
    )),
))  # fmt: skip


def gpu(slot: str, inventory: Inventory = INVENTORY) -> list:
    return read_slots({"ds01.gpu.slots": slot}, inventory, POLICIES.gpu_idle_threshold)


def check(
    record: ContainerState,
    minutes: float,
    *,
    slot: str = "0",
    activity: Activity | None = QUIET,
    timeout_h: float | None = 0.5,
    high_demand: bool = False,
    keepalive: datetime | None = None,
):
    inputs = IdleInputs(
        START + timedelta(minutes=minutes), START, timeout_h, high_demand, gpu(slot), activity, keepalive
    )
    return judge_idle(record, inputs, POLICIES)


def fresh() -> ContainerState:
    return ContainerState(id="a" * 64, started_at=START.isoformat())


def test_no_check_during_the_grace_period_after_start():
    record = fresh()
    decision = check(record, 29)
    assert decision.action == NONE and "grace period" in decision.reason
    assert record.idle_streak == 0 and record.last_check is None


def test_each_signal_alone_makes_the_container_active_and_resets_the_streak():
    busy_cpu = Activity(45.0, QUIET.processes, "cgroup")
    busy_proc = Activity(0.5, (*QUIET.processes, ProcessInfo(12, "python", "R", 0.4)), "cgroup")
    for kwargs, word in (({"slot": "1"}, "GPU 1 at 63"), ({"activity": busy_cpu}, "CPU at 45"),
                         ({"activity": busy_proc}, "busy processes: python"),
                         ({"slot": "2.1"}, "GPU slice 2.1 in use")):  # fmt: skip
        record = fresh()
        record.idle_streak, record.idle_warned = 2, [80]
        decision = check(record, 40, **kwargs)
        assert decision.action == NONE and word in decision.reason, (kwargs, decision.reason)
        assert record.idle_streak == 0 and record.idle_warned == []
        assert record.last_activity == "2026-11-23T09:40:00Z"


def test_only_working_processes_other_than_init_shell_and_sleep_are_activity():
    quiet_python = Activity(0.2, (*QUIET.processes, ProcessInfo(20, "python", "S", 0.1)), "cgroup")
    assert quiet_python.busy_processes(POLICIES.cpu_idle_threshold) == []
    busy_shell = Activity(0.2, (ProcessInfo(7, "bash", "R", 1.0),), "cgroup")
    assert busy_shell.busy_processes(POLICIES.cpu_idle_threshold) == []
    io_bound = Activity(0.2, (ProcessInfo(30, "rsync", "D", 0.0),), "cgroup")
    assert io_bound.busy_processes(POLICIES.cpu_idle_threshold) == ["rsync"]


def test_mig_slices_are_judged_by_compute_processes_and_memory_in_use():
    idle, with_process, with_memory = gpu("2.0")[0], gpu("2.1")[0], gpu("2.2")[0]
    assert idle.kind == "mig" and idle.busy is False
    assert with_process.busy is True and with_memory.busy is True
    missing = gpu("3.4")[0]
    assert missing.kind is None and missing.busy is None
    moved = read_slots({"ds01.gpu.slots": "0", "ds01.gpu.uuids": "GPU-other"}, INVENTORY, 5.0)[0]
    assert moved.kind is None, "a slot id whose UUID changed is not this container's GPU any more"


def test_the_window_needs_consecutive_idle_checks_then_warnings_at_80_and_95_then_stop():
    record = fresh()
    record.last_activity = "2026-11-23T09:31:00Z"
    steps = [(36, NONE), (41, NONE), (56, IDLE_WARNING), (58, NONE), (60, IDLE_WARNING), (61.5, IDLE_STOP)]
    seen = []
    for minute, expected in steps:
        decision = check(record, minute)
        assert decision.action == expected, (minute, decision.reason)
        seen.append(decision.level)
    assert seen[2] == 80 and seen[4] == 95
    assert record.idle_streak == 6
    assert "window" in check(fresh(), 35).reason


def test_a_stop_is_never_the_first_news_the_final_warning_comes_one_check_before():
    record = fresh()
    for minute in (40, 45):
        assert check(record, minute).action == NONE  # streak 1, 2: the window is not full
    late = check(record, 50)  # idle 50 min of 30: past the limit, but the owner has not been told
    assert late.action == IDLE_WARNING and late.level == 95
    assert record.idle_warned == [80, 95]
    assert check(record, 55).action == IDLE_STOP


def test_keep_alive_postpones_and_stops_counting_once_it_is_too_old_or_dated_in_the_future():
    record = fresh()
    for minute in (40, 45):
        check(record, minute)
    touched = START + timedelta(minutes=10)
    decision = check(record, 50, keepalive=touched)
    assert decision.action == POSTPONED and ".keep-alive" in decision.reason
    assert record.idle_warned == []
    now = START + timedelta(minutes=50)
    assert keepalive_valid(touched, now, POLICIES)
    assert not keepalive_valid(now - timedelta(hours=25), now, POLICIES)
    assert not keepalive_valid(now + timedelta(days=365), now, POLICIES), "a future date is a trick"
    stale = now - timedelta(hours=25)
    assert check(record, 50, keepalive=stale).action == IDLE_WARNING
    assert check(record, 55, keepalive=stale).action == IDLE_STOP


def test_high_demand_multiplies_the_timeout_and_null_exempts():
    assert timeout_seconds(0.5, True, POLICIES) == 900 and timeout_seconds(0.5, False, POLICIES) == 1800
    record = fresh()
    record.last_activity = "2026-11-23T09:31:00Z"
    for minute in (36, 41):
        check(record, minute, high_demand=True)
    decision = check(record, 44, high_demand=True)  # 13 of 15 min: 86 %
    assert decision.action == IDLE_WARNING and decision.level == 80 and "high demand" in decision.reason
    assert decision.values["idle_timeout_s"] == 900
    exempt = fresh()
    for minute in (40, 50, 60, 600):
        assert check(exempt, minute, timeout_h=None).action == NONE
    assert "exempt" in check(exempt, 700, timeout_h=None).reason


def test_no_reading_is_no_evidence_the_streak_stays():
    record = fresh()
    record.idle_streak = 2
    decision = check(record, 60, activity=None)
    assert decision.action == NONE and record.idle_streak == 2


@pytest.mark.parametrize("threshold_hit", [4.9, 5.0])
def test_gpu_threshold_is_inclusive_for_busy(threshold_hit):
    inventory = Inventory("simulated", (Gpu(0, "GPU-a", "A100", 81920, utilization=threshold_hit),))
    reading = gpu("0", inventory)[0]
    assert reading.busy is (threshold_hit >= 5.0)
