"""`ds01 usage`: GPU-hours, container-hours and CPU-hours from the event log, through ds01d, as real users."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from harness.users import run_as

pytestmark = pytest.mark.docker


def ev(ts: str, kind: str, user: str, container: str, **details: object) -> dict:
    return {"timestamp": ts, "event_type": kind, "user": user, "container": container, "details": details}


def history(alice: str, bob: str, carol: str) -> list[dict]:
    """October 2026 on a lab server: ds01d restarted at 11:00 on the 10th (it re-logged alice's allocate and
    start, as a reconcile might), and again while bob's container went (its release written on start)."""
    a, b, c = f"thesis._.{1}", "exp._.2", "long._.3"
    return [
        ev("2026-09-30T23:00:00Z", "create", alice, a, cpus=2),  # before the month: clipped to 1 h
        ev("2026-09-30T23:00:00Z", "allocate", alice, a, gpueq=1.0, slots=["0"]),
        ev("2026-09-30T23:00:00Z", "start", alice, a),
        ev("2026-10-01T00:00:00Z", "stop", alice, a),
        ev("2026-10-01T00:00:00Z", "release", alice, a, gpueq=1.0, reason="retire"),
        ev("2026-10-01T00:00:00Z", "remove", alice, a, reason="retire"),
        ev("2026-10-10T10:00:00Z", "create", alice, a, cpus=2),
        ev("2026-10-10T10:00:00Z", "allocate", alice, a, gpueq=1.0, slots=["0"]),
        ev("2026-10-10T10:00:00Z", "start", alice, a),
        # ds01d restarted: the same lines again must not open a second interval
        ev("2026-10-10T11:00:00Z", "allocate", alice, a, gpueq=1.0, slots=["0"]),
        ev("2026-10-10T11:00:00Z", "start", alice, a),
        ev("2026-10-10T12:00:00Z", "stop", alice, a),
        ev("2026-10-10T12:30:00Z", "release", alice, a, gpueq=1.0, reason="retire"),
        ev("2026-10-10T12:30:00Z", "remove", alice, a, reason="retire"),
        ev("2026-10-10T12:31:00Z", "release", alice, a, gpueq=1.0, reason="retire"),  # a stray repeat
        ev("2026-10-20T10:00:00Z", "create", bob, b, cpus=4),
        ev("2026-10-20T10:00:00Z", "allocate", bob, b, gpueq=0.5, slots=["1.0"]),
        ev("2026-10-20T10:00:00Z", "start", bob, b),
        # ds01d was down from 12:00; on start at 14:00 it found the container gone and closed both intervals
        ev("2026-10-20T14:00:00Z", "remove", bob, b, reason="reconcile", by="ds01d"),
        ev("2026-10-20T14:00:00Z", "release", bob, b, gpueq=0.5, reason="reconcile", by="ds01d"),
        ev("2026-10-31T22:00:00Z", "create", carol, c, cpus=1),
        ev("2026-10-31T22:00:00Z", "allocate", carol, c, gpueq=0.25, slots=["1.1"]),
        ev("2026-10-31T22:00:00Z", "start", carol, c),  # still running: counts up to the month's end
        ev("2026-10-15T00:00:00Z", "denied", bob, None),
    ]


def write_log(ds01_home, records: list[dict]) -> None:
    path = ds01_home / "log" / "events.jsonl"
    with open(path, "a") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    os.chmod(path, 0o600)


