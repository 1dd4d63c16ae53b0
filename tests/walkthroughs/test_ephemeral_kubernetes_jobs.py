"""Seed "Ephemeral Container Model", section "Kubernetes Jobs": the DS01 equivalent of a Job — launch, run the
training, exit, retire; the checkpoints stay in the workspace, the container and its GPU are gone."""

from __future__ import annotations

import pytest
from seedlab import make_student, new_project

pytestmark = pytest.mark.docker

TRAIN = """\
mkdir -p /workspace/checkpoints
for epoch in 1 2 3; do echo "weights after epoch $epoch" > /workspace/checkpoints/epoch-$epoch.pt; done
echo "training done"
"""


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["bob"])


def test_launch_train_exit_retire(student):
    ws = new_project(student, "training")
    student.write(ws / "train.py", TRAIN)

    # project launch training --open  /  python train.py  /  # Checkpoints saved to /workspace/  /  exit
    run = student.ds01("project", "launch", "training", "--open", input="python train.py\nexit\n")
    assert "training done" in run.stdout
    assert student.containers() == {"training": "running"} and len(student.gpu_slots()) == 1
    # container retire training
    student.ds01("container", "retire", "training", "--yes")
    assert student.containers() == {} and student.gpu_slots() == {}
    kept = sorted(p.name for p in (ws / "checkpoints").iterdir())
    assert kept == ["epoch-1.pt", "epoch-2.pt", "epoch-3.pt"]
    assert (ws / "checkpoints" / "epoch-3.pt").stat().st_uid == student.user.uid
