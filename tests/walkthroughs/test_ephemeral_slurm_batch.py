"""Seed "Ephemeral Container Model", section "HPC Batch Jobs (SLURM)": the DS01 equivalent of a batch job —
launch in the background, attach, train, exit, retire; the GPU is freed and the output stays."""

from __future__ import annotations

import pytest
from seedlab import make_student, new_project

pytestmark = pytest.mark.docker

TRAIN = 'echo "loss 0.12" > /workspace/results.log\necho "trained on $CUDA_VISIBLE_DEVICES"\n'


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["carol"])


def test_background_attach_train_retire_frees_the_gpu(student):
    ws = new_project(student, "training")
    student.write(ws / "train.py", TRAIN)

    # project launch training --background
    launched = student.json("project", "launch", "training", "--background")
    assert launched["status"] == "running" and len(launched["gpus"]) == 1
    slot = launched["gpus"][0]["slot"]
    assert student.gpu_slots() == {slot: "training"}
    # container-attach training  /  python train.py  # Output to ~/workspace/  /  exit
    attached = student.ds01("container-attach", "training", input="python train.py\nexit\n")
    assert "trained on" in attached.stdout
    assert (ws / "results.log").read_text() == "loss 0.12\n"
    assert student.containers() == {"training": "running"}  # exit leaves the shell, not the container
    # container retire training  # GPU freed
    student.ds01("container", "retire", "training", "--yes")
    assert student.gpu_slots() == {} and student.containers() == {}
    assert (ws / "results.log").exists()
