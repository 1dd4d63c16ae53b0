"""Loopholes in the lifecycle rules, closed: a paused container is still held to its limits, and a stop and
start (or a ds01d restart) does not reset the runtime clock. The private engine, the injectable clock."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from typing import Any

import pytest
import test_reaper
from test_reaper import World, cli, entry, events, exists, run, started

world = test_reaper.world  # the reaper tests' world: a private engine, ds01d, alice, a simulated inventory

pytestmark = pytest.mark.docker


def _doc_entry(result: Any, c: Any) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    found = [e for e in json.loads(result.stdout)["containers"] if e["container"] == c.name]
    assert found, result.stdout
    return dict(found[0])


def test_a_paused_gpu_container_is_idle_warned_then_unpaused_stopped_and_removed(world: World):
    from ds01.lifecycle.clock import ManualClock

    c = world.container("nap")
    workspace = world.workspace("nap")
    c.pause()
    world.gpu_utilization(90)  # a frozen process does no work, whatever the reading says
    t = started(c) + timedelta(minutes=31)
    clock = ManualClock(t)
    for minutes in (0, 5):
        clock.set(t + timedelta(minutes=minutes))
        e = entry(run(clock), c)
        assert e["status"] == "paused" and e["action"] == "none" and e["values"]["paused"] is True, e
    clock.set(t + timedelta(minutes=10))
    warned = entry(run(clock), c)
    assert (warned["action"], warned["level"]) == ("idle_warning", 95), warned
    assert "paused time counts as idle" in warned["reason"]
    clock.set(t + timedelta(minutes=15))
    stop = entry(run(clock), c)
    assert stop["action"] == "idle_stop" and stop["done"], stop
    assert stop["exit_code"] == 0, "unpaused first, so SIGTERM reached the trap, which saved and exited"
    assert not exists(world.client, c), "removed: its GPU is free"
    assert (workspace / "ckpt").read_text() == "saved\n", "the workspace stays, with the saved work"
    (stopped,) = events(world.home, "idle_stop")
    assert stopped["container"] == c.name and stopped["details"]["removed"] is True
    assert [e["details"]["reason"] for e in events(world.home, "release")] == ["idle_stop"]


def test_a_paused_container_runs_out_of_runtime_and_is_stopped_not_removed(world: World):
    from ds01.lifecycle.clock import ManualClock

    c = world.container("frozen", gpu=False)
    c.pause()
    start = started(c)
    clock = ManualClock(start + timedelta(hours=18.5))
    assert entry(run(clock), c)["level"] == 75
    clock.set(start + timedelta(hours=22))
    assert entry(run(clock), c)["level"] == 90
    clock.set(start + timedelta(hours=24.1))
    stop = entry(run(clock), c)
    assert stop["action"] == "runtime_stop" and stop["exit_code"] == 0, stop
    c.reload()
    assert c.status == "exited", "thawed, then stopped; kept until its hold passes"
    assert (world.workspace("frozen") / "ckpt").read_text() == "saved\n"


def test_stop_start_and_a_ds01d_restart_do_not_reset_the_runtime_clock(world: World):
    from ds01.lifecycle.clock import ManualClock

    world.gpu_utilization(95)  # working hard: only the runtime limit applies
    c = world.container("marathon")
    first = started(c)
    assert entry(run(ManualClock(first + timedelta(hours=18.5))), c)["level"] == 75

    c.stop(timeout=10)  # the loophole: stop and start to get a fresh max_runtime_h
    c.start()
    assert started(c) > first
    record = world.home / "state" / "reaper" / f"{c.id}.json"
    st = record.stat()
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600, "kept by ds01d, root-only"
    assert stat.S_IMODE(record.parent.stat().st_mode) == 0o700

    world.home.restart()  # ds01d itself restarts: the clock is on disk, not in memory
    again = _doc_entry(cli("--once", "--json", now=first + timedelta(hours=22)), c)
    assert (again["action"], again["level"]) == ("runtime_warning", 90), again
    assert "since its first start" in again["reason"]
    assert again["values"]["runtime_s"] >= 22 * 3600 - 5

    c.stop(timeout=10)
    c.start()
    stop = _doc_entry(cli("--once", "--json", now=first + timedelta(hours=24.1)), c)
    assert stop["action"] == "runtime_stop" and stop["done"], stop
    c.reload()
    assert c.status == "exited"
    kinds = [e["event_type"] for e in events(world.home) if e["event_type"].startswith("runtime")]
    assert kinds == ["runtime_warning", "runtime_warning", "runtime_stop"]
    assert os.path.exists(record), "a stopped container keeps its record until it is removed"
