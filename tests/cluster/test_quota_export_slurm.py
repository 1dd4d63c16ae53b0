"""`ds01 admin export-quotas --to slurm --apply` against a real slurmdbd: the exported GrpTRES holds.

alice (student, max_gpu_equivalents 1) gets one GPU job running and the second pends with Slurm's reason
AssocGrpGRES; bob (researcher, 2) runs two at once: the limit is per user, as in ds01."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def groups(alice: str, bob: str) -> dict[str, object]:
    common = {"allow_full_gpu": True, "max_cpus": 4, "memory": "4g", "memory_swap": "4g", "shm_size": "1g"}
    return {
        "student": {**common, "max_gpu_equivalents": 1.0, "max_gpu_slots_per_container": 1,
                    "max_containers_per_user": 3, "max_runtime_h": 24, "priority": 10, "members": [alice]},
        "researcher": {**common, "max_gpu_equivalents": 2.0, "max_gpu_slots_per_container": 2,
                       "max_containers_per_user": 5, "max_runtime_h": 48, "priority": 50, "members": [bob]},
    }  # fmt: skip


def export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ds01"), "admin", "export-quotas", "--to", "slurm", *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def submit(cluster, user: str, gpus: int) -> str:
    done = subprocess.run(
        ["runuser", "-u", user, "--", "env", f"SLURM_CONF={cluster.conf}", "sbatch", "--parsable",
         f"--gres=gpu:{gpus}", "-c", "1", "--mem=100", "-o", "/dev/null", "--wrap", "sleep 300"],
        capture_output=True, text=True, timeout=30, cwd="/tmp",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def state(cluster, job_id: str) -> tuple[str, str]:
    out = cluster.run("squeue", "-h", "-j", job_id, "-o", "%T|%r").stdout.strip()
    status, _, reason = out.partition("|")
    return status, reason


def wait_for(cluster, job_id: str, want: tuple[str, str], timeout: float = 60) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    seen = state(cluster, job_id)
    while seen != want and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = state(cluster, job_id)
    return seen


def association(cluster, user: str) -> dict[str, str]:
    keys = ("account", "user", "grptres", "maxtresperjob", "maxwall", "maxjobs", "priority")
    out = cluster.run(
        "sacctmgr", "-n", "-P", "show", "assoc", "where", f"user={user}", f"format={','.join(keys)}"
    ).stdout
    rows = [dict(zip(keys, line.split("|"), strict=True)) for line in out.splitlines() if line.strip()]
    assert len(rows) == 1, rows
    return rows[0]


def test_exported_gpu_quota_pends_a_user_over_it_with_assoc_grp_gres(slurm_accounting, ds01_home, unix_users):
    cluster = slurm_accounting
    alice, bob = unix_users["alice"].name, unix_users["bob"].name
    ds01_home.reconfigure(groups=groups(alice, bob))

    done = export("--apply", "--json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["applied"] and all(r["ok"] for r in result["applied"])
    assert {x["key"] for x in result["lossy"]} >= {"max_gpu_equivalents", "idle_timeout_h"}

    a = association(cluster, alice)
    assert a["account"] == "student" and "gres/gpu=1" in a["grptres"]
    assert "gres/gpu=1" in a["maxtresperjob"] and "cpu=4" in a["maxtresperjob"]
    assert a["maxwall"] == "1-00:00:00" and a["maxjobs"] == "3" and a["priority"] == "10"
    b = association(cluster, bob)
    assert b["account"] == "researcher" and "gres/gpu=2" in b["grptres"] and b["maxwall"] == "2-00:00:00"

    again = export("--apply", "--json")  # every command can run again
    assert again.returncode == 0 and all(r["ok"] for r in json.loads(again.stdout)["applied"])

    first = submit(cluster, alice, 1)
    assert wait_for(cluster, first, ("RUNNING", "None")) == ("RUNNING", "None")
    second = submit(cluster, alice, 1)
    assert wait_for(cluster, second, ("PENDING", "AssocGrpGRES")) == ("PENDING", "AssocGrpGRES")
    # bob's share is 2: both of his run while alice's second waits, so the limit is alice's own
    b1, b2 = submit(cluster, bob, 1), submit(cluster, bob, 1)
    assert wait_for(cluster, b1, ("RUNNING", "None")) == ("RUNNING", "None")
    assert wait_for(cluster, b2, ("RUNNING", "None")) == ("RUNNING", "None")
    assert state(cluster, second) == ("PENDING", "AssocGrpGRES")
    # alice's running job ends: the waiting one starts within her quota
    cluster.run("scancel", first)
    assert wait_for(cluster, second, ("RUNNING", "None")) == ("RUNNING", "None")
    cluster.cancel_all()


def test_a_job_over_the_exported_per_job_cap_waits_with_assoc_max_gres(
    slurm_accounting, ds01_home, unix_users
):
    """MaxTRESPerJob gres/gpu from max_gpu_slots_per_container: with a share of 4 GPUs but 2 per container,
    bob's 3-GPU job is held for the per-job cap, not for his total."""
    cluster = slurm_accounting
    alice, bob = unix_users["alice"].name, unix_users["bob"].name
    config = groups(alice, bob)
    config["researcher"]["max_gpu_equivalents"] = 4.0  # type: ignore[index]
    ds01_home.reconfigure(groups=config)
    assert export("--apply").returncode == 0
    assert "gres/gpu=4" in association(cluster, bob)["grptres"]
    done = subprocess.run(
        ["runuser", "-u", bob, "--", "env", f"SLURM_CONF={cluster.conf}", "sbatch", "--parsable",
         "--gres=gpu:3", "-c", "1", "--mem=100", "-o", "/dev/null", "--wrap", "sleep 300"],
        capture_output=True, text=True, timeout=30, cwd="/tmp",
    )  # fmt: skip
    if done.returncode == 0:  # held rather than refused (AccountingStorageEnforce without safe/deny)
        job = done.stdout.strip().split(";")[0]
        assert wait_for(cluster, job, ("PENDING", "AssocMaxGRESPerJob")) == ("PENDING", "AssocMaxGRESPerJob")
    else:
        assert "limit" in done.stderr.lower(), done.stderr
    two = submit(cluster, bob, 2)
    assert wait_for(cluster, two, ("RUNNING", "None")) == ("RUNNING", "None")
    cluster.cancel_all()
