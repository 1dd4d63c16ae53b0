"""`ds01 doctor` in cluster mode: Slurm answers and knows this node; workspaces on local storage and a
missing registry are warned about; a wrong node name is a failure."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ds01.atomic.cluster_doctor import filesystem_of
from harness import slurm
from harness.users import bin_dir

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def doctor() -> dict[str, dict[str, str]]:
    done = subprocess.run(
        [str(bin_dir() / "ds01"), "doctor", "--json"], capture_output=True, text=True, timeout=120
    )
    return {c["name"]: c for c in json.loads(done.stdout)["checks"]}


def test_doctor_checks_slurm_node_storage_and_registry(
    slurm_cluster: slurm.Cluster, slurm_world: Any
) -> None:
    checks = doctor()
    assert checks["slurm"]["status"] == "ok" and slurm_cluster.node in checks["slurm"]["detail"]
    _, fstype = filesystem_of(slurm_world / "ws")
    shared = checks["shared workspaces"]
    assert shared["status"] == "warning" and fstype in shared["detail"], shared  # /tmp is local here
    assert checks["cluster registry"]["status"] == "warning"
    sections = slurm_world.slurm_sections
    slurm_world.reconfigure(
        **{
            **sections,
            "cluster": {**sections["cluster"], "node_name": "gpu99", "registry": "registry.lab:5000"},
        }
    )
    checks = doctor()
    assert checks["slurm"]["status"] == "failure" and "gpu99" in checks["slurm"]["detail"]
    assert checks["cluster registry"]["status"] == "ok"


def test_the_mount_holding_a_path_is_found(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "40 22 0:50 / /srv/ds01 rw - nfs4 fs:/export rw\n"
        "41 22 0:51 / /srv/ds01x rw - tmpfs tmpfs rw\n"
    )
    assert filesystem_of(Path("/srv/ds01/workspaces"), info) == ("/srv/ds01", "nfs4")
    assert filesystem_of(Path("/srv/ds01x/w"), info) == ("/srv/ds01x", "tmpfs")
    assert filesystem_of(Path("/home"), info) == ("/", "ext4")
