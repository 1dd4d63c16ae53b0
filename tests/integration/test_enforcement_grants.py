"""Multi-day runs: `container-extend` within the owner's extension_budget_h per rolling 7 days, and admin
exemptions (`ds01 admin exempt`) shown by check-limits, honoured by the lifecycle loop and ending by
themselves. The private engine, real users, the injectable clock."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import test_reaper
from test_reaper import BIN, World, entry, events, run, started

from harness.users import run_as

pytestmark = pytest.mark.docker

world = test_reaper.world


def root(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=60)


def test_extend_raises_one_containers_runtime_within_the_weekly_budget(world: World, unix_users: Any):
    from ds01.lifecycle.clock import ManualClock

    alice, bob = world.alice, unix_users["bob"]
    world.home.reconfigure(
        gpu={"inventory": str(world.inventory)}, user_overrides={alice.name: {"extension_budget_h": 30}}
    )
    world.gpu_utilization(95)  # working: only the runtime limit applies
    c = world.container("long")
    first = started(c)

    theirs = run_as(bob, "container-extend", c.name, "--hours", "5", "--reason", "not mine")
    assert theirs.returncode == 5, theirs.stderr
    no_reason = run_as(alice, "container-extend", "long", "--hours", "5", "--reason", " ")
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    got = run_as(alice, "container-extend", "long", "--hours", "24", "--reason", "3-day run", "--json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["max_runtime_h"] == 48
    over = run_as(alice, "container-extend", "long", "--hours", "12", "--reason", "more")
    assert over.returncode == 4 and "extension_budget_h 30" in over.stderr, over.stderr
    by_admin = root("container-extend", "long", "--user", alice.name, "--hours", "6", "--reason", "ok'd")
    assert by_admin.returncode == 0, by_admin.stderr  # admins act for the owner, from the owner's budget
    assert (
        root("container-extend", "long", "--user", alice.name, "--hours", "1", "--reason", "x y").returncode
        == 4
    )

    clock = ManualClock(first + timedelta(hours=25))  # past the plain 24 h: extended to 54 h
    assert entry(run(clock), c)["action"] == "none"
    clock.set(first + timedelta(hours=49))  # 49/54 = 90 %
    assert entry(run(clock), c)["level"] == 90
    clock.set(first + timedelta(hours=54.1))
    assert entry(run(clock), c)["action"] == "runtime_stop"
    extends = events(world.home, "extend")
    assert [e["details"]["hours"] for e in extends] == [24, 6] and extends[1]["details"]["by"] == "root"
    assert [e["details"]["hours"] for e in events(world.home, "reject")] == [12, 1]
    limits = json.loads(run_as(alice, "check-limits", "--json").stdout)
    assert limits["extensions"]["used_h"] == 30 and limits["limits"]["extension_budget_h"] == 30


def test_an_exemption_is_shown_honoured_and_ends_by_itself(world: World, unix_users: Any):
    from ds01.lifecycle.clock import ManualClock

    alice, bob = world.alice, unix_users["bob"]
    world.gpu_utilization(95)
    c = world.container("deadline")
    first = started(c)
    until = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    mine = run_as(alice, "ds01", "admin", "exempt", alice.name, "--until", until, "--reason", "self-serve")
    assert mine.returncode == 5, mine.stderr
    past = root("ds01", "admin", "exempt", alice.name, "--until", "2020-01-01", "--reason", "old")
    assert past.returncode == 2 and "in the past" in past.stderr
    granted = root("ds01", "admin", "exempt", alice.name, "--until", until, "--reason", "thesis deadline")
    assert granted.returncode == 0, granted.stderr

    shown = json.loads(run_as(alice, "check-limits", "--json").stdout)["exemption"]
    assert shown == {"until": until, "reason": "thesis deadline", "by": "root"}
    assert json.loads(run_as(bob, "check-limits", "--json").stdout)["exemption"] is None
    (event,) = events(world.home, "exempt")
    assert event["user"] == alice.name and event["details"]["until"] == until

    clock = ManualClock(first + timedelta(hours=30))  # past max_runtime_h 24, but exempt
    e = entry(run(clock), c)
    assert e["action"] == "none" and "exempt until" in e["reason"] and "thesis deadline" in e["reason"]
    end = datetime.strptime(until, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    clock.set(end + timedelta(minutes=5))  # the exemption is over: the limit applies again, announced first
    warned = entry(run(clock), c)
    assert (warned["action"], warned["level"]) == ("runtime_warning", 90), warned
    clock.set(end + timedelta(minutes=10))
    assert entry(run(clock), c)["action"] == "runtime_stop"


def test_an_admin_ends_an_exemption_and_lists_them(world: World, unix_users: Any):
    alice = world.alice
    until = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert (
        root("ds01", "admin", "exempt", alice.name, "--until", until, "--reason", "conference").returncode
        == 0
    )
    listed = json.loads(root("ds01", "admin", "exemptions", "--json").stdout)
    assert [r["user"] for r in listed] == [alice.name]
    assert (
        json.loads(run_as(alice, "ds01", "admin", "exemptions", "--json").stdout)[0]["reason"] == "conference"
    )
    assert json.loads(run_as(unix_users["bob"], "ds01", "admin", "exemptions", "--json").stdout) == []
    assert run_as(alice, "ds01", "admin", "exempt", alice.name, "--end").returncode == 5
    ended = json.loads(root("ds01", "admin", "exempt", alice.name, "--end", "--json").stdout)
    assert ended == {"user": alice.name, "ended": True}
    assert json.loads(run_as(alice, "check-limits", "--json").stdout)["exemption"] is None
