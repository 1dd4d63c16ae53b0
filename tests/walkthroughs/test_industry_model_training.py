"""Seed "Industry Parallels", section "ML Model Training": build the environment, launch the training
container, monitor it (`container-stats`; `docker logs training._.$(whoami)` -> `container-logs training`),
retire it, and find the model in ~/workspace/training/models/."""

from __future__ import annotations

import pytest
from seedlab import make_student, on_terminal

pytestmark = pytest.mark.docker

# The training run: its progress goes to a log in the workspace and to the container's own output (what
# container-logs shows: the output of the container's main process, /proc/1/fd/1).
TRAIN = """\
mkdir -p /workspace/models
for epoch in 1 2 3; do
  echo "epoch $epoch loss 0.$((9 - epoch))" | tee -a /workspace/training.log > /proc/1/fd/1
done
echo weights > /workspace/models/model-final.pt
"""


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["carol"])


def test_build_launch_monitor_retire_model_saved(student):
    # 1. Build environment: image-create   (on a terminal it asks the name, framework and project type)
    screen = on_terminal(
        student,
        ["image-create"],
        [
            ("Name", "training\r"),
            ("framework should the image start from", "python\r"),
            ("kind of project", "custom\r"),
        ],
    )
    assert f"built ds01-{student.user.uid}/training:latest" in screen
    ws = student.workspace("training")
    student.write(ws / "train.py", TRAIN)

    # 2. Launch training container: container-deploy training --background   (then start the run in it)
    student.ds01("container-deploy", "training", "--background", "--gpus", "1")
    student.ds01("container-run", "training", "--", "python", "train.py")

    # 3. Monitor progress: container-stats  /  docker logs training._.$(whoami) -> container-logs training
    [stats] = student.json("container-stats")
    assert stats["name"] == "training" and stats["status"] == "running" and len(stats["gpus"]) == 1
    human = student.ds01("container-stats").stdout
    assert "training" in human
    logs = student.ds01("container-logs", "training").stdout
    assert logs.splitlines() == ["epoch 1 loss 0.8", "epoch 2 loss 0.7", "epoch 3 loss 0.6"]
    assert student.ds01("container-logs", "training", "--tail", "1").stdout.strip() == "epoch 3 loss 0.6"

    # 4. Training complete, free resources: container-retire training
    student.ds01("container-retire", "training", "--yes")
    assert student.containers() == {} and student.gpu_slots() == {}
    # 5. Model saved to workspace: ls ~/workspace/training/models/
    listed = student.sh(f"ls {ws}/models/")
    assert listed.returncode == 0 and listed.stdout.split() == ["model-final.pt"]
