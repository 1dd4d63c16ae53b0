"""Seed "Ephemeral Container Model", section "Research Workflow (Academia)": morning launch, the day's work
saved to the workspace, evening retire; next week a fresh container finds every checkpoint."""

from __future__ import annotations

import pytest
from seedlab import make_student, new_project

pytestmark = pytest.mark.docker

TRAIN = """\
mkdir -p /workspace/models /workspace/results /workspace/figures
echo weights > /workspace/models/checkpoint-week1.pt
echo "acc 0.91" > /workspace/results/week1.log
echo plot > /workspace/figures/loss.png
echo "day's work saved"
"""


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["dave"])


def test_morning_launch_evening_retire_next_week_everything_is_there(student):
    ws = new_project(student, "my-thesis")
    student.write(ws / "experiments" / "train.py", TRAIN)

    # Morning: project launch my-thesis --open  /  python experiments/train.py
    # Evening: exit  /  container retire my-thesis
    day = student.ds01(
        "project", "launch", "my-thesis", "--open", input="python experiments/train.py\nexit\n"
    )
    assert "day's work saved" in day.stdout
    first = student.engine.containers.get(f"my-thesis._.{student.user.uid}").id
    student.ds01("container", "retire", "my-thesis", "--yes")
    assert student.containers() == {} and student.gpu_slots() == {}
    # Next week: project launch my-thesis --open  /  ls /workspace/models/  # All checkpoints present
    week = student.ds01("project", "launch", "my-thesis", "--open", input="ls /workspace/models/\nexit\n")
    assert "checkpoint-week1.pt" in week.stdout
    assert student.engine.containers.get(f"my-thesis._.{student.user.uid}").id != first  # a fresh one
    for rel in ("models/checkpoint-week1.pt", "results/week1.log", "figures/loss.png"):
        assert (ws / rel).exists(), rel
    student.ds01("container", "retire", "my-thesis", "--yes")
