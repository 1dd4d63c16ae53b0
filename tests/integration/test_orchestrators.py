"""container-deploy / container-retire on the private engine, as real users: the ephemeral model."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.users import run_as

pytestmark = pytest.mark.docker
BIN = Path(sys.executable).parent


def popen_as(user, *argv: str, **kw) -> subprocess.Popen:
    """A console script as a real user, in its own process group (so that a kill reaches the client)."""
    env = [f"{k}={v}" for k, v in os.environ.items() if k in ("DS01_SOCKET", "PATH")]
    cmd = ["runuser", "-u", user.name, "--", "env", "-i", *env, str(BIN / argv[0]), *argv[1:]]
    return subprocess.Popen(cmd, start_new_session=True, **kw)


def events_of(ds01_home, *types: str) -> list[dict]:
    lines = (ds01_home / "log" / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if not types or e["event_type"] in types]


def sh(user, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = run_as(user, *args)
    if check:
        assert result.returncode == 0, f"{args}: {result.stderr}"
    return result


def slots_held(gpu_status: dict) -> dict[str, tuple[str, str]]:
    return {
        s["id"]: (s["holder"]["user"], s["holder"]["container"]) for s in gpu_status["slots"] if s["holder"]
    }


def deploy_json(user, name: str, *flags: str) -> dict:
    return json.loads(sh(user, "container-deploy", name, *flags, "--background", "--json").stdout)


def ds01_containers(client, uid: int) -> list:
    return client.containers.list(all=True, filters={"label": [f"ds01.uid={uid}"]}, ignore_removed=True)


def test_round_trip_workspace_survives_and_gpu_is_free_in_between(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    alice = unix_users["alice"]
    entry = deploy_json(alice, "thesis", "--gpus", "1", "--image", base_image_ref)
    assert entry["name"] == "thesis" and entry["status"] == "running" and len(entry["gpus"]) == 1
    slot = entry["gpus"][0]["slot"]
    assert slots_held(json.loads(sh(alice, "gpu-status", "--json").stdout))[slot] == (alice.name, "thesis")

    sh(alice, "container-run", "thesis", "--", "sh", "-c", "echo kept > /workspace/notes.txt")
    retired = json.loads(sh(alice, "container-retire", "thesis", "--yes", "--json").stdout)
    assert retired[0]["gpus_freed"] == [slot]
    [released] = events_of(ds01_home, "release")
    assert released["details"]["slots"] == [slot] and released["details"]["reason"] == "retire"
    assert set(released["details"]) == {"slots", "uuids", "gpueq", "reason"}
    assert slot not in slots_held(json.loads(sh(alice, "gpu-status", "--json").stdout))
    assert ds01_containers(engine_clean, alice.uid) == []

    again = deploy_json(alice, "thesis", "--gpus", "1", "--image", base_image_ref)
    assert again["workspace"] == entry["workspace"]
    out = sh(alice, "container-run", "thesis", "--", "cat", "/workspace/notes.txt").stdout
    assert out.strip() == "kept"
    events = [json.loads(line) for line in (ds01_home / "log" / "events.jsonl").read_text().splitlines()]
    interfaces = {e["details"].get("interface") for e in events if e["event_type"] == "create"}
    assert interfaces == {"orchestration"}


def test_deploy_of_a_stopped_container_starts_it_and_a_running_one_is_reported(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    bob = unix_users["bob"]
    first = json.loads(
        sh(bob, "container-deploy", "p1", "--cpu-only", "--image", base_image_ref, "--json").stdout
    )
    sh(bob, "container-stop", "p1")
    human = sh(bob, "container-deploy", "p1", "--image", base_image_ref).stdout
    assert "Started again" in human
    again = sh(bob, "container-deploy", "p1", "--image", base_image_ref).stdout
    assert "Already running" in again
    [container] = ds01_containers(engine_clean, bob.uid)
    assert container.id.startswith(first["container"]) or container.name == first["container"]
    assert "idle timeout" not in human  # CPU-only: the idle rule is for GPU containers


def test_deploy_summary_reads_limits_from_the_config(ds01_home, engine_clean, base_image_ref, unix_users):
    carol = unix_users["carol"]
    out = sh(carol, "container-deploy", "p2", "--gpus", "1", "--image", base_image_ref, "--background").stdout
    assert (
        "30 min" in out and "24 h" in out
    )  # student idle_timeout_h 0.5, max_runtime_h 24 in the shipped config
    assert "container-attach p2" in out and "container-retire p2" in out


def test_failed_start_leaves_nothing_behind(ds01_home, engine_clean, unix_users, docker_engine):
    import io
    import tarfile

    dave = unix_users["dave"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:  # an image with no programs at all: start must fail
        info = tarfile.TarInfo("etc/hostname")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"none\n"))
    engine_clean.api.import_image_from_data(buf.getvalue(), repository="broken/empty", tag="latest")
    before = json.loads(sh(dave, "gpu-status", "--json").stdout)
    result = run_as(
        dave, "container-deploy", "doomed", "--gpus", "1", "--image", "broken/empty:latest", "--background"
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ds01_containers(engine_clean, dave.uid) == []
    assert json.loads(sh(dave, "gpu-status", "--json").stdout) == before
    [removed] = events_of(ds01_home, "remove")
    [released] = events_of(ds01_home, "release")
    assert removed["details"]["reason"] == released["details"]["reason"] == "rollback"
    assert removed["user"] == released["user"] == dave.name
    assert set(released["details"]) == {"slots", "uuids", "gpueq", "reason", "by"}


def test_deploy_of_a_missing_image_says_how_to_make_one(ds01_home, engine_clean, unix_users):
    result = run_as(unix_users["dave"], "container-deploy", "nothing-built", "--background")
    assert result.returncode == 3 and "image-create" in result.stderr
    assert ds01_containers(engine_clean, unix_users["dave"].uid) == []


def test_deploy_killed_at_random_moments_always_recovers(ds01_home, engine_clean, base_image_ref, unix_users):
    """The deploy runs inside ds01d: a client killed at any moment leaves a finished deploy (or nothing),
    and running it again gives exactly one running container holding one GPU."""
    erin = unix_users["erin"]
    argv = ("container-deploy", "job", "--gpus", "1", "--image", base_image_ref, "--background")
    rng = random.Random(20261123)
    for _trial in range(12):
        proc = popen_as(erin, *argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.9))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        again = run_as(erin, *argv, "--json")
        assert again.returncode == 0, again.stderr
        containers = ds01_containers(engine_clean, erin.uid)
        assert [c.name for c in containers] == [f"job._.{erin.uid}"]
        assert containers[0].status == "running"
        held = slots_held(json.loads(sh(erin, "gpu-status", "--json").stdout))
        mine = [s for s, (user, _) in held.items() if user == erin.name]
        assert len(mine) == 1 and held[mine[0]] == (erin.name, "job")
        if rng.random() < 0.5:  # half the trials start from nothing, half from a running container
            sh(erin, "container-retire", "job", "--yes")


def test_a_client_gone_before_the_answer_still_gets_its_deploy_done(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    carol = unix_users["carol"]
    proc = popen_as(
        carol, "container-deploy", "late", "--gpus", "1", "--image", base_image_ref, "--background",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not (ds01_home / "log" / "events.jsonl").exists() or not events_of(ds01_home, "create"):
        assert time.monotonic() < deadline, "no create event"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the container exists, the start is under way
    proc.wait()
    deadline = time.monotonic() + 10
    while not events_of(ds01_home, "start"):
        assert time.monotonic() < deadline, "the deploy did not finish without its client"
        time.sleep(0.05)
    time.sleep(0.5)
    [container] = ds01_containers(engine_clean, carol.uid)
    container.reload()
    assert container.status == "running"


def test_retire_without_a_terminal_needs_yes(ds01_home, engine_clean, base_image_ref, unix_users):
    frank = unix_users["frank"]
    sh(frank, "container-deploy", "p3", "--cpu-only", "--image", base_image_ref, "--background")
    result = run_as(frank, "container-retire", "p3")
    assert result.returncode == 2 and "--yes" in result.stderr
    assert len(ds01_containers(engine_clean, frank.uid)) == 1


def test_retire_all(ds01_home, engine_clean, base_image_ref, unix_users):
    frank = unix_users["frank"]
    for name in ("a1", "a2"):
        sh(frank, "container-deploy", name, "--cpu-only", "--image", base_image_ref, "--background")
    retired = json.loads(sh(frank, "container-retire", "--all", "--yes", "--json").stdout)
    assert sorted(r["name"] for r in retired) == ["a1", "a2"]
    assert ds01_containers(engine_clean, frank.uid) == []


def test_save_changes_lists_added_packages_and_commits_them(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    alice = unix_users["alice"]
    entry = deploy_json(alice, "exp", "--gpus", "1", "--image", base_image_ref)
    container = engine_clean.containers.get(entry["container"])
    # what `pip install tqdm` leaves behind, made as root inside the container
    code, _ = container.exec_run(
        [
            "sh",
            "-c",
            "mkdir -p /usr/lib/python3/dist-packages/tqdm-4.66.1.dist-info"
            " && echo 'Name: tqdm' > /usr/lib/python3/dist-packages/tqdm-4.66.1.dist-info/METADATA",
        ],
        user="root",
    )
    assert code == 0
    retired = json.loads(sh(alice, "container-retire", "exp", "--yes", "--save-changes", "--json").stdout)
    assert retired[0]["added_packages"] == ["tqdm==4.66.1"]
    image = retired[0]["saved_image"]
    assert image == f"ds01-{alice.uid}/exp:latest"
    out = engine_clean.containers.run(
        image,
        ["cat", "/usr/lib/python3/dist-packages/tqdm-4.66.1.dist-info/METADATA"],
        remove=True,
        network_mode="none",
        entrypoint=[],
    )
    assert out.decode().strip() == "Name: tqdm"
    labels = engine_clean.images.get(image).labels
    assert labels["ds01.gpu.slots"] == "" and labels["ds01.committed_from"] == entry["container"]
    human = sh(alice, "container-deploy", "exp", "--cpu-only", "--background").stdout  # from the saved image
    assert "Deployed" in human


def test_retire_with_a_failing_commit_removes_nothing(
    ds01_home, engine_clean, base_image_ref, unix_users, docker_engine
):
    bob = unix_users["bob"]
    entry = deploy_json(bob, "keep", "--gpus", "1", "--image", base_image_ref)
    # Make the engine's image store refuse new images: the commit fails for real.
    imagedb = docker_engine.root / "data" / "image" / "overlay2" / "imagedb" / "content" / "sha256"
    subprocess.run(["chattr", "+i", str(imagedb)], check=True)
    try:
        result = run_as(bob, "container-retire", "keep", "--yes", "--save-changes")
    finally:
        subprocess.run(["chattr", "-i", str(imagedb)], check=True)
    assert result.returncode == 1 and "commit" in result.stderr
    [container] = ds01_containers(engine_clean, bob.uid)
    assert container.status == "running" and container.name == entry["container"]


HEAVY = ("docker", "yaml", "pynvml", "rich", "ds01.atomic", "ds01.config", "ds01.orchestrators", "ds01.gpu")


def heavy_imports(user, *argv: str) -> list[str]:
    result = run_as(user, "python", "-X", "importtime", str(BIN / argv[0]), *argv[1:])
    assert result.returncode == 0, result.stderr
    names = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line]
    return [n for n in names if n.split(".")[0] in HEAVY or n.startswith(HEAVY)]


def test_the_hot_path_imports_no_engine_yaml_gpu_or_rich(ds01_home, engine_clean, base_image_ref, unix_users):
    frank = unix_users["frank"]
    deploy = ("container-deploy", "hot", "--cpu-only", "--image", base_image_ref, "--background")
    assert heavy_imports(frank, *deploy) == []
    assert heavy_imports(frank, *deploy, "--json") == []
    assert heavy_imports(frank, "container-retire", "hot", "--yes") == []
    assert heavy_imports(frank, *deploy) == []
    assert heavy_imports(frank, "container-retire", "hot", "--yes", "--json") == []


def test_deploy_open_runs_a_shell_in_the_workspace_and_passes_its_exit_code(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    dave = unix_users["dave"]
    result = run_as(
        dave, "container-deploy", "shelly", "--cpu-only", "--image", base_image_ref, "--open",
        input="pwd; id -u; exit 7\n",
    )  # fmt: skip
    assert result.returncode == 7, result.stderr
    assert (
        "Deployed" in result.stdout and "/workspace" in result.stdout and f"\n{dave.uid}\n" in result.stdout
    )
    [c] = ds01_containers(engine_clean, dave.uid)
    assert c.status == "running"  # no terminal: not asked to retire, it stays
