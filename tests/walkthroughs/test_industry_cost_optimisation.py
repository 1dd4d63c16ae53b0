"""Seed "Industry Parallels", section "5. Cost Optimisation": `container-retire my-project` frees the
resources when done; asking for less than the maximum is a flag away (`--gpus`, `--cpu-only`)."""

from __future__ import annotations

import pytest
from seedlab import make_student, new_project

pytestmark = pytest.mark.docker


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["carol"])


def test_retire_frees_what_the_container_held(student):
    new_project(student, "my-project")
    student.ds01("project", "launch", "my-project", "--background")
    [slot] = student.gpu_slots()
    before = student.json("check-limits")["usage"]
    assert before["gpu_slots"] == 1 and before["containers"] == 1 and before["gpu_equivalents"] > 0
    # Free resources when done: container-retire my-project
    student.ds01("container-retire", "my-project", "--yes")
    assert student.gpu_slots() == {} and student.containers() == {}
    after = student.json("check-limits")["usage"]
    assert after == {"gpu_equivalents": 0, "gpu_slots": 0, "containers": 0}
    status = student.json("gpu-status")
    assert slot in {s["id"] for s in status["slots"] if not s["holder"]}

    # Use appropriate resources (don't request max if you need less): a CPU-only container holds no GPU
    student.ds01("container-deploy", "my-project", "--cpu-only")
    assert student.gpu_slots() == {} and student.containers() == {"my-project": "running"}
    student.ds01("container-retire", "my-project", "--yes")
