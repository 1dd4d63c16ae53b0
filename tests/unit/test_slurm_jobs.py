"""What ds01d reads from `scontrol -o -d show job`, and how a user's own words in a job (its name, comment,
output paths: Slurm keeps spaces and newlines in them) are kept from posing as Slurm's fields."""

from __future__ import annotations

from typing import Any

import pytest

from ds01.atomic.slurm_jobs import expand_indices, parse_job, verify_job
from ds01.errors import PermissionDenied

RUNNING = (
    "JobId=42 JobName=ds01:exp UserId=alice(1001) GroupId=alice(1001) MCS_label=N/A Priority=1 Nice=0 "
    "Account=(null) QOS=(null) JobState=RUNNING Reason=None Dependency=(null) TimeLimit=1-00:00:00 "
    "NodeList=n1 BatchHost=n1 NumNodes=1 NumCPUs=8 TRES=cpu=8,mem=32G,node=1,billing=8,gres/gpu=2 "
    "JOB_GRES=gpu:2   Nodes=n1 CPU_IDs=0-7 Mem=32768 GRES=gpu:2(IDX:2-3) MinCPUsNode=1 Features=(null) "
    "Command=(null) WorkDir=/home/alice Comment=(null) StdErr=/home/alice/42.out StdOut=/home/alice/42.out"
)
PENDING = (
    "JobId=43 JobName=ds01:exp UserId=alice(1001) GroupId=alice(1001) JobState=PENDING Reason=Resources "
    "NodeList= NumNodes=1 TimeLimit=60 WorkDir=/home/alice StdOut=/home/alice/43.out"
)
FAKE = (
    "x\n     Nodes=n1 CPU_IDs=0 Mem=1 GRES=gpu:4(IDX:0-3)\n   JobState=RUNNING NodeList=n1 UserId=alice(1001)"
)


def test_a_running_job_is_read_with_its_owner_node_and_indices() -> None:
    job = parse_job(RUNNING)
    assert job is not None
    assert (job.job_id, job.name, job.uid, job.state) == ("42", "ds01:exp", 1001, "RUNNING")
    assert job.nodes == ("n1",) and job.gpus_on("n1") == (2, 3) and job.gpus_on("n2") == ()
    verify_job(job, uid=1001, node="n1", gpu_indices=[3, 2])


@pytest.mark.parametrize(
    "where",
    ["JobName=ds01:exp", "Comment=(null)", "StdOut=/home/alice/42.out", "WorkDir=/home/alice"],
)
def test_slurms_words_in_a_users_value_make_the_job_untrusted(where: str) -> None:
    key = where.split("=")[0]
    for text in (RUNNING, PENDING):
        if where not in text:
            continue
        job = parse_job(text.replace(where, f"{key}={FAKE}"))
        assert job is not None and job.state == "AMBIGUOUS"
        with pytest.raises(PermissionDenied, match="cannot trust"):
            verify_job(job, uid=1001, node="n1", gpu_indices=[0, 1, 2, 3])


def test_refusals_name_what_is_wrong() -> None:
    job = parse_job(RUNNING)
    assert job is not None
    cases = [
        ({"uid": 1002, "node": "n1", "gpu_indices": [2, 3]}, "is not yours"),
        ({"uid": 1001, "node": "n2", "gpu_indices": [2, 3]}, "not on n2"),
        ({"uid": 1001, "node": "n1", "gpu_indices": [2]}, "holds GPU indices 2,3, not 2"),
        ({"uid": 1001, "node": "n1", "gpu_indices": [2, 3, 3]}, "holds GPU indices"),
        ({"uid": 1001, "node": "n1", "gpu_indices": [0, 1]}, "holds GPU indices"),
    ]
    for kwargs, words in cases:
        with pytest.raises(PermissionDenied, match=words):
            verify_job(job, **kwargs)  # type: ignore[arg-type]
    pending = parse_job(PENDING)
    assert pending is not None
    with pytest.raises(PermissionDenied, match="is pending, not running"):
        verify_job(pending, uid=1001, node="n1", gpu_indices=[])


def test_index_lists() -> None:
    assert expand_indices("0-1,3") == (0, 1, 3) and expand_indices("2") == (2,)


def test_where_a_node_pulls_from_the_lab_registry() -> None:
    from types import SimpleNamespace

    from ds01.daemon.endpoints.cluster import registry_ref

    alice: Any = SimpleNamespace(name="alice", uid=1001)
    reg = "registry.lab.example:5000"
    assert registry_ref(reg, alice, "thesis", None) == f"{reg}/alice/thesis:latest"
    assert registry_ref(reg, alice, "thesis", "pytorch/pytorch:2.3") == f"{reg}/pytorch/pytorch:2.3"
    assert registry_ref(reg, alice, "thesis", "python:3.11") == f"{reg}/python:3.11"
    assert registry_ref(reg, alice, "thesis", "nvcr.io/nvidia/jax:24.04") == "nvcr.io/nvidia/jax:24.04"
    assert registry_ref(reg, alice, "thesis", "docker.io/library/busybox") == "docker.io/library/busybox"


def test_the_srun_into_a_job_overlaps_and_runs_the_ds01_command_there() -> None:
    from pathlib import Path

    from ds01.cluster.submit import srun_argv

    argv = srun_argv("42", "container-attach", "exp", pty=True)
    assert argv[:5] == ["srun", "--jobid=42", "--overlap", "--quiet", "--pty"]
    assert Path(argv[5]).name == "container-attach" and argv[6:] == ["exp"]
    assert "--pty" not in srun_argv("42", "container-ssh", "exp", pty=False)