def usage_json(user, *args: str) -> dict:
    r = run_as(user, "ds01", "usage", "--json", *args) if user else run_root("--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def run_root(*args: str):
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "ds01"
    return subprocess.run([str(exe), "usage", *args], capture_output=True, text=True, timeout=60)


def by_user(report: dict) -> dict[str, dict]:
    return {u["user"]: u for u in report["users"]}


def test_a_crafted_history_with_restarts_gives_exact_figures(ds01_home, unix_users):
    alice, bob, carol = (unix_users[n].name for n in ("alice", "bob", "carol"))
    write_log(ds01_home, history(alice, bob, carol))
    ds01_home.restart()  # a ds01d restart between the writing and the reading changes nothing either
    everyone = by_user(usage_json(None, "--month", "2026-10"))
    assert everyone[alice]["gpu_hours"] == pytest.approx(2.5)  # 23:00-00:00 is September; 10:00-12:30
    assert everyone[alice]["container_hours"] == pytest.approx(
        2.0
    )  # 10:00-12:00 (the re-logged start ignored)
    assert everyone[alice]["cpu_hours"] == pytest.approx(4.0)
    assert everyone[bob]["gpu_hours"] == pytest.approx(0.5 * 4)
    assert everyone[bob]["container_hours"] == pytest.approx(4.0)
    assert everyone[bob]["cpu_hours"] == pytest.approx(16.0)
    assert everyone[carol]["gpu_hours"] == pytest.approx(0.25 * 2)  # open: up to the end of the period
    assert everyone[carol]["cpu_hours"] == pytest.approx(2.0)

    mine = usage_json(unix_users["alice"], "--month", "2026-10")
    assert {r["user"] for r in mine["rows"]} == {alice} and mine["scope"] == alice
    assert mine["total"]["gpu_hours"] == pytest.approx(2.5)
    assert mine["rows"][0]["project"] == "thesis" and mine["rows"][0]["group"] == "student"

    window = usage_json(None, "--since", "2026-10-10T11:00:00Z", "--until", "2026-10-20T12:00:00Z")
    w = by_user(window)
    assert w[alice]["gpu_hours"] == pytest.approx(1.5) and w[bob]["gpu_hours"] == pytest.approx(1.0)

    print(run_root("--month", "2026-10").stdout)
    r = run_as(unix_users["alice"], "ds01", "usage", "--month", "2026-10", "--csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(x["user"], x["project"], float(x["gpu_hours"])) for x in rows] == [(alice, "thesis", 2.5)]
    r = run_as(unix_users["alice"], "ds01", "usage", "--month", "2026-10")
    assert r.returncode == 0 and "thesis" in r.stdout and "2.50" in r.stdout and bob not in r.stdout


def test_users_see_their_own_and_bad_periods_are_refused(ds01_home, unix_users):
    alice, bob = unix_users["alice"], unix_users["bob"]
    write_log(ds01_home, history(alice.name, bob.name, unix_users["carol"].name))
    r = run_as(bob, "ds01", "usage", "--user", alice.name, "--json")
    assert r.returncode == 5 and "gpu_hours" not in r.stdout
    for args, code in ((("--month", "2026-13"), 2), (("--since", "yesterday"), 2),
                       (("--month", "2026-10", "--since", "2026-10-01"), 2),
                       (("--since", "2026-10-20", "--until", "2026-10-10"), 2)):  # fmt: skip
        r = run_as(alice, "ds01", "usage", *args)
        assert r.returncode == code, (args, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 2


def test_a_real_deploy_and_retire_with_the_injected_clock(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    alice = unix_users["alice"]
    r = run_as(alice, "container-deploy", "paper", "--gpus", "1", "--image", base_image_ref,
               "--background", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    gpueq = json.loads(r.stdout)["gpus"][0]["gpueq"]
    events = [json.loads(x) for x in (ds01_home / "log" / "events.jsonl").read_text().splitlines()]
    allocated = datetime.fromisoformat(next(e for e in events if e["event_type"] == "allocate")["timestamp"])
    later = (allocated + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    since = (allocated - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # the container still runs: with the clock two hours on, its open intervals count two hours
    open_ = usage_json(alice, "--since", since, "--until", later, "--now", later)
    assert open_["total"]["gpu_hours"] == pytest.approx(gpueq * 2, abs=0.01)
    assert open_["total"]["container_hours"] == pytest.approx(2, abs=0.01)
    assert open_["rows"][0]["project"] == "paper"

    time.sleep(2)  # events are stamped to the second: let the intervals last at least one
    r = run_as(alice, "container-retire", "paper", "--yes")
    assert r.returncode == 0, r.stderr
    closed = usage_json(alice, "--since", since, "--until", later, "--now", later)
    # retired seconds after the deploy: the clock moving on adds nothing
    assert 0 < closed["total"]["gpu_hours"] < gpueq * 60 / 3600
    assert 0 < closed["total"]["container_hours"] < 60 / 3600
    again = usage_json(alice, "--since", since, "--until", later)
    assert again["total"]["gpu_hours"] == pytest.approx(closed["total"]["gpu_hours"], abs=1e-4)
    assert datetime.now(UTC) > allocated
