"""Seed "Ephemeral Container Model", section "AWS ECS (Elastic Container Service)", the DS01 equivalent:
image-create (the task definition), project launch (run the task), container retire; the files stay."""

from __future__ import annotations

import pytest
from seedlab import make_student, on_terminal

pytestmark = pytest.mark.docker


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["frank"])


def test_image_create_launch_work_retire(student):
    # image-create my-project   (on a terminal it asks for the framework and the project type)
    screen = on_terminal(
        student,
        ["image-create", "my-project"],
        [("framework should the image start from", "python\r"), ("kind of project", "custom\r")],
    )
    assert f"built ds01-{student.user.uid}/my-project:latest" in screen
    ws = student.workspace("my-project")
    assert (ws / "Dockerfile").stat().st_uid == student.user.uid  # the recipe is the user's own file

    # project launch my-project   (on a terminal it asks whether to open a shell; no: it keeps running)
    screen = on_terminal(student, ["project", "launch", "my-project"], [("Open a shell in it now", "n\r")])
    assert "Deployed" in screen and "container-retire my-project" in screen
    assert student.containers() == {"my-project": "running"}
    # Work...
    student.ds01("container-run", "my-project", "--", "sh", "-c", "echo result > /workspace/output.txt")
    # container retire my-project   (asks to confirm)
    screen = on_terminal(student, ["container", "retire", "my-project"], [(r"Retire my-project\?", "y\r")])
    assert "retired my-project" in screen
    assert student.containers() == {} and student.gpu_slots() == {}
    # Files in ~/workspace/ persist
    assert (ws / "output.txt").read_text() == "result\n"
    listed = student.sh(f"ls {ws}")
    assert "output.txt" in listed.stdout and "Dockerfile" in listed.stdout
