"""Seed "Industry Parallels", section "1. Containerisation (Docker)": `container-deploy my-project` runs the
project's image as the student's container (the ECS run-task / kubectl run of the seed)."""

from __future__ import annotations

import pytest
from seedlab import make_student, new_project

pytestmark = pytest.mark.docker


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["alice"])


def test_container_deploy_runs_the_projects_image(student):
    new_project(student, "my-project")
    student.ds01("image-create", "my-project")  # the project's Dockerfile, built as it is
    # container-deploy my-project
    out = student.ds01("container-deploy", "my-project").stdout
    assert "Deployed my-project" in out and "container-retire my-project" in out
    container = student.engine.containers.get(f"my-project._.{student.user.uid}")
    assert container.status == "running"
    assert container.image.id == student.image_id("my-project")
    assert container.labels["ds01.user"] == student.name
    assert student.ds01("container-run", "my-project", "--", "id", "-u").stdout.strip() == str(
        student.user.uid
    )
    student.ds01("container-retire", "my-project", "--yes")
