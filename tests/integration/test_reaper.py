"""The reaper on the private engine, with the clock driven by the test.

Containers are made here directly with the engine client and ds01's labels, so these tests depend only on
the reaper. Times come from the engine (StartedAt, FinishedAt, Created); the test moves the reaper's clock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.users import TestUser as UnixUser
from harness.users import run_as

pytestmark = pytest.mark.docker

BIN = Path(sys.executable).parent
# SIGTERM interrupts `wait`, so the trap runs at once; the loop costs no CPU between signals
TRAP = 'trap "echo saved > /workspace/ckpt; exit 0" TERM; while :; do sleep 60 & wait $!; done'
BUSY = "while :; do :; done"
SAMPLE_S = 0.3


@dataclass
class World:
    home: Path
    client: Any
    image: str
    alice: UnixUser
    inventory: Path

    def gpu_utilization(self, percent: float) -> None:
        """Rewrite the simulated inventory; the probe re-reads it on every pass."""
        gpus: list[dict[str, Any]] = [
            {"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "utilization": percent},
            {"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "utilization": 0},
            {"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "mig": [{"profile": "3g.40gb"}]},
        ]
        self.inventory.write_text(yaml.safe_dump({"gpus": gpus}))

    def workspace(self, name: str) -> Path:
        ws = self.home / "ws" / self.alice.name / name
        ws.mkdir(parents=True, exist_ok=True)
        for path in (ws.parent, ws):
            os.chown(path, self.alice.uid, self.alice.gid)
        return ws

    def labels(self, name: str, *, gpu: bool) -> dict[str, str]:
        from ds01.gpu.simulated import default_gpu_uuid

        labels = {
            "ds01.managed": "true", "ds01.user": self.alice.name, "ds01.uid": str(self.alice.uid),
            "ds01.project": name, "ds01.interface": "atomic", "ds01.created_at": "2026-11-23T09:00:00Z",
            "ds01.workspace": str(self.workspace(name)),
        }  # fmt: skip
        if gpu:
            labels |= {"ds01.gpu.slots": "0", "ds01.gpu.uuids": default_gpu_uuid(0), "ds01.gpu.gpueq": "1.0"}
        return labels

    def container(
        self,
        name: str,
        script: str = TRAP,
        *,
        gpu: bool = True,
        start: bool = True,
        labels: dict[str, str] | None = None,
    ) -> Any:
        kwargs = {
            "name": f"{name}._.{self.alice.uid}", "init": True, "network_mode": "none",
            "labels": self.labels(name, gpu=gpu) if labels is None else labels,
            "volumes": {str(self.workspace(name)): {"bind": "/workspace", "mode": "rw"}},
        }  # fmt: skip
        c = self.client.containers.create(self.image, ["sh", "-c", script], **kwargs)
        if start:
            c.start()
        c.reload()
        return c


def engine_time(value: str) -> datetime:
    from ds01.atomic.holdings import parse_time

    parsed = parse_time(value)
    assert parsed is not None, value
    return parsed


def started(c: Any) -> datetime:
    c.reload()
    return engine_time(c.attrs["State"]["StartedAt"])


def run(clock: Any, **options: Any) -> Any:
    from ds01.context import Context
    from ds01.lifecycle.reaper import ReaperOptions, locked_pass

    return locked_pass(Context.load(), clock, ReaperOptions(sample_s=SAMPLE_S, **options))


def entry(report: Any, c: Any) -> dict[str, Any]:
    found = [e for e in report.as_dict()["containers"] if e["container"] == c.name]
    assert found, f"{c.name} not in the report"
    return found[0]


def exists(client: Any, c: Any) -> bool:
    import docker.errors

    try:
        client.containers.get(c.id)
    except docker.errors.NotFound:
        return False
    return True


def events(home: Path, kind: str | None = None) -> list[dict[str, Any]]:
    from ds01.events import read_events

    return [e for e in read_events(home / "log") if kind is None or e["event_type"] == kind]


def cli(
    *args: str, now: datetime | None = None, command: str = "ds01-reaper"
) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / command), *args]
    if now is not None:
        argv += ["--now", now.strftime("%Y-%m-%dT%H:%M:%SZ")]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


@pytest.fixture
def world(
    ds01_home: Path,
    engine_clean: Any,
    base_image_ref: str,
    unix_users: dict[str, UnixUser],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    inventory = ds01_home / "gpus.yaml"
    w = World(ds01_home, engine_clean, base_image_ref, unix_users["alice"], inventory)
    w.gpu_utilization(0)
    ds01_home.reconfigure(gpu={"inventory": str(inventory)})  # ds01d's and the in-process passes' alike
    yield w


@pytest.fixture
def alice_pty(world: World) -> Iterator[int]:
    """A terminal the user has open on the host: the reaper must write its warnings there."""
    master, slave = os.openpty()
    os.chown(os.ttyname(slave), world.alice.uid, -1)
    os.set_blocking(master, False)
    yield master
    os.close(slave)
    os.close(master)


def read_pty(master: int) -> str:
    try:
        return os.read(master, 65536).decode(errors="replace")
    except BlockingIOError:
        return ""


def test_a_cpu_busy_gpu_container_is_never_stopped(world: World):
    from ds01.lifecycle.clock import ManualClock

    busy = world.container("busy", BUSY)
    clock = ManualClock(started(busy) + timedelta(minutes=31))
    for step in range(6):  # the GPU stays idle the whole time; its CPU does not
        report = run(clock)
        e = entry(report, busy)
        assert e["action"] == "none" and "CPU at" in e["reason"], e
        clock.advance(hours=3 if step else 1)  # up to 13.5 h: inside max_runtime_h
    assert e["values"]["cpu_percent"] > 50 and e["values"]["idle_streak"] == 0
    engine = run(clock, use_cgroups=False)  # the same verdict from the engine's stats and top
    assert entry(engine, busy)["action"] == "none" and "CPU at" in entry(engine, busy)["reason"]
    busy.reload()
    assert busy.status == "running"
    assert not events(world.home, "idle_warning") and not events(world.home, "idle_stop")


def test_an_idle_gpu_container_is_warned_twice_then_stopped_with_sigterm_and_removed(
    world: World, alice_pty: int
):
    from ds01.lifecycle.clock import ManualClock

    c = world.container("proj")
    workspace = world.workspace("proj")
    t = started(c) + timedelta(minutes=31)
    clock = ManualClock(t)
    world.gpu_utilization(90)
    assert "GPU 0 at 90" in entry(run(clock), c)["reason"]
    world.gpu_utilization(0)  # training finished; the container sits on its GPU from here on
    for minutes in (5, 10):
        clock.set(t + timedelta(minutes=minutes))
        assert entry(run(clock), c)["action"] == "none"

    clock.set(t + timedelta(minutes=24.5))
    first = entry(run(clock), c)
    assert (first["action"], first["level"], first["delivered"]) == (
        "idle_warning",
        80,
        {"terminals": 1, "alerts_file": True},
    )
    shown = read_pty(alice_pty)
    assert "ds01 WARNING: container proj" in shown and "touch /workspace/.keep-alive" in shown

    clock.set(t + timedelta(minutes=29))
    assert entry(run(clock), c)["level"] == 95
    assert "FINAL WARNING: container proj" in read_pty(alice_pty)

    clock.set(t + timedelta(minutes=31))
    stop = entry(run(clock), c)
    assert stop["action"] == "idle_stop" and stop["done"] and "idle_timeout_h reached" in stop["reason"]
    assert stop["exit_code"] == 0, "SIGTERM reached the trap, which saved and exited cleanly"
    assert not exists(world.client, c), "removed: the GPU is free"
    assert (workspace / "ckpt").read_text() == "saved\n"
    alerts = (workspace / ".ds01-alerts").read_text()
    assert alerts.count("WARNING: container proj") == 2 and "STOPPED: container proj" in alerts
    assert (workspace / ".ds01-alerts").stat().st_uid == world.alice.uid
    assert "STOPPED: container proj" in read_pty(alice_pty)
    assert [e["details"]["level"] for e in events(world.home, "idle_warning")] == [80, 95]
    (stopped,) = events(world.home, "idle_stop")
    assert stopped["user"] == world.alice.name and stopped["container"] == c.name
    assert stopped["details"]["exit_code"] == 0 and stopped["details"]["removed"] is True
    assert "idle_timeout_h" in stopped["details"]["reason"]
    (released,) = events(world.home, "release")
    (removed,) = events(world.home, "remove")
    uuids = [c.labels["ds01.gpu.uuids"]]
    assert released["details"] == {
        "slots": ["0"], "uuids": uuids, "gpueq": 1.0, "reason": "idle_stop", "by": "reaper",
    }  # fmt: skip
    assert removed["details"] == {"reason": "idle_stop", "forced": False, "by": "reaper"}


def test_keep_alive_postpones_the_idle_stop_until_it_is_too_old(world: World):
    from ds01.lifecycle.clock import ManualClock

    c = world.container("keep")
    keepalive = world.workspace("keep") / ".keep-alive"
    t = started(c) + timedelta(minutes=31)
    clock = ManualClock(t)
    for minutes in (0, 5):
        clock.set(t + timedelta(minutes=minutes))
        run(clock)
    keepalive.touch()
    os.utime(keepalive, (t.timestamp() + 600, t.timestamp() + 600))
    for minutes in (10, 20):  # idle 41 and 51 min of 30: only the keep-alive holds it
        clock.set(t + timedelta(minutes=minutes))
        e = entry(run(clock), c)
        assert e["action"] == "postponed" and ".keep-alive" in e["reason"], e
    old = t.timestamp() - 25 * 3600
    os.utime(keepalive, (old, old))
    clock.set(t + timedelta(minutes=25))
    assert entry(run(clock), c)["action"] == "idle_warning"
    clock.set(t + timedelta(minutes=30))
    assert entry(run(clock), c)["action"] == "idle_stop"
    assert not exists(world.client, c)


def test_past_max_runtime_a_container_is_stopped_and_kept_until_its_gpu_hold_passes(world: World):
    from ds01.lifecycle.clock import ManualClock

    world.gpu_utilization(95)  # working hard the whole time: only the runtime limit applies
    c = world.container("long")
    start = started(c)
    clock = ManualClock(start + timedelta(hours=18.5))
    assert entry(run(clock), c)["level"] == 75
    clock.set(start + timedelta(hours=22))
    assert entry(run(clock), c)["level"] == 90
    clock.set(start + timedelta(hours=24.1))
    stop = entry(run(clock), c)
    assert stop["action"] == "runtime_stop" and stop["exit_code"] == 0 and "max_runtime_h" in stop["reason"]
    c.reload()
    assert c.status == "exited", "stopped, not removed"
    finished = engine_time(c.attrs["State"]["FinishedAt"])
    clock.set(finished + timedelta(minutes=10))  # the student group's gpu_hold_after_stop_h is 0.25
    kept = entry(run(clock), c)
    assert kept["action"] == "none" and "gpu_hold_after_stop_h" in kept["reason"]
    assert exists(world.client, c)
    clock.set(finished + timedelta(minutes=16))
    assert entry(run(clock), c)["action"] == "cleanup"
    assert not exists(world.client, c)
    assert [e["event_type"] for e in events(world.home) if e["event_type"] not in ("remove", "release")] == [
        "runtime_warning", "runtime_warning", "runtime_stop", "cleanup"]  # fmt: skip


def test_a_created_never_started_container_is_removed_after_its_timeout(world: World):
    from ds01.lifecycle.clock import ManualClock

    c = world.container("draft", gpu=False, start=False)
    created = engine_time(c.attrs["Created"])
    clock = ManualClock(created + timedelta(minutes=29))
    assert entry(run(clock), c)["action"] == "none"
    clock.set(created + timedelta(minutes=31))
    gone = entry(run(clock), c)
    assert gone["action"] == "cleanup" and "created_container_timeout_m" in gone["reason"]
    assert not exists(world.client, c)
    (event,) = events(world.home, "cleanup")
    assert "never started" in event["details"]["reason"]


def test_containers_without_the_managed_label_are_never_touched(world: World):
    from ds01.lifecycle.clock import ManualClock

    ds01_like = world.labels("lookalike", gpu=True)
    del ds01_like["ds01.managed"]
    others = [
        world.container("exited", "true", labels={}),
        world.container("created", labels={}, start=False),
        world.container("lookalike", labels=ds01_like),
        world.container("unmanaged", labels={**world.labels("unmanaged", gpu=True), "ds01.managed": "false"}),
    ]
    managed = world.container("mine", gpu=False, start=False)
    others[0].wait(timeout=30)
    clock = ManualClock(started(others[2]) + timedelta(days=400))
    report = run(clock).as_dict()
    assert [e["container"] for e in report["containers"]] == [managed.name]
    assert not exists(world.client, managed), "the pass did act on what ds01 manages"
    for c in others:
        assert exists(world.client, c), c.name
        c.reload()
    assert [c.status for c in others] == ["exited", "created", "running", "running"]


def test_dry_run_changes_nothing(world: World, alice_pty: int):
    from ds01.lifecycle.clock import ManualClock

    c = world.container("dry")
    t = started(c) + timedelta(minutes=31)
    clock = ManualClock(t)
    for minutes in (0, 5, 10):  # the third idle check gives the final warning
        clock.set(t + timedelta(minutes=minutes))
        last = entry(run(clock), c)
    assert last["action"] == "idle_warning", last
    read_pty(alice_pty)
    state = {p.name: p.read_bytes() for p in (world.home / "state" / "reaper").iterdir()}
    log = (world.home / "log" / "events.jsonl").read_bytes()
    alerts = (world.workspace("dry") / ".ds01-alerts").read_bytes()

    result = cli("--once", "--dry-run", "--json", now=t + timedelta(minutes=15))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert [(a["container"], a["action"], a["done"]) for a in report["actions"]] == [
        (c.name, "idle_stop", False)
    ]
    human = cli("reaper", "--once", "--dry-run", now=t + timedelta(minutes=15), command="ds01")
    assert human.returncode == 0 and "idle_stop" in human.stdout and "dry run" in human.stderr

    c.reload()
    assert c.status == "running"
    assert {p.name: p.read_bytes() for p in (world.home / "state" / "reaper").iterdir()} == state
    assert (world.home / "log" / "events.jsonl").read_bytes() == log
    assert (world.workspace("dry") / ".ds01-alerts").read_bytes() == alerts
    assert read_pty(alice_pty) == ""


def test_a_restarted_reaper_keeps_the_idle_state(world: World):
    from ds01.lifecycle.clock import ManualClock

    c = world.container("restart")
    t = started(c) + timedelta(minutes=31)
    clock = ManualClock(t)
    for minutes in (0, 5):
        clock.set(t + timedelta(minutes=minutes))
        assert entry(run(clock), c)["values"]["idle_streak"] == minutes // 5 + 1

    third = cli("--once", "--json", now=t + timedelta(minutes=10))  # a new process
    assert third.returncode == 0, third.stderr
    e = next(x for x in json.loads(third.stdout)["containers"] if x["container"] == c.name)
    assert e["values"]["idle_streak"] == 3 and e["action"] == "idle_warning", e
    fourth = cli("--once", "--json", now=t + timedelta(minutes=15))
    assert [a["action"] for a in json.loads(fourth.stdout)["actions"]] == ["idle_stop"]
    assert not exists(world.client, c)


def test_only_admins_may_run_the_reaper(world: World):
    result = run_as(world.alice, "ds01-reaper", "--once", "--dry-run")
    assert result.returncode == 5 and "only admins" in result.stderr
    assert "Traceback" not in result.stderr
    denied = events(world.home, "denied")
    assert denied and denied[-1]["user"] == world.alice.name and "reaper" in denied[-1]["details"]["endpoint"]


def test_the_client_loop_asks_ds01d_for_passes_and_stops_on_sigterm(world: World):
    argv = [str(BIN / "ds01-reaper"), "--interval", "0.3", "--json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None

    def next_doc() -> dict[str, Any]:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        return dict(json.loads(line))

    assert next_doc()["checked"] == 0
    c = world.container("late", start=False)
    while (doc := next_doc())["checked"] == 0:
        pass
    assert doc["containers"][0]["container"] == c.name and doc["dry_run"] is False
    proc.terminate()
    assert proc.wait(timeout=30) == 0


def test_ds01d_runs_the_loop_by_itself_with_the_config_in_force(world: World):
    """Installing ds01 turns enforcement on: ds01d's own loop removes what its policies say, no command
    needed; a broken config edit leaves it enforcing the last good one."""
    from harness import daemon

    c = world.container("never-started", start=False)
    world.home.reconfigure(
        gpu={"inventory": str(world.inventory)}, policies={"created_container_timeout_m": 0}
    )
    good = world.home.config.read_text()
    daemon.stop_ds01d(world.home.server)
    world.home.config.write_text(good)
    env = {k: v for k, v in os.environ.items() if k in ("DOCKER_HOST", "PATH", "LANG")}
    world.home.server = daemon.start_ds01d(world.home.config, world.home.socket, env=env, reaper=True)
    world.home.config.write_text(good + "\nbogus_key: 1\n")  # broken: the loop keeps the last good config
    deadline = time.monotonic() + 30
    # the pass removes the container, then logs `cleanup`: wait for both
    while exists(world.client, c) or not events(world.home, "cleanup"):
        assert time.monotonic() < deadline, world.home.server.log_text()[-2000:]
        time.sleep(0.2)
    (cleanup,) = events(world.home, "cleanup")
    assert cleanup["container"] == c.name and cleanup["user"] == world.alice.name
    (removed,) = events(world.home, "remove")
    assert removed["details"]["by"] == "reaper" and removed["details"]["reason"] == "cleanup"


def test_warnings_reach_the_shells_inside_the_container(world: World):
    from ds01.lifecycle.clock import ManualClock

    c = world.container("shell")
    api = world.client.api
    exec_id = api.exec_create(c.id, ["sh"], stdin=True, tty=True)["Id"]
    sock = api.exec_start(exec_id, tty=True, socket=True)._sock  # an interactive shell, as `container-attach`
    sock.settimeout(5)
    t = started(c) + timedelta(minutes=31)
    clock = ManualClock(t)
    for minutes in (0, 5, 10):  # the third idle check gives the final warning
        clock.set(t + timedelta(minutes=minutes))
        e = entry(run(clock), c)
    assert e["action"] == "idle_warning" and e["delivered"]["terminals"] == 1, e
    seen = b""
    while b"SAVE YOUR WORK" not in seen:
        seen += sock.recv(4096)
    assert b"FINAL WARNING: container shell" in seen
    sock.close()
