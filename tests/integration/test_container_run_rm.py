"""`container-run NAME --rm -- CMD`: a one-shot command in a fresh container from the project's image, as a
real user against the real ds01d and engine: exit codes pass through, output is captured, the workspace is
the project's, the container is gone afterwards (also when the client is killed), an existing NAME container
is left alone, and the run counts against the quotas while it exists."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from ds01.events import read_events
from harness.users import KEEP_ENV, TestUser, bin_dir, ok, run_as

pytestmark = pytest.mark.docker

DOCKERFILE = "FROM ds01-test/busybox:latest\nRUN echo built > /etc/built-marker\n"


def runs(client, user: TestUser, name: str = "ci") -> list:
    prefix = f"{name}-run-"
    return [
        c for c in client.containers.list(all=True)
        if c.name.startswith(prefix) and c.name.endswith(f"._.{user.uid}")
    ]  # fmt: skip


@pytest.fixture
def frank(unix_users) -> Iterator[TestUser]:
    user = unix_users["frank"]
    yield user
    shutil.rmtree(user.home / "ds01-rm-src", ignore_errors=True)


@pytest.fixture
def project(ds01_home, engine_clean, frank) -> str:
    folder = frank.home / "ds01-rm-src"
    folder.mkdir(exist_ok=True)
    (folder / "Dockerfile").write_text(DOCKERFILE)
    for p in (folder, folder / "Dockerfile"):
        os.chown(p, frank.uid, frank.gid)
    ok(run_as(frank, "image-create", "ci", "--dockerfile", str(folder / "Dockerfile")))
    return "ci"


def test_exit_codes_pass_through_output_is_captured_and_nothing_is_left(
    ds01_home, engine_clean, frank, project
):
    script = (
        "id -u; pwd; cat /etc/built-marker; echo from-the-run > /workspace/result.txt; echo to-stderr >&2"
    )
    result = ok(run_as(frank, "container-run", "ci", "--rm", "--", "sh", "-c", script))
    assert result.stdout.split() == [str(frank.uid), "/workspace", "built"]
    assert "to-stderr" in result.stderr
    written = ds01_home / "ws" / frank.name / "ci" / "result.txt"
    assert written.read_text() == "from-the-run\n" and written.stat().st_uid == frank.uid
    assert runs(engine_clean, frank) == []

    failed = run_as(frank, "container-run", "ci", "--rm", "--", "sh", "-c", "echo failing; exit 3")
    assert failed.returncode == 3 and failed.stdout.strip() == "failing"
    assert runs(engine_clean, frank) == []

    events = read_events(ds01_home / "log")
    made = [e for e in events if e["event_type"] == "create" and str(e["container"]).startswith("ci-run-")]
    gone = {e["container"] for e in events if e["event_type"] == "remove"}
    assert len(made) == 2 and {e["container"] for e in made} <= gone


def test_a_run_is_a_normal_container_while_it_runs_and_leaves_name_alone(
    ds01_home, engine_clean, frank, project
):
    ok(run_as(frank, "container-create", "ci"))
    existing = engine_clean.containers.get(f"ci._.{frank.uid}")
    proc = _spawn(frank, "container-run", "ci", "--rm", "--", "sleep", "30")
    try:
        run = _wait_for(lambda: runs(engine_clean, frank))[0]
        labels = run.labels
        assert labels["ds01.user"] == frank.name and labels["ds01.uid"] == str(frank.uid)
        assert labels["ds01.project"].startswith("ci-run-") and labels["ds01.gpu.slots"] == ""
        assert labels["ds01.workspace"] == str(ds01_home / "ws" / frank.name / "ci")
        assert [m["Destination"] for m in run.attrs["Mounts"]] == [
            m["Destination"] for m in existing.attrs["Mounts"]
        ]  # the same mounts (the project's workspace at /workspace: see the test above)
        host = run.attrs["HostConfig"]
        normal = existing.attrs["HostConfig"]
        for key in ("NanoCpus", "Memory", "PidsLimit", "Privileged", "CapAdd"):
            assert host[key] == normal[key], key
        assert run.attrs["Config"]["User"] == existing.attrs["Config"]["User"]
        assert len(run.name.split("._.")[0]) == len("ci-run-") + 6
    finally:
        os.kill(_client_pid(proc), signal.SIGINT)  # Ctrl-C: the client removes it on its way out
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    _wait_for(lambda: runs(engine_clean, frank) == [])
    existing.reload()
    assert existing.status == "created" and existing.id == engine_clean.containers.get(f"ci._.{frank.uid}").id


def test_a_killed_client_does_not_leave_its_container(ds01_home, engine_clean, frank, project):
    proc = _spawn(frank, "container-run", "ci", "--rm", "--", "sleep", "300")
    try:
        _wait_for(lambda: runs(engine_clean, frank))
    finally:
        os.kill(_client_pid(proc), signal.SIGKILL)  # no chance to clean up: ds01d sees the client gone
        proc.wait(timeout=30)
    _wait_for(lambda: runs(engine_clean, frank) == [], timeout=30)


def test_the_run_counts_against_the_quota(ds01_home, engine_clean, frank, project):
    ds01_home.reconfigure(user_overrides={frank.name: {"max_containers_per_user": 1}})
    ok(run_as(frank, "container-create", "ci"))
    result = run_as(frank, "container-run", "ci", "--rm", "--", "true")
    assert result.returncode == 4, result.stderr
    assert runs(engine_clean, frank) == []


def test_usage_errors(ds01_home, engine_clean, frank, project):
    no_cmd = run_as(frank, "container-run", "ci", "--rm")
    assert no_cmd.returncode == 2 and "needs a command" in no_cmd.stderr
    missing = run_as(frank, "container-run", "no-such-project", "--rm", "--", "true")
    assert missing.returncode == 3 and "has no image" in missing.stderr
    assert runs(engine_clean, frank, "no-such-project") == []


GO = "while [ ! -e /workspace/go ]; do sleep 0.2; done"  # a run that ends when the test says so


def _kill_ds01d(home) -> None:
    home.server.process.send_signal(signal.SIGKILL)  # no chance to clean up: no thread survives
    home.server.process.wait(timeout=30)


def test_a_restart_removes_the_runs_whose_client_is_gone_and_keeps_the_rest(
    ds01_home, engine_clean, frank, project
):
    ok(run_as(frank, "container-create", "ci"))
    normal = engine_clean.containers.get(f"ci._.{frank.uid}")
    kept = ds01_home / "ws" / frank.name / "ci" / "kept.txt"
    proc = _spawn(frank, "container-run", "ci", "--rm", "--", "sh", "-c", "echo mine > kept.txt; sleep 300")
    try:
        run = _wait_for(lambda: runs(engine_clean, frank))[0]
        client = _client_pid(proc)
        pid, started, uid = run.labels["ds01.run_once"].split(":")
        assert (int(pid), uid) == (client, str(frank.uid)) and started.isdigit()
        assert normal.labels["ds01.run_once"] == ""  # set (blank) on every container
        _wait_for(kept.exists)
        _kill_ds01d(ds01_home)
        os.kill(client, signal.SIGKILL)  # the run's client ends while no ds01d watches it
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert [c.name for c in runs(engine_clean, frank)] == [run.name]  # left behind, for now
    ds01_home.restart()
    _wait_for(lambda: runs(engine_clean, frank) == [], timeout=5)
    assert kept.read_text() == "mine\n" and kept.stat().st_uid == frank.uid  # the workspace is kept
    normal.reload()
    assert normal.status == "created" and normal.id == engine_clean.containers.get(f"ci._.{frank.uid}").id
    removed = [e for e in read_events(ds01_home / "log") if e["event_type"] == "remove"]
    assert [(e["container"], e["details"]["reason"]) for e in removed] == [(run.name, "run_once")]
    assert "whose client was gone" in ds01_home.server.log_text()


def test_a_restart_keeps_watching_a_run_whose_client_still_runs(ds01_home, engine_clean, frank, project):
    go = ds01_home / "ws" / frank.name / "ci" / "go"
    waiting = _spawn(frank, "container-run", "ci", "--rm", "--", "sh", "-c", f"{GO}; exit 5")
    _wait_for(lambda: len(runs(engine_clean, frank)) == 1)
    sleeping = _spawn(frank, "container-run", "ci", "--rm", "--", "sleep", "300")
    try:
        _wait_for(lambda: ds01_home.server.log_text().count("POST /containers/{name}/run-once") == 2)
        first = _client_pid(waiting)
        second = _client_pid(sleeping)
        _kill_ds01d(ds01_home)
        ds01_home.restart()
        time.sleep(1)
        assert len(runs(engine_clean, frank)) == 2  # both clients run: both runs stay
        assert all(c.status == "running" for c in runs(engine_clean, frank))
        os.kill(second, signal.SIGKILL)  # watched again by the new ds01d: its run goes at once
        sleeping.wait(timeout=30)
        _wait_for(lambda: len(runs(engine_clean, frank)) == 1, timeout=10)
        assert len(runs(engine_clean, frank)) == 1
        assert runs(engine_clean, frank)[0].labels["ds01.run_once"].startswith(f"{first}:")
        go.write_text("")
        _out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 5, err  # the exit code, asked of the new ds01d
    finally:
        for proc in (waiting, sleeping):
            proc.kill()
            proc.wait(timeout=30)
    _wait_for(lambda: runs(engine_clean, frank) == [], timeout=10)


def test_a_gpu_run_holds_its_slot_while_it_runs(ds01_home, engine_clean, frank, unix_users, project):
    go = ds01_home / "ws" / frank.name / "ci" / "go"
    script = f"echo $NVIDIA_VISIBLE_DEVICES; {GO}"
    proc = _spawn(frank, "container-run", "ci", "--rm", "--gpus", "1", "--", "sh", "-c", script)
    try:
        run = _wait_for(lambda: runs(engine_clean, frank))[0]
        slot_id = run.labels["ds01.gpu.slots"]
        assert slot_id and "," not in slot_id

        def held() -> list:
            shown = ok(run_as(unix_users["bob"], "gpu-status", "--json"))  # another user, another shell
            return [s for s in json.loads(shown.stdout)["slots"] if s["holder"]]

        holders = _wait_for(held)
        assert len(holders) == 1 and holders[0]["id"] == slot_id
        assert holders[0]["holder"]["user"] == frank.name
        assert holders[0]["holder"]["container"] == run.name.split("._.")[0]
        go.write_text("")
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == 0, err
    assert out.strip() == holders[0]["uuid"] == run.labels["ds01.gpu.uuids"]
    assert runs(engine_clean, frank) == []
    assert held() == []  # free again
    events = read_events(ds01_home / "log")
    assert [e["container"] for e in events if e["event_type"] == "release"] == [run.name]


def _spawn(user: TestUser, command: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k in KEEP_ENV or k in ("PATH", "LANG")}
    argv = ["runuser", "-u", user.name, "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()],
            str(bin_dir() / command), *args]  # fmt: skip
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/"
    )


def _client_pid(proc: subprocess.Popen[str]) -> int:
    """The ds01 command itself: runuser's child (`env -i` execs it)."""

    def children() -> list[int]:
        found: list[int] = []
        for task in os.listdir(f"/proc/{proc.pid}/task"):
            with open(f"/proc/{proc.pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
        return found

    return int(_wait_for(children)[0])


def _wait_for(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
