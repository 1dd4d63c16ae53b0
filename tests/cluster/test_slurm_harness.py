"""The test cluster itself: node ds01-n1 with GPUs 0-3 as a gres, ds01-n2 down, jobs get their GPU IDX."""

from __future__ import annotations

import pytest

from harness import slurm

pytestmark = [pytest.mark.slow]


def test_the_node_has_four_gpus_and_jobs_get_their_indices(slurm_cluster: slurm.Cluster) -> None:
    print(f"\nSlurm cluster up in {slurm_cluster.startup_s:.2f} s")
    states = slurm_cluster.run("sinfo", "-h", "-N", "-o", "%N %t %G").stdout.split("\n")
    assert f"{slurm.NODE} idle gpu:4" in states and f"{slurm.DOWN_NODE} down gpu:4" in [
        s.replace("down*", "down") for s in states
    ], states
    first = slurm.sbatch_as(slurm_cluster, "root", "--gres=gpu:3")
    second = slurm.sbatch_as(slurm_cluster, "root", "--gres=gpu:1")
    a = slurm.job_gpu_indices(slurm_cluster.wait_state(first, {"RUNNING"}))
    b = slurm.job_gpu_indices(slurm_cluster.wait_state(second, {"RUNNING"}))
    assert sorted(a + b) == [0, 1, 2, 3]
    third = slurm.sbatch_as(slurm_cluster, "root", "--gres=gpu:1")
    assert slurm_cluster.wait_state(third, {"PENDING"})["JobState"] == "PENDING"
    with pytest.raises(RuntimeError, match="already runs a test Slurm cluster"):
        slurm.start_cluster()
    slurm_cluster.cancel_all()
    assert slurm_cluster.jobs() == []
