"""The wait for GPUs (`container-deploy --wait`) on the private engine, as real users, with simulated GPUs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.poll import until
from harness.users import run_as

pytestmark = pytest.mark.docker
BIN = Path(sys.executable).parent


def gpus(n: int) -> list[dict[str, Any]]:
    return [{"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "slices": 7} for _ in range(n)]


def setup(home: Path, n_gpus: int, **sections: Any) -> None:
    inventory = home / "gpus.yaml"
    inventory.write_text(yaml.safe_dump({"gpus": gpus(n_gpus)}))
    limits = {
        "max_gpu_equivalents": None, "max_gpu_slots_per_container": 2, "max_containers_per_user": 20,
        "allow_full_gpu": True, "gpu_hold_after_stop_h": 0,
    }  # fmt: skip
    home.reconfigure(  # type: ignore[attr-defined]
        gpu={"backend": "simulated", "inventory": str(inventory), "attach": "device-request"},
        defaults=limits,
        groups={"student": {**limits, "max_runtime_h": 24, "members": []}},
        **sections,
    )


def popen_as(user: Any, *argv: str) -> subprocess.Popen[str]:
    env = [f"{k}={v}" for k, v in os.environ.items() if k in ("DS01_SOCKET", "PATH")]
    cmd = ["runuser", "-u", user.name, "--", "env", "-i", *env, str(BIN / argv[0]), *argv[1:]]
    return subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def events_of(home: Path, *types: str) -> list[dict[str, Any]]:
    path = home / "log" / "events.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [e for e in map(json.loads, lines) if not types or e["event_type"] in types]


def queue_doc(home: Path) -> dict[str, Any]:
    env = {**os.environ, "DS01_SOCKET": str(home / "ds01.sock")}
    r = subprocess.run([str(BIN / "ds01"), "queue", "--json"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def enqueued(home: Path, user: str) -> bool:
    return any(e["user"] == user for e in events_of(home, "queue_enqueue"))


def deploy(user: Any, name: str, image: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return run_as(user, "container-deploy", name, "--gpus", "1", "--image", image, "--background", *flags)


def test_grants_follow_priority_then_recent_use_then_arrival(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    """One slot; carol (recent use) arrives first, bob second, dave (priority 50) last: dave, bob, carol.
    The slot frees first by a retire, then by a reaper stop (runtime), then by a retire again."""
    u = unix_users
    setup(ds01_home, 1, user_overrides={u["dave"].name: {"priority": 50}})
    # carol used 5 GPU-hours yesterday (the event log is where recent use comes from)
    day = datetime.now(UTC) - timedelta(days=1)
    with (ds01_home / "log" / "events.jsonl").open("a") as f:
        for kind, at in (("allocate", day), ("release", day + timedelta(hours=5))):
            line = {
                "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "event_type": kind, "user": u["carol"].name,
                "container": f"old._.{u['carol'].uid}", "details": {"gpueq": 1.0, "slots": ["0"]},
            }  # fmt: skip
            f.write(json.dumps(line) + "\n")
    assert deploy(u["alice"], "holder", base_image_ref).returncode == 0
    waiting = {}
    for name in ("carol", "bob", "dave"):
        waiting[name] = popen_as(
            u[name], "container-deploy", f"job-{name}", "--gpus", "1", "--image", base_image_ref,
            "--background", "--wait", "--json",
        )  # fmt: skip
        until(lambda name=name: enqueued(ds01_home, u[name].name))
    doc = queue_doc(ds01_home)
    assert [r["user"] for r in doc["requests"]] == [u[n].name for n in ("dave", "bob", "carol")]
    assert deploy(u["alice"], "other", base_image_ref).returncode == 4  # without --wait: exit 4 at once

    def granted() -> list[str]:
        return [e["user"].removeprefix("ds01t-") for e in events_of(ds01_home, "queue_grant")]

    # 1. a retire frees the slot: dave (priority) gets it
    assert run_as(u["alice"], "container-retire", "holder", "--yes").returncode == 0
    until(lambda: granted() == ["dave"])
    out = json.loads(waiting["dave"].communicate(timeout=30)[0])
    assert out["gpus"][0]["slot"] == "0" and waiting["dave"].returncode == 0
    # 2. the reaper stops dave's container at its runtime limit: give dave a 1 h limit and run two passes
    #    (the final warning, then the stop) an hour and a half ahead
    setup(ds01_home, 1, user_overrides={u["dave"].name: {"priority": 50, "max_runtime_h": 1}})
    later = (datetime.now(UTC) + timedelta(hours=1, minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    env = {**os.environ, "DS01_SOCKET": str(ds01_home / "ds01.sock")}
    for _ in range(2):
        r = subprocess.run(
            [str(BIN / "ds01-reaper"), "--once", "--now", later, "--json"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert r.returncode == 0, r.stderr
    assert events_of(ds01_home, "runtime_stop")
    until(lambda: granted() == ["dave", "bob"])  # the stopped container's hold (0 h) is over: reclaimed
    assert waiting["bob"].wait(timeout=30) == 0
    # 3. bob retires: carol, who used the most recently, comes last
    assert run_as(u["bob"], "container-retire", "job-bob", "--yes").returncode == 0
    until(lambda: granted() == ["dave", "bob", "carol"])
    assert waiting["carol"].wait(timeout=30) == 0
    assert queue_doc(ds01_home)["waiting"] == 0


def test_ctrl_c_sigkill_and_timeout_each_leave_the_queue_empty(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    u = unix_users
    setup(ds01_home, 1)
    assert deploy(u["alice"], "holder", base_image_ref).returncode == 0
    for sig, user in ((signal.SIGINT, "bob"), (signal.SIGKILL, "carol")):
        p = popen_as(u[user], "container-deploy", "w", "--gpus", "1", "--image", base_image_ref, "--wait")
        until(lambda user=user: enqueued(ds01_home, u[user].name))
        assert queue_doc(ds01_home)["waiting"] == 1
        until(lambda: queue_doc(ds01_home)["requests"][0]["waited_s"] >= 1.5)  # the live line was sent
        os.killpg(p.pid, sig)
        _, err = p.communicate(timeout=10)
        if sig == signal.SIGINT:
            assert p.returncode == 130
            assert (
                "waiting for a GPU: position 1 of 1" in err and "held by ds01t-alice/holder (0 until" in err
            )
        until(lambda: queue_doc(ds01_home)["waiting"] == 0, timeout=5)
        assert any(e["user"] == u[user].name for e in events_of(ds01_home, "queue_cancel"))
    t0 = time.monotonic()
    r = deploy(u["dave"], "w", base_image_ref, "--wait", "--timeout", "2s")
    assert r.returncode == 4 and "no slot came free" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 10
    assert queue_doc(ds01_home)["waiting"] == 0
    assert [e["user"] for e in events_of(ds01_home, "queue_timeout")] == [u["dave"].name]
    # nothing was created for any of them, and the slot is still alice's alone
    names = [c.name for c in engine_clean.containers.list(all=True)]
    assert names == [f"holder._.{u['alice'].uid}"]


def test_over_own_quota_is_refused_at_once_and_waiting_is_capped(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    u = unix_users
    setup(
        ds01_home,
        2,
        queue={"max_waiting_per_user": 1},
        user_overrides={u["bob"].name: {"max_gpu_equivalents": 1}},
    )
    assert deploy(u["bob"], "one", base_image_ref).returncode == 0
    r = deploy(u["bob"], "two", base_image_ref, "--wait")
    assert r.returncode == 4 and "waiting would not help unless you retire" in r.stderr, r.stderr
    assert queue_doc(ds01_home)["waiting"] == 0
    assert deploy(u["alice"], "a1", base_image_ref).returncode == 0  # the box is full now
    assert deploy(u["carol"], "c1", base_image_ref, "--wait", "--detach").returncode == 0
    r = deploy(u["carol"], "c2", base_image_ref, "--wait", "--detach")
    assert r.returncode == 4 and "max_waiting_per_user" in r.stderr, r.stderr
    assert queue_doc(ds01_home)["waiting"] == 1


def test_a_detached_request_survives_a_restart_and_is_granted(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    u = unix_users
    setup(ds01_home, 1)
    assert deploy(u["alice"], "holder", base_image_ref).returncode == 0
    r = deploy(u["bob"], "later", base_image_ref, "--wait", "--detach", "--json")
    assert r.returncode == 0, r.stderr
    queued = json.loads(r.stdout)["queued"]
    assert queued["position"] == 1
    assert list((ds01_home / "state" / "queue").glob("*.json"))
    ds01_home.restart()
    doc = queue_doc(ds01_home)
    assert [x["id"] for x in doc["requests"]] == [queued["id"]]
    human = run_as(u["carol"], "ds01", "queue")
    assert human.returncode == 0 and "1 request(s) waiting" in human.stdout and "1 x 1 GPU" in human.stdout
    assert "later" not in human.stdout  # carol sees counts, not bob's request
    mine = run_as(u["bob"], "ds01", "queue")
    assert "later" in mine.stdout and queued["id"] in mine.stdout, mine.stdout
    assert run_as(u["alice"], "container-retire", "holder", "--yes").returncode == 0
    until(lambda: any(e["user"] == u["bob"].name for e in events_of(ds01_home, "queue_grant")))
    c = engine_clean.containers.get(f"later._.{u['bob'].uid}")
    assert c.status == "running"
    alerts = Path(c.labels["ds01.workspace"]) / ".ds01-alerts"
    until(alerts.exists)  # the owner is told right after the grant
    assert "queued deploy is running" in alerts.read_text()
    assert not list((ds01_home / "state" / "queue").glob("*.json"))


def test_the_seeds_loop_runs_every_experiment_without_a_slot_held_twice(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    """`for i in $(seq 10); do container-deploy experiment-$i --background --wait --detach; done` on a box
    with three slots (container-deploy, not project-launch: no project files needed). Deploy runs its own
    keep-alive command, so each experiment "finishes" when its owner retires it, a moment after it started."""
    erin = unix_users["erin"]
    setup(ds01_home, 3)
    loop = (
        f"for i in $(seq 10); do container-deploy experiment-$i --gpus 1 --image {base_image_ref} "
        "--background --wait --detach || exit 1; done"
    )
    env = [f"DS01_SOCKET={os.environ['DS01_SOCKET']}", f"PATH={BIN}:/usr/bin:/bin"]
    r = subprocess.run(
        ["runuser", "-u", erin.name, "--", "env", "-i", *env, "sh", "-c", loop],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("waits for a GPU") == 7
    done: set[str] = set()
    end = time.monotonic() + 90
    while len(done) < 10 and time.monotonic() < end:
        for c in engine_clean.containers.list(filters={"label": f"ds01.uid={erin.uid}"}):
            name = c.name.split("._.")[0]
            assert run_as(erin, "container-retire", name, "--yes").returncode == 0
            done.add(name)
        time.sleep(0.3)
    assert done == {f"experiment-{i}" for i in range(1, 11)}
    held: dict[str, str] = {}
    most = 0
    for e in events_of(ds01_home, "allocate", "release"):
        for slot in e["details"]["slots"]:
            if e["event_type"] == "allocate":
                assert slot not in held, f"slot {slot} given twice: {held[slot]} and {e['container']}"
                held[slot] = e["container"]
            else:
                assert held.pop(slot) == e["container"]
        most = max(most, len(held))
    assert most == 3
    assert len(events_of(ds01_home, "queue_grant")) == 7
    assert queue_doc(ds01_home)["waiting"] == 0


def test_a_big_request_is_not_starved_by_a_stream_of_small_ones(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    """Two GPUs; bob wants both (--gpus 2) behind a stream of 1-GPU requests from alice and carol, each slot
    freed by a retire as soon as it is granted: once bob has been passed over max_bypass (2) times, the
    capacity that frees is kept for him and he is granted. (The simulated inventory gives MIG slices and full
    GPUs on different cards, so the small requests here are full GPUs: the same starvation.)"""
    u = unix_users
    setup(ds01_home, 2, queue={"max_bypass": 2})
    assert deploy(u["alice"], "s0", base_image_ref).returncode == 0
    assert deploy(u["carol"], "s1", base_image_ref).returncode == 0
    r = run_as(
        u["bob"], "container-deploy", "big", "--gpus", "2", "--image", base_image_ref, "--background",
        "--wait", "--detach",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    for i in range(6):  # the stream, all behind bob
        who = u["alice"] if i % 2 else u["carol"]
        assert deploy(who, f"s{i + 2}", base_image_ref, "--wait", "--detach").returncode == 0
    bob = u["bob"].name

    def bob_granted() -> bool:
        return any(e["user"] == bob for e in events_of(ds01_home, "queue_grant"))

    end = time.monotonic() + 60
    while not bob_granted() and time.monotonic() < end:  # each small job ends as soon as it runs
        for who in (u["alice"], u["carol"]):
            for c in engine_clean.containers.list(filters={"label": f"ds01.uid={who.uid}"}):
                run_as(who, "container-retire", c.name.split("._.")[0], "--yes")
        time.sleep(0.3)
    assert bob_granted()
    grants = events_of(ds01_home, "queue_grant")
    before = grants[: [g["user"] for g in grants].index(bob)]
    assert len(before) <= 2, [g["container"] for g in grants]
    c = engine_clean.containers.get(f"big._.{u['bob'].uid}")
    assert sorted(c.labels["ds01.gpu.slots"].split(",")) == ["0", "1"]


def test_project_launch_waits_too(ds01_home, engine_clean, base_image_ref, unix_users, engine_client):
    """`project-launch NAME --background --wait --detach` for a project whose image is built already."""
    u = unix_users
    setup(ds01_home, 1)
    engine_client.images.get(base_image_ref).tag(f"ds01-{u['bob'].uid}/exp", "latest")
    assert deploy(u["alice"], "holder", base_image_ref).returncode == 0
    r = run_as(u["bob"], "project-launch", "exp", "--gpus", "1", "--background", "--wait", "--detach")
    assert r.returncode == 0 and "waits for a GPU: position 1 of 1" in r.stdout, (r.stdout, r.stderr)
    assert run_as(u["alice"], "container-retire", "holder", "--yes").returncode == 0
    until(lambda: any(e["user"] == u["bob"].name for e in events_of(ds01_home, "queue_grant")))
    c = engine_clean.containers.get(f"exp._.{u['bob'].uid}")
    assert c.status == "running" and c.labels["ds01.interface"] == "wizard"
    r = run_as(u["bob"], "project-launch", "exp", "--detach")
    assert r.returncode == 2 and "--wait" in r.stderr
