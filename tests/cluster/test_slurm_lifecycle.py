"""Cluster mode over time: a job at its Slurm time limit stops its container (workspace intact); the node's
four GPUs taken by four deploys, a fifth pends with Slurm's reason and runs once one is retired."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from typing import Any

import pytest

from harness import slurm
from harness.users import ok, run_as

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]


def deploy(user: Any, cluster: slurm.Cluster, name: str, image: str, *args: str) -> Any:
    return slurm.deploy(user, cluster.env, name, "--gpus", "1", "--image", image, *args)


def test_time_limit_stops_the_container_and_keeps_the_workspace(
    slurm_cluster: slurm.Cluster, slurm_world: Any, unix_users: Any, base_image_ref: str, engine_clean: Any
) -> None:
    alice = unix_users["alice"]
    sections = slurm_world.slurm_sections
    overrides = {**sections["user_overrides"], alice.name: {**sections["user_overrides"][alice.name],
                                                             "max_runtime_h": 1 / 60}}  # fmt: skip
    slurm_world.reconfigure(**{**sections, "user_overrides": overrides})  # --time=1: Slurm's smallest
    entry = json.loads(ok(deploy(alice, slurm_cluster, "exp", base_image_ref)).stdout)
    job_id = entry["slurm_job"]
    assert slurm_cluster.job(job_id)["TimeLimit"] == "00:01:00"
    keep = slurm_world / "ws" / alice.name / "exp" / "results.txt"
    subprocess.run(["runuser", "-u", alice.name, "--", "sh", "-c", f"echo epoch-1 > {keep}"], check=True)
    started = time.monotonic()
    job = slurm_cluster.wait_state(job_id, {"TIMEOUT"}, timeout=150)
    state = engine_clean.api.inspect_container(entry["container"])["State"]
    deadline = time.monotonic() + 30
    while state["Running"] and time.monotonic() < deadline:
        time.sleep(0.3)
        state = engine_clean.api.inspect_container(entry["container"])["State"]
    print(f"\ntime limit reached, container stopped {time.monotonic() - started:.0f} s after the deploy")
    assert job["JobState"] == "TIMEOUT"
    assert not state["Running"]  # stopped, not removed: the workspace and the container stay
    assert keep.read_text() == "epoch-1\n"
    listed = json.loads(ok(run_as(alice, "container-list", "--json")).stdout)
    assert [(c["name"], c["status"]) for c in listed] == [("exp", "exited")]
    # a new deploy is a new job: the stopped container is replaced, the workspace file is still there
    again = json.loads(ok(deploy(alice, slurm_cluster, "exp", base_image_ref)).stdout)
    assert again["slurm_job"] != job_id and again["status"] == "running"
    assert keep.read_text() == "epoch-1\n"


def test_a_fifth_deploy_pends_with_slurms_reason_and_runs_after_a_retire(
    slurm_cluster: slurm.Cluster, slurm_world: Any, unix_users: Any, base_image_ref: str, engine_clean: Any
) -> None:
    four = [unix_users[n] for n in ("alice", "bob", "carol", "dave")]
    entries = {u.name: json.loads(ok(deploy(u, slurm_cluster, "exp", base_image_ref)).stdout) for u in four}
    slots = {u: e["gpus"][0]["slot"] for u, e in entries.items()}
    assert sorted(slots.values()) == ["0", "1", "2", "3"]
    # without --wait: Slurm cannot start it now, so the deploy fails like one without a free GPU (exit 4)
    frank = unix_users["frank"]
    refused = deploy(frank, slurm_cluster, "exp", base_image_ref)
    assert refused.returncode == 4, refused.stderr
    assert "Resources" in refused.stderr and "cancelled" in refused.stderr
    assert slurm_cluster.jobs(frank.name) == []
    # with --wait: the wait is Slurm's pending state
    erin = unix_users["erin"]
    result: dict[str, Any] = {}
    waiting = threading.Thread(
        target=lambda: result.update(r=deploy(erin, slurm_cluster, "exp", base_image_ref, "--wait"))
    )
    waiting.start()
    deadline = time.monotonic() + 30
    while not slurm_cluster.jobs(erin.name) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # the scheduler has looked at it
    [pending] = slurm_cluster.jobs(erin.name)
    assert pending["state"] == "PENDING" and pending["reason"] == "Resources", pending
    queue = json.loads(ok(run_as(erin, "ds01", "queue", "--json")).stdout)["slurm_jobs"]
    assert [(j["job_id"], j["state"], j["reason"]) for j in queue] == [
        (pending["id"], "PENDING", "Resources")
    ]
    listed = json.loads(ok(run_as(erin, "container-list", "--json")).stdout)
    assert [(c["name"], c["status"], c["slurm"]["reason"]) for c in listed] == [
        ("exp", "pending", "Resources")
    ]
    table = ok(run_as(erin, "container-list")).stdout
    assert f"{pending['id']} pending (Resources)" in table, table
    running = json.loads(ok(run_as(four[0], "container-list", "--json")).stdout)
    assert running[0]["slurm"]["state"] == "RUNNING" and running[0]["slurm"]["node"] == slurm_cluster.node
    assert waiting.is_alive()
    ok(run_as(four[1], "container-retire", "exp", "--yes", "--json", env=slurm_cluster.env))
    waiting.join(timeout=120)
    assert not waiting.is_alive()
    erin_entry = json.loads(ok(result["r"]).stdout)
    assert erin_entry["slurm_job"] == pending["id"] and erin_entry["status"] == "running"
    assert erin_entry["gpus"][0]["slot"] == slots[four[1].name]  # bob's GPU, freed in Slurm and in ds01
    job = slurm_cluster.job(pending["id"])
    assert slurm.job_gpu_indices(job) == [int(slots[four[1].name])]
    # all four busy again: --timeout gives up (exit 4, job gone); --detach leaves the job to Slurm, and its
    # step makes the container when Slurm runs it, with no client waiting
    gave_up = deploy(frank, slurm_cluster, "exp", base_image_ref, "--wait", "--timeout", "3s")
    assert gave_up.returncode == 4 and "gave up waiting" in gave_up.stderr, gave_up.stderr
    assert slurm_cluster.jobs(frank.name) == []
    detached = json.loads(
        ok(deploy(frank, slurm_cluster, "exp", base_image_ref, "--wait", "--detach")).stdout
    )
    assert detached["action"] == "queued"
    assert [j["state"] for j in slurm_cluster.jobs(frank.name)] == ["PENDING"]
    ok(run_as(four[0], "container-retire", "exp", "--yes", "--json", env=slurm_cluster.env))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = engine_clean.api.containers(filters={"label": f"ds01.slurm_job={detached['slurm_job']}"})
        if found:
            break
        time.sleep(0.3)
    assert found and found[0]["State"] == "running"


def test_a_reaper_stop_cancels_the_job(
    slurm_cluster: slurm.Cluster, slurm_world: Any, unix_users: Any, base_image_ref: str, engine_clean: Any
) -> None:
    """ds01's own rules still apply on a node: a runtime stop by the reaper cancels the job at once, so
    Slurm sees the GPU free (and the step's end does not wait for the next poll)."""
    from datetime import UTC, datetime, timedelta

    from harness.users import bin_dir

    alice = unix_users["alice"]
    entry = json.loads(ok(deploy(alice, slurm_cluster, "exp", base_image_ref)).stdout)
    job_id = entry["slurm_job"]
    for hours in (30, 31):  # past max_runtime_h (24): the final warning first, then the stop
        later = (datetime.now(UTC) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        done = subprocess.run(
            [str(bin_dir() / "ds01-reaper"), "--once", "--json", "--now", later],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert not engine_clean.api.inspect_container(entry["container"])["State"]["Running"], done.stdout[-3000:]
    events = [json.loads(line) for line in (slurm_world / "log" / "events.jsonl").read_text().splitlines()]
    cancels = [e for e in events if e["event_type"] == "slurm-cancel"]
    assert [(e["details"]["job"], e["details"]["reason"]) for e in cancels] == [(job_id, "runtime_stop")], (
        cancels
    )
    state = slurm_cluster.wait_state(job_id, {"CANCELLED", "COMPLETED"}, timeout=30)["JobState"]
    assert state == "CANCELLED"
