"""Seed "Industry Parallels", sections "4. Resource Management & Fair Scheduling" and "From DS01 to
Kubernetes": the lab's own YAML (`max_gpus: 2, max_cpus: 16, memory: 64GB, priority: 50`; per user
`max_gpus: 1, memory: 64GB`) is accepted as written and is what a student's containers get."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from seedlab import make_student, new_project

pytestmark = pytest.mark.docker

SEED_YAML = """\
# config/resource-limits.yaml
defaults:
  max_gpus: 2
  max_cpus: 16
  memory: 64GB
  priority: 50
"""
DS01D = Path(sys.executable).parent / "ds01d"


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["carol"])


def test_the_seeds_yaml_is_accepted_and_applied(student, ds01_home, tmp_path):
    seed = tmp_path / "resource-limits.yaml"
    seed.write_text(SEED_YAML)
    checked = subprocess.run([DS01D, "--check-config", str(seed)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert (
        "max_gpus" in checked.stderr + checked.stdout
        and "max_gpu_equivalents" in checked.stderr + checked.stdout
    )

    # the lab's config: the seed's defaults, and no group overriding them
    config = yaml.safe_load(ds01_home.config.read_text())
    config["defaults"] = {**yaml.safe_load(SEED_YAML)["defaults"]}
    config["groups"] = {}
    config["default_group"] = None
    ds01_home.config.write_text(yaml.safe_dump(config, sort_keys=False))
    limits = student.json("check-limits")["limits"]
    assert limits["max_gpu_equivalents"] == 2 and limits["max_cpus"] == 16 and limits["priority"] == 50

    for name in ("my-project", "second"):
        new_project(student, name)
        student.ds01("project", "launch", name, "--background", "--gpus", "1")
    host = student.engine.api.inspect_container(f"my-project._.{student.user.uid}")["HostConfig"]
    assert host["Memory"] in (64 * 10**9, 64 * 2**30) and 0 < host["NanoCpus"] <= 16 * 10**9
    assert student.json("check-limits")["usage"]["gpu_equivalents"] == 2  # two full GPUs: max_gpus 2
    student.ds01("container-retire", "--all", "--yes")

    # From DS01 to Kubernetes: `max_gpus: 1, memory: 64GB` for one user
    config["user_overrides"] = {student.name: {"max_gpus": 1, "memory": "64GB"}}
    ds01_home.config.write_text(yaml.safe_dump(config, sort_keys=False))
    mine = student.json("check-limits")
    assert mine["limits"]["max_gpu_equivalents"] == 1 and mine["source"]["max_gpu_equivalents"] != "defaults"
    student.ds01("container-deploy", "my-project", "--gpus", "1", "--background")
    refused = student.try_ds01("container-deploy", "second", "--gpus", "1", "--background")
    assert refused.returncode == 4 and "Traceback" not in refused.stderr  # over the user's max_gpus: 1
    assert student.containers() == {"my-project": "running"} and len(student.gpu_slots()) == 1
    student.ds01("container-retire", "my-project", "--yes")
