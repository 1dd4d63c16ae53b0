"""Seed "Ephemeral Container Model", section "The Core Philosophy": launch a fresh container, work, exit,
retire (the GPU is free, the files stay); and why not `container-stop` (the container keeps its GPU)."""

from __future__ import annotations

import pytest
from seedlab import make_student, new_project

pytestmark = pytest.mark.docker


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["alice"])


def test_launch_work_exit_retire_and_why_not_stop(student):
    ws = new_project(student, "my-thesis")

    # project launch my-thesis --open    /  # Work for the day...  /  exit
    day = student.ds01(
        "project", "launch", "my-thesis", "--open", input="echo 'day one' > /workspace/notes.txt\nexit\n"
    )
    assert "container-retire my-thesis" in day.stdout
    assert student.containers() == {"my-thesis": "running"}
    [slot] = student.gpu_slots()
    # container retire my-thesis
    retired = student.json("container", "retire", "my-thesis", "--yes")
    assert retired[0]["gpus_freed"] == [slot]
    assert student.containers() == {} and student.gpu_slots() == {}
    assert (ws / "notes.txt").read_text() == "day one\n"

    # Not: container-stop my-thesis   (the container sits idle, holding its GPU)
    student.ds01("project", "launch", "my-thesis", "--background")
    [slot] = student.gpu_slots()
    student.ds01("container-stop", "my-thesis")
    assert student.containers() == {"my-thesis": "exited"}
    assert student.gpu_slots() == {slot: "my-thesis"}
    student.ds01("container", "retire", "my-thesis", "--yes")
    assert student.gpu_slots() == {} and (ws / "notes.txt").exists()
