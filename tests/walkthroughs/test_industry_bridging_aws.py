"""Seed "Industry Parallels", section "From DS01 to AWS": a training job (`container-deploy training
--background`) and a simple API container (`container-deploy api`, a Flask app inside) side by side."""

from __future__ import annotations

import pytest
from seedlab import make_student, new_project

pytestmark = pytest.mark.docker


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["bob"])


def test_training_job_and_api_container(student):
    for name in ("training", "api"):
        new_project(student, name)
        student.ds01("image-create", name)
    # Training job: container-deploy training --background
    student.ds01("container-deploy", "training", "--background", "--gpus", "1")
    # Model serving: container-deploy api   # Inside: Flask app
    student.ds01("container-deploy", "api")
    assert student.containers() == {"training": "running", "api": "running"}
    assert list(student.gpu_slots().values()) == ["training"]  # the API needs no GPU
    for name in ("training", "api"):  # each its own workspace (the seed's "Workspace -> S3 bucket")
        student.ds01("container-run", name, "--", "sh", "-c", f"echo {name} > /workspace/who.txt")
        assert (student.workspace(name) / "who.txt").read_text() == f"{name}\n"
    student.ds01("container-retire", "--all", "--yes")
    assert student.containers() == {} and student.gpu_slots() == {}
