"""`project-launch NAME --gpus N` through Slurm, and the way into a container that runs on another node
(`container-attach` through the owner's `srun --jobid ID --overlap`): Slurm lets only the job's owner in,
and the node's ds01d judges the caller again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from harness import slurm
from harness.users import ok, run_as

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDs0s8bq9gGqk6q4y1PZKv0zW9n1o3lS2o7XK6TqfE1m alice@laptop\n"
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]


def srun_as(cluster: slurm.Cluster, user: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """The user's own srun (not through ds01) against the test cluster."""
    cmd = ["runuser", "-u", user, "--", "env", f"SLURM_CONF={cluster.conf}", f"PATH={os.environ['PATH']}",
           "srun", *argv]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/tmp")


def test_project_launch_through_slurm_and_attach_from_another_node(
    slurm_cluster: slurm.Cluster, slurm_world: Any, unix_users: Any, base_image_ref: str, engine_clean: Any
) -> None:
    alice, bob = unix_users["alice"], unix_users["bob"]
    engine_clean.images.get(base_image_ref).tag(f"ds01-{alice.uid}/exp", "latest")  # the project's image
    launched = json.loads(
        ok(run_as(alice, "project-launch", "exp", "--gpus", "2", "--background", "--json",
                  env=slurm_cluster.env, timeout=300)).stdout
    )  # fmt: skip
    [job] = slurm_cluster.jobs(alice.name)
    assert job["name"] == "ds01:exp" and job["state"] == "RUNNING", job
    assert launched["slurm_job"] == job["id"] and launched["status"] == "running"
    assert launched["image_built"] is False
    idx = slurm.job_gpu_indices(slurm_cluster.job(job["id"]))
    assert len(idx) == 2 and sorted(int(g["slot"]) for g in launched["gpus"]) == sorted(idx)
    container = launched["container"]
    config = engine_clean.api.inspect_container(container)["Config"]
    assert (
        config["Labels"]["ds01.slurm_job"] == job["id"] and config["Image"] == f"ds01-{alice.uid}/exp:latest"
    )

    # this ds01d now stands for another host (a login node): the job's node is not this one, so the
    # owner's container-attach goes through `srun --jobid ID --overlap` to the job's node
    sections = slurm_world.slurm_sections
    slurm_world.reconfigure(**{**sections, "cluster": {**sections["cluster"], "node_name": "ds01-login"}})
    attached = run_as(alice, "container-attach", "exp", input="id -u; pwd; exit 7\n", env=slurm_cluster.env)
    assert attached.returncode == 7, attached.stderr
    assert f"joining Slurm job {job['id']}" in attached.stderr, attached.stderr
    assert attached.stdout.split() == [str(alice.uid), "/workspace"], attached.stdout

    # container-ssh (what a laptop's `ssh exp.ds01` runs) goes the same way, speaking SSH on the job's node
    ssh_dir = alice.home / ".ssh"
    ssh_dir.mkdir(exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(KEY)
    for p in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(p, alice.uid, alice.gid)
    try:
        sshed = run_as(alice, "container-ssh", "exp", input="", env=slurm_cluster.env)
    finally:
        shutil.rmtree(ssh_dir)
    assert f"joining Slurm job {job['id']}" in sshed.stderr, sshed.stderr
    assert "has no OpenSSH server" in sshed.stderr  # the node's ds01d answered (busybox has no sshd)

    # another user: Slurm itself refuses bob a step in alice's job ...
    refused = srun_as(slurm_cluster, bob.name, f"--jobid={job['id']}", "--overlap", "true")
    assert refused.returncode != 0 and "denied" in refused.stderr.lower(), refused.stderr
    # ... and ds01d refuses bob's container-attach of alice's container (no srun for a job not his)
    theirs = run_as(bob, "container-attach", container, input="id -u\n", env=slurm_cluster.env)
    assert theirs.returncode == 5, (theirs.returncode, theirs.stderr)
    assert "joining" not in theirs.stderr and str(alice.uid) not in theirs.stdout
    # nothing changed: alice's container runs, in its job, with its GPUs
    state = engine_clean.api.inspect_container(container)["State"]
    assert state["Running"] and [j["state"] for j in slurm_cluster.jobs(alice.name)] == ["RUNNING"]
