"""Seed "Industry Parallels", section "2. Ephemeral Compute": spin up compute, do work, terminate it; the
workspace persists (EC2 + EBS in the seed)."""

from __future__ import annotations

import pytest
from seedlab import make_student, new_project

pytestmark = pytest.mark.docker


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["bob"])


def test_deploy_work_retire_workspace_persists(student):
    ws = new_project(student, "my-project")
    student.ds01("image-create", "my-project")
    # container-deploy my-project  # Spin up compute
    student.ds01("container-deploy", "my-project", "--gpus", "1")
    [slot] = student.gpu_slots()
    # Do work
    student.ds01("container-run", "my-project", "--", "sh", "-c", "echo 0.93 > /workspace/accuracy.txt")
    # container-retire my-project  # Terminate compute
    retired = student.json("container-retire", "my-project", "--yes")
    assert retired[0]["gpus_freed"] == [slot]
    assert student.containers() == {} and student.gpu_slots() == {}
    # Workspace persists
    assert (ws / "accuracy.txt").read_text() == "0.93\n"
