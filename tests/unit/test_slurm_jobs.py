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


def test_typed_gres_details_are_read_with_their_types() -> None:
    from ds01.atomic.slurm_jobs import parse_gres

    assert parse_gres("gpu:3g.40gb:1(IDX:4)") == ((4,), ("3g.40gb",))
    assert parse_gres("gpu:2(IDX:2-3)") == ((2, 3), (None,))
    # an untyped request on a node of typed gres: one entry per type, the empty ones hold nothing
    assert parse_gres("gpu:a100:1(IDX:0),gpu:1g.10gb:0(IDX:),gpu:3g.40gb:0(IDX:)") == ((0,), ("a100",))
    for bad in ("gpu:3g.40gb:2(IDX:4)", "gpu:1(IDX:0) gpu:1(IDX:1)", "gpu:1(IDX:0),x", ""):
        assert parse_gres(bad) == ((), ())


def test_a_mig_job_must_hold_exactly_the_profile_it_claims() -> None:
    job = parse_job(RUNNING.replace("GRES=gpu:2(IDX:2-3)", "GRES=gpu:3g.40gb:1(IDX:4)"))
    assert job is not None and job.gpu_types == ("3g.40gb",)
    verify_job(job, uid=1001, node="n1", gpu_indices=[4], mig_profile="3g.40gb")
    with pytest.raises(PermissionDenied, match=r"not MIG 1g\.10gb"):
        verify_job(job, uid=1001, node="n1", gpu_indices=[4], mig_profile="1g.10gb")
    with pytest.raises(PermissionDenied, match="not whole GPUs"):
        verify_job(job, uid=1001, node="n1", gpu_indices=[4])
    with pytest.raises(PermissionDenied, match="holds GPU indices"):
        verify_job(job, uid=1001, node="n1", gpu_indices=[5], mig_profile="3g.40gb")
    whole = parse_job(RUNNING)
    assert whole is not None
    with pytest.raises(PermissionDenied, match=r"not MIG 3g\.40gb"):
        verify_job(whole, uid=1001, node="n1", gpu_indices=[2, 3], mig_profile="3g.40gb")


def _slot(slot_id: str, profile: str | None) -> Any:
    from ds01.gpu.model import Slot

    kind = "mig" if profile else "gpu"
    return Slot(slot_id, f"U-{slot_id}", kind, int(slot_id.split(".")[0]), "A100", profile, 1.0, 1, None, 0)


def test_gres_indices_follow_slurms_records_one_per_type_in_order_of_appearance() -> None:
    from ds01.atomic import slurm_jobs

    slots = [_slot("0", None), _slot("1.0", "1g.10gb"), _slot("1.1", "3g.40gb"), _slot("1.2", "3g.40gb"),
             _slot("2.0", "3g.40gb"), _slot("2.1", "2g.20gb"), _slot("2.2", "1g.10gb")]  # fmt: skip
    order = [s.id for s in slurm_jobs.gres_order(slots)]
    assert order == ["0", "1.0", "2.2", "1.1", "1.2", "2.0", "2.1"]
    whole = [_slot(str(i), None) for i in range(4)]
    assert [s.id for s in slurm_jobs.gres_order(whole)] == ["0", "1", "2", "3"]


def test_a_node_whose_gres_records_do_not_match_its_slots_is_refused(monkeypatch: Any) -> None:
    import subprocess

    from ds01.atomic import slurm_jobs
    from ds01.errors import OperationFailed

    slots = [_slot("0", None), _slot("1.0", "1g.10gb"), _slot("1.1", "3g.40gb"), _slot("1.2", "3g.40gb")]
    answer = {"text": "NodeName=n1 Gres=gpu:a100:1(S:0),gpu:1g.10gb:1,gpu:3g.40gb:2 State=IDLE"}

    def scontrol(argv: list[str]) -> subprocess.CompletedProcess[str]:
        assert argv[:4] == ["scontrol", "-o", "show", "node"]
        return subprocess.CompletedProcess(argv, 0, answer["text"], "")

    monkeypatch.setattr(slurm_jobs, "_run", scontrol)
    slurm_jobs.check_node_gres("n1", slots)
    wrongs = ("Gres=gpu:4", "Gres=gpu:a100:1,gpu:3g.40gb:2,gpu:1g.10gb:1", "Gres=gpu:a100:1,gpu:3g.40gb:3",
              "Gres=(null)")  # fmt: skip
    for wrong in wrongs:
        answer["text"] = f"NodeName=n1 {wrong} State=IDLE"
        with pytest.raises(OperationFailed, match="do not match"):
            slurm_jobs.check_node_gres("n1", slots)


def test_a_retire_asks_slurm_for_the_callers_job_elsewhere_and_goes_on_here_without_it(
    monkeypatch: Any,
) -> None:
    """POST /retire in cluster mode: the caller's running job of NAME on another node is named; a job on
    this node, another project's, a pending one, or a Slurm that cannot be asked: the retire goes on here."""
    import subprocess
    from types import SimpleNamespace

    from ds01.atomic import slurm_jobs
    from ds01.daemon.endpoints.orchestration import _job_elsewhere
    from ds01.errors import OperationFailed

    ctx: Any = SimpleNamespace(
        user=SimpleNamespace(name="alice"),
        config=SimpleNamespace(cluster=SimpleNamespace(this_node=lambda: "login")),
    )
    lines = {"text": "42|ds01:exp|alice|RUNNING|None|n1|gres:gpu:1\n"}

    def squeue(argv: list[str]) -> subprocess.CompletedProcess[str]:
        assert argv[0] == "squeue" and argv[-2:] == ["-u", "alice"]
        return subprocess.CompletedProcess(argv, 0, lines["text"], "")

    monkeypatch.setattr(slurm_jobs, "_run", squeue)
    assert _job_elsewhere(ctx, "exp") == {"job_id": "42", "node": "n1"}
    assert _job_elsewhere(ctx, "exp._.1001") == {"job_id": "42", "node": "n1"}
    assert _job_elsewhere(ctx, "other") is None
    here, pending = "42|ds01:exp|alice|RUNNING|None|login|gpu:1\n", "42|ds01:exp|alice|PENDING|Resources||\n"
    for text in (here, pending, "42|exp|alice|RUNNING|None|n1|gres:gpu:1\n"):
        lines["text"] = text
        assert _job_elsewhere(ctx, "exp") is None, text

    def down(argv: list[str]) -> subprocess.CompletedProcess[str]:
        raise OperationFailed("squeue did not answer within 20 s", hint="is slurmctld up?")

    monkeypatch.setattr(slurm_jobs, "_run", down)
    assert _job_elsewhere(ctx, "exp") is None
