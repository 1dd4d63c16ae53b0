"""The test cluster with accounting (MariaDB and slurmdbd on 127.0.0.1): sacctmgr reaches it, and a limit
it sets holds jobs back with Slurm's reason."""

from __future__ import annotations

import time

import pytest

from harness import slurm

pytestmark = [pytest.mark.slow]


def test_accounting_limits_hold_jobs(slurm_accounting: slurm.Cluster, unix_users: dict) -> None:
    print(f"\nSlurm cluster with accounting up in {slurm_accounting.startup_s:.2f} s")
    c, alice = slurm_accounting, unix_users["alice"].name
    assert "ds01test" in c.run("sacctmgr", "-n", "-P", "list", "cluster", "format=cluster").stdout
    c.run("sacctmgr", "-i", "add", "account", "students")
    c.run("sacctmgr", "-i", "add", "user", alice, "account=students")
    c.run("sacctmgr", "-i", "modify", "account", "students", "set", "GrpTRES=gres/gpu=1")
    first = slurm.sbatch_as(c, alice, "--gres=gpu:1")
    c.wait_state(first, {"RUNNING"})
    second = slurm.sbatch_as(c, alice, "--gres=gpu:1")
    deadline = time.monotonic() + 30
    while c.job(second).get("Reason") != "AssocGrpGRES" and time.monotonic() < deadline:
        time.sleep(0.3)
    job = c.job(second)
    assert (job["JobState"], job["Reason"]) == ("PENDING", "AssocGrpGRES")
