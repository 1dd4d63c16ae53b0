"""A real user's GPU deploy through Slurm: the client submits the job as the user, the job's step asks the
node's ds01d, which runs the container with exactly the GPUs of the job's IDX; retire cancels the job."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from harness import slurm
from harness.users import ok, run_as

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]


def deploy(user: Any, cluster: slurm.Cluster, name: str, *args: str) -> Any:
    return slurm.deploy(user, cluster.env, name, *args)


def gpu_status(user: Any) -> dict[str, Any]:
    return dict(json.loads(ok(run_as(user, "gpu-status", "--json")).stdout))


def test_deploy_through_slurm_gets_the_jobs_gpus(
    slurm_cluster: slurm.Cluster, slurm_world: Any, unix_users: Any, base_image_ref: str, engine_clean: Any
) -> None:
    alice = unix_users["alice"]
    t0 = time.monotonic()
    entry = json.loads(
        ok(deploy(alice, slurm_cluster, "exp", "--gpus", "2", "--image", base_image_ref)).stdout
    )
    took = time.monotonic() - t0
    jobs = slurm_cluster.jobs(alice.name)
    assert [j["name"] for j in jobs] == ["ds01:exp"] and jobs[0]["state"] == "RUNNING", jobs
    job = slurm_cluster.job(jobs[0]["id"])
    idx = slurm.job_gpu_indices(job)
    assert len(idx) == 2 and job["NodeList"] == slurm_cluster.node
    assert entry["slurm_job"] == jobs[0]["id"]
    # the container holds exactly the UUIDs of the job's IDX (the probe's UUIDs of those indices)
    status = gpu_status(alice)
    uuid_of = {s["gpu_index"]: s["uuid"] for s in status["slots"] if s["kind"] == "gpu"}
    want = sorted(uuid_of[i] for i in idx)
    inspect = engine_clean.api.inspect_container(entry["container"])
    requests = inspect["HostConfig"].get("DeviceRequests") or []
    assert sorted(d for r in requests for d in r.get("DeviceIDs") or []) == want
    assert sorted(inspect["Config"]["Labels"]["ds01.gpu.uuids"].split(",")) == want
    assert inspect["Config"]["Labels"]["ds01.slurm_job"] == jobs[0]["id"]
    # gpu-status and squeue agree: the job's GPUs are held by alice's exp, the others free
    held = {s["gpu_index"] for s in status["slots"] if s["holder"]}
    assert held == set(idx)
    assert all(s["holder"]["container"] == "exp" for s in status["slots"] if s["holder"])
    # ds01 queue shows the job from Slurm
    queue = json.loads(ok(run_as(alice, "ds01", "queue", "--json")).stdout)["slurm_jobs"]
    assert [(j["job_id"], j["state"], j["node"]) for j in queue] == [
        (jobs[0]["id"], "RUNNING", slurm_cluster.node)
    ]
    # retire: the job is gone from Slurm, the slots free in both
    ok(run_as(alice, "container-retire", "exp", "--yes", "--json", env=slurm_cluster.env))
    deadline = time.monotonic() + 30
    while slurm_cluster.jobs(alice.name) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert slurm_cluster.jobs(alice.name) == []
    assert slurm_cluster.job(jobs[0]["id"]).get("JobState") in ("CANCELLED", "COMPLETED", None)
    assert not any(s["holder"] for s in gpu_status(alice)["slots"])
    alloc = slurm_cluster.run("sinfo", "-h", "-n", slurm_cluster.node, "-O", "GresUsed:40").stdout
    assert "gpu:0" in alloc, alloc
    assert engine_clean.api.containers(all=True, filters={"name": entry["container"]}) == []

    # the same deploy on a server without Slurm, for the submit-to-running comparison
    slurm_world.reconfigure(**{**slurm_world.slurm_sections, "cluster": {"backend": "none"}})
    t0 = time.monotonic()
    ok(deploy(alice, slurm_cluster, "plain", "--gpus", "2", "--image", base_image_ref))
    plain = time.monotonic() - t0
    print(f"\nsubmit-to-running: through Slurm {took:.2f} s (Slurm: submitted {job['SubmitTime'][11:]}, "
          f"started {job['StartTime'][11:]}), plain deploy {plain:.2f} s")  # fmt: skip


def test_a_mig_deploy_gets_exactly_the_slot_of_the_jobs_index(
    slurm_mig: slurm.Cluster, slurm_world: Any, unix_users: Any, base_image_ref: str, engine_clean: Any
) -> None:
    """`--mig-profile 3g.40gb` through Slurm: a typed gres job; the container holds exactly the MIG slot
    behind the job's IDX (Slurm's device file of that index is ds01's slot of that position)."""
    alice, bob = unix_users["alice"], unix_users["bob"]
    slots = [s for s in gpu_status(alice)["slots"]]
    files = slurm.gres_files(slurm_mig)
    assert len(files) == len(slots) == 8
    got = []
    for user, name in ((alice, "mig-a"), (bob, "mig-b")):
        entry = json.loads(
            ok(deploy(user, slurm_mig, name, "--mig-profile", "3g.40gb", "--image", base_image_ref)).stdout
        )
        [job] = [j for j in slurm_mig.jobs(user.name) if j["name"] == f"ds01:{name}"]
        detail = slurm_mig.job(job["id"])
        assert detail["GRES"].startswith("gpu:3g.40gb:1(IDX:"), detail["GRES"]
        [idx] = slurm.job_gpu_indices(detail)
        slot = slots[files[idx]]  # the slot Slurm's device of that index stands for
        assert slot["profile"] == "3g.40gb" and slot["kind"] == "mig"
        inspect = engine_clean.api.inspect_container(entry["container"])
        requests = inspect["HostConfig"].get("DeviceRequests") or []
        assert [d for r in requests for d in r.get("DeviceIDs") or []] == [slot["uuid"]]
        assert inspect["Config"]["Labels"]["ds01.gpu.uuids"] == slot["uuid"]
        got.append(slot["id"])
    assert len(set(got)) == 2
    held = {s["id"]: s["holder"]["container"] for s in gpu_status(alice)["slots"] if s["holder"]}
    assert held == dict(zip(got, ["mig-a", "mig-b"], strict=True))
    # a MIG profile the node has none of: Slurm cannot run the job, nothing is created
    refused = deploy(alice, slurm_mig, "mig-c", "--mig-profile", "7g.80gb", "--image", base_image_ref)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert [j["name"] for j in slurm_mig.jobs(alice.name)] == ["ds01:mig-a"]
    # retire: the job goes, the slot is free
    ok(run_as(alice, "container-retire", "mig-a", "--yes", env=slurm_mig.env))
    deadline = time.monotonic() + 30
    while slurm_mig.jobs(alice.name) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert slurm_mig.jobs(alice.name) == []
    assert {s["id"] for s in gpu_status(alice)["slots"] if s["holder"]} == {got[1]}


def test_a_bad_mig_profile_is_refused_with_one_line(
    slurm_cluster: slurm.Cluster, slurm_world: Any, unix_users: Any, base_image_ref: str, engine_clean: Any
) -> None:
    alice = unix_users["alice"]
    refused = deploy(alice, slurm_cluster, "mig", "--mig-profile", "3g.40gb:9", "--image", base_image_ref)
    assert refused.returncode == 2, refused.stderr
    assert "is not a MIG profile name" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert json.loads(refused.stdout)["error"]["code"] == "usage"
    assert slurm_cluster.jobs(alice.name) == []
    assert engine_clean.api.containers(all=True) == []
