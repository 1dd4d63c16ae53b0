"""Seed "Ephemeral Container Model", section "Cloud Migration Story": project init, launch, train, retire;
then the image goes to a registry (`docker tag` + `docker push` -> `image-push`, with the user's own login
from ~/.docker/config.json) or to a file (`image-save`, loaded back with `docker load`)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from seedlab import make_student

from harness import registry

pytestmark = pytest.mark.docker

PASSWORD = "walkthrough-pw-51c3"
DOCKER_CLI = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
TRAIN = "mkdir -p /workspace/models && echo 'trained' > /workspace/models/model.pt\necho 'epoch 1/1 done'\n"


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    user = unix_users["dave"]
    yield make_student(ds01_home, engine_clean, base_image_ref, user)
    shutil.rmtree(user.home / ".docker", ignore_errors=True)
    (user.home / "my-model.tar").unlink(missing_ok=True)


@pytest.fixture
def reg(docker_engine):
    with registry.running(docker_engine.netns, "dave-at-work", PASSWORD) as r:
        yield r


def docker_login(student, address: str, username: str, password: str) -> None:
    """What `docker login` leaves on the student's laptop or the server: ~/.docker/config.json (0600)."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    done = student.sh(
        'mkdir -p ~/.docker && umask 077 && cat > ~/.docker/config.json',
        input=json.dumps({"auths": {address: {"auth": auth}}}),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_init_launch_train_retire_then_push_and_save(student, reg, docker_engine):
    # project init my-model   (on a terminal it asks the type and framework; these are the answers)
    student.ds01("project", "init", "my-model", "--type", "custom", "--framework", "python", "--yes")
    ws = student.workspace("my-model")
    assert (ws / ".git").is_dir() and (ws / "Dockerfile").exists()
    student.write(ws / "train.py", TRAIN)
    # project launch my-model  /  python train.py   (a shell in the container: --open)
    run = student.ds01("project", "launch", "my-model", "--open", input="python train.py\nexit\n")
    assert "epoch 1/1 done" in run.stdout
    # container retire my-model
    student.ds01("container", "retire", "my-model", "--yes")
    assert (ws / "models" / "model.pt").exists() and student.containers() == {}
    image = f"ds01-{student.user.uid}/my-model:latest"
    original = student.engine.images.get(image).id

    # docker tag ds01-123/my-model:latest 123456.ecr.aws.com/my-model
    # docker push 123456.ecr.aws.com/my-model
    docker_login(student, reg.address, reg.username, PASSWORD)
    target = f"{reg.address}/my-model"
    pushed = student.ds01("image-push", "my-model", target)
    assert "my-model" in pushed.stdout + pushed.stderr
    student.engine.images.remove(original, force=True)
    pulled = student.engine.images.pull(
        target, tag="latest", auth_config={"username": reg.username, "password": PASSWORD}
    )
    assert pulled.id == original  # the registry holds exactly the image the student built
    assert PASSWORD not in student.world.server.log_text()

    # the same image as a file (for a registry ds01 cannot reach): image-save, then `docker load` elsewhere
    student.engine.images.get(original).tag(image)
    tar = student.user.home / "my-model.tar"
    student.ds01("image-save", "my-model", "-o", str(tar))
    assert tar.stat().st_uid == student.user.uid
    student.engine.images.remove(original, force=True)
    loaded = subprocess.run(
        [DOCKER_CLI, "-H", docker_engine.host, "load", "-i", str(tar)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert student.engine.images.get(image).id == original
    assert os.stat(tar).st_size > 0
