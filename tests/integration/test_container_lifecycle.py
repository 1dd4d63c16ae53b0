"""A real user's container from create to remove, as a client of ds01d, on the private engine."""

from __future__ import annotations

import json
import os

import pytest

from ds01.events import read_events
from harness.users import ok, run_as

pytestmark = pytest.mark.docker


def listed(user, name):
    entries = json.loads(ok(run_as(user, "container-list", "--json")).stdout)
    return next((e for e in entries if e["name"] == name), None)


def test_create_uses_the_project_image_and_applies_labels_limits_and_safety(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    alice = unix_users["alice"]
    engine_clean.api.tag(base_image_ref, f"ds01-{alice.uid}/thesis", "latest")
    entry = json.loads(ok(run_as(alice, "container-create", "thesis", "--json")).stdout)
    workspace = ds01_home / "ws" / alice.name / "thesis"
    assert entry == {
        "name": "thesis", "container": f"thesis._.{alice.uid}", "user": alice.name, "uid": alice.uid,
        "status": "created", "image": f"ds01-{alice.uid}/thesis:latest", "gpus": [],
        "created_at": entry["created_at"], "workspace": str(workspace),
    }  # fmt: skip
    assert workspace.is_dir() and workspace.stat().st_uid == alice.uid
    raw = engine_clean.api.inspect_container(f"thesis._.{alice.uid}")
    hc, cfg = raw["HostConfig"], raw["Config"]
    assert hc["Init"] is True and hc["Privileged"] is False and not hc["CapAdd"]
    assert "no-new-privileges" in hc["SecurityOpt"]
    assert hc["NanoCpus"] == min(8, os.cpu_count() or 1) * 10**9
    assert hc["Memory"] == 32 * 1024**3 and hc["ShmSize"] == 8 * 1024**3 and hc["PidsLimit"] == 4096
    assert hc["NetworkMode"] == "none" and not hc.get("Binds")
    # the engine binds ds01d's own staging folder; the workspace is pinned onto it at each start
    (mount,) = hc["Mounts"]
    staging = ds01_home / "state" / "mounts" / f"thesis._.{alice.uid}" / "workspace"
    assert (mount["Type"], mount["Source"], mount["Target"]) == ("bind", str(staging), "/workspace")
    assert not mount.get("ReadOnly") and staging.stat().st_uid == 0 and os.listdir(staging) == []
    assert cfg["User"] == f"{alice.uid}:{alice.gid}" and cfg["WorkingDir"] == "/workspace"
    assert cfg["Hostname"] == "thesis" and cfg["Cmd"] == ["sleep", "infinity"]
    labels = cfg["Labels"]
    assert labels["ds01.managed"] == "true" and labels["ds01.uid"] == str(alice.uid)
    assert labels["ds01.user"] == alice.name and labels["ds01.project"] == "thesis"
    assert labels["ds01.interface"] == "atomic" and labels["ds01.workspace"] == str(workspace)
    assert labels["ds01.created_at"].endswith("Z")
    assert (labels["ds01.gpu.slots"], labels["ds01.gpu.uuids"], labels["ds01.gpu.gpueq"]) == ("", "", "")
    assert "NVIDIA_VISIBLE_DEVICES=void" in cfg["Env"]


def test_missing_project_image_says_how_to_make_one(ds01_home, engine_clean, unix_users):
    result = run_as(unix_users["alice"], "container-create", "nothing-built")
    assert result.returncode == 3
    assert "image-create nothing-built" in result.stderr and "--image" in result.stderr


def test_dry_run_prints_docker_create_and_changes_nothing(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    alice = unix_users["alice"]
    result = ok(run_as(alice, "container-create", "dry", "--image", base_image_ref, "--dry-run"))
    line = result.stdout.strip()
    assert line.startswith("docker create --name dry._.") and line.endswith(
        f"{base_image_ref} sleep infinity"
    )
    assert f"--user {alice.uid}:{alice.gid}" in line and "--init" in line
    assert engine_clean.api.containers(all=True) == []
    assert not (ds01_home / "ws" / alice.name / "dry").exists()


def test_full_lifecycle_run_pause_stats_stop_remove_and_the_workspace_stays(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    alice = unix_users["alice"]
    ok(run_as(alice, "container-create", "thesis", "--image", base_image_ref))
    assert "started" in ok(run_as(alice, "container-start", "thesis")).stdout
    assert listed(alice, "thesis")["status"] == "running"
    staging = ds01_home / "state" / "mounts" / f"thesis._.{alice.uid}"
    assert os.listdir(staging / "workspace") == []  # pinned for the start only, then detached
    pid = engine_clean.api.inspect_container(f"thesis._.{alice.uid}")["State"]["Pid"]
    seen, real = os.stat(f"/proc/{pid}/root/workspace"), (ds01_home / "ws" / alice.name / "thesis").stat()
    assert (seen.st_dev, seen.st_ino) == (real.st_dev, real.st_ino)  # what ds01d verifies after a start

    result = run_as(alice, "container-run", "thesis", "--", "sh", "-c",
                    "id -u; pwd; echo kept > /workspace/note; exit 7")  # fmt: skip
    assert result.returncode == 7 and result.stdout.split() == [str(alice.uid), "/workspace"]
    piped = run_as(alice, "container-run", "thesis", "--", "cat", input="through stdin\n")
    assert piped.returncode == 0 and piped.stdout == "through stdin\n"

    ok(run_as(alice, "container-pause", "thesis"))
    assert listed(alice, "thesis")["status"] == "paused"
    ok(run_as(alice, "container-unpause", "thesis"))

    (row,) = json.loads(ok(run_as(alice, "container-stats", "--json")).stdout)
    assert row["name"] == "thesis" and row["status"] == "running"
    assert row["cpu_percent"] is not None and row["memory_used"] > 0 and row["pids"] >= 1

    busy = run_as(alice, "container-remove", "thesis")
    assert busy.returncode == 1 and "--force" in busy.stderr
    stopped = ok(run_as(alice, "container-stop", "thesis"))
    assert "stopped" in stopped.stdout and "container-start thesis" in stopped.stderr
    assert listed(alice, "thesis")["status"] == "exited"
    ok(run_as(alice, "container-remove", "thesis"))
    assert listed(alice, "thesis") is None
    assert not staging.exists()

    note = ds01_home / "ws" / alice.name / "thesis" / "note"
    assert note.read_text() == "kept\n" and note.stat().st_uid == alice.uid
    kinds = [
        e["event_type"] for e in read_events(ds01_home / "log") if e["container"] == f"thesis._.{alice.uid}"
    ]
    assert kinds == ["create", "start", "pause", "unpause", "stop", "remove"]
    assert all(e["user"] == alice.name for e in read_events(ds01_home / "log"))


def test_command_logs_and_remove_force(ds01_home, engine_clean, unix_users, base_image_ref):
    alice = unix_users["alice"]
    ok(run_as(alice, "container-create", "talker", "--image", base_image_ref,
              "--command", "sh -c 'echo one; echo two; echo three'"))  # fmt: skip
    ok(run_as(alice, "container-start", "talker"))
    engine_clean.api.wait(f"talker._.{alice.uid}", timeout=20)
    assert ok(run_as(alice, "container-logs", "talker")).stdout == "one\ntwo\nthree\n"
    assert ok(run_as(alice, "container-logs", "talker", "--tail", "1")).stdout == "three\n"

    ok(run_as(alice, "container-create", "busy", "--image", base_image_ref))
    ok(run_as(alice, "container-start", "busy"))
    ok(run_as(alice, "container-remove", "busy", "--force"))
    assert listed(alice, "busy") is None


def test_missing_container_exits_3(ds01_home, engine_clean, unix_users):
    for verb in (
        "container-start",
        "container-stop",
        "container-remove",
        "container-logs",
        "container-attach",
    ):
        result = run_as(unix_users["alice"], verb, "ghost")
        assert result.returncode == 3 and "ghost" in result.stderr, verb
