"""Seed "Ephemeral Container Model", section "Industry Workflow (Production ML)": the data scientist develops
in a launched container and saves the model to /workspace; the "MLOps engineer" runs the same image once
(`docker run ds01-123/model-dev:latest python serve.py ...` -> `container-run model-dev --rm -- ...`)."""

from __future__ import annotations

import pytest
from seedlab import make_student, new_project

pytestmark = pytest.mark.docker

TRAIN = "mkdir -p /workspace/models && echo 'final weights v3' > /workspace/models/final.pt\necho saved\n"
SERVE = """\
[ "$1" = --model ] && [ -f "$2" ] || { echo "no model at $2" >&2; exit 4; }
echo "serving $(cat "$2") with $(pip list | tr '\\n' ' ')"
"""


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["alice"])


def test_develop_then_run_the_same_image_once(student):
    ws = new_project(student, "model-dev")
    (ws / "requirements.txt").unlink()
    student.write(ws / "requirements.txt", "flask\n")
    student.write(ws / "train.py", TRAIN)
    student.write(ws / "serve.py", SERVE)

    # project launch model-dev --open  /  # Save final model to /workspace/models/final.pt
    dev = student.ds01("project", "launch", "model-dev", "--open", input="python train.py\nexit\n")
    assert "saved" in dev.stdout and (ws / "models" / "final.pt").exists()
    dev_container = student.engine.containers.get(f"model-dev._.{student.user.uid}").id

    # docker run ds01-123/model-dev:latest python serve.py --model /workspace/models/final.pt
    served = student.try_ds01(
        "container-run",
        "model-dev",
        "--rm",
        "--",
        "python",
        "serve.py",
        "--model",
        "/workspace/models/final.pt",
    )
    assert served.returncode == 0, served.stderr
    assert "serving final weights v3 with flask" in served.stdout  # the same image, the same workspace
    missing = student.try_ds01(
        "container-run",
        "model-dev",
        "--rm",
        "--",
        "python",
        "serve.py",
        "--model",
        "/workspace/models/none.pt",
    )
    assert missing.returncode == 4 and "no model at" in missing.stderr  # the exit code passes through
    # the one-shot containers are gone; the developer's container was left alone
    assert student.containers() == {"model-dev": "running"}
    assert student.engine.containers.get(f"model-dev._.{student.user.uid}").id == dev_container
    student.ds01("container", "retire", "model-dev", "--yes")
