"""The Dockerfiles the seeds show, saved in a project folder and built with ds01 as they are written:
"Industry Parallels" section "3. Infrastructure as Code", "Ephemeral Container Model" sections
"1. Infrastructure as Code" and "2. Reproducibility", and "From Dev to Prod" (the slides' Dockerfile recipe).

Their base images come from Docker Hub; on a lab server without a registry the admin has them locally
(here: the offline Python base, tagged with the seeds' names). `pip` installs are recorded, not downloaded."""

from __future__ import annotations

import json

import pytest
from seedlab import PYTHON_BASE, make_student

pytestmark = pytest.mark.docker

INDUSTRY = """\
FROM henrycgbaker/aime-pytorch:2.8.0-cuda12.4-ubuntu22.04
WORKDIR /workspace
RUN pip install transformers datasets accelerate
EXPOSE 8888
"""
EPHEMERAL = """\
FROM aime/pytorch:2.8.0-cuda12.4
RUN pip install transformers datasets
WORKDIR /workspace
"""
REPRODUCIBLE = """\
FROM aime/pytorch:2.8.0-cuda12.4
# Dockerfile (version controlled)
RUN pip install torch==2.0.0
RUN pip install some-package==1.5.0
"""
# The slide has `COPY requirements.txt requirements.txt COPY server.sh` on one line: two instructions.
DEV_TO_PROD = """\
FROM python:3.12-slim

WORKDIR /

COPY requirements.txt requirements.txt
COPY server.sh server.sh

RUN pip install --upgrade pip && pip install -r requirements.txt

EXPOSE 8080

RUN chmod +x server.sh

ENTRYPOINT ["./server.sh"]
"""


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    s = make_student(ds01_home, engine_clean, base_image_ref, unix_users["erin"])
    base = engine_clean.images.get(PYTHON_BASE)
    for name in ("henrycgbaker/aime-pytorch:2.8.0-cuda12.4-ubuntu22.04", "aime/pytorch:2.8.0-cuda12.4",
                 "python:3.12-slim"):  # fmt: skip
        repo, tag = name.rsplit(":", 1)
        base.tag(repo, tag)
    return s


def build(student, name: str, dockerfile: str, **files: str) -> list[str]:
    """Save the Dockerfile in ~/workspace/NAME and build it as it is: `image-create NAME`."""
    student.ds01("dir-create", name, "--type", "blank")  # the project folder, ~/workspace/NAME
    ws = student.workspace(name)
    student.write(ws / "Dockerfile", dockerfile)
    for rel, text in files.items():
        student.write(ws / rel, text)
    made = json.loads(student.ds01("image-create", name, "--json").stdout)
    assert made["image"] == f"ds01-{student.user.uid}/{name}:latest"
    installed = student.engine.containers.run(
        made["image"], ["/usr/lib/python3-installed"], entrypoint=["cat"], remove=True
    )
    return installed.decode().split()


def test_the_seeds_dockerfiles_build_as_written(student):
    assert build(student, "industry", INDUSTRY) == ["transformers", "datasets", "accelerate"]
    assert build(student, "ephemeral", EPHEMERAL) == ["transformers", "datasets"]
    assert build(student, "reproducible", REPRODUCIBLE) == ["torch==2.0.0", "some-package==1.5.0"]
    got = build(
        student,
        "dev-to-prod",
        DEV_TO_PROD,
        **{"requirements.txt": "flask==3.0.0\n", "server.sh": "#!/bin/sh\necho up\n"},
    )
    assert got == ["pip", "flask==3.0.0"]
    info = student.engine.api.inspect_image(f"ds01-{student.user.uid}/dev-to-prod:latest")["Config"]
    assert info["Entrypoint"] == ["./server.sh"] and "8080/tcp" in info["ExposedPorts"]
    assert info["Labels"]["ds01.user"] == student.name  # ds01's labels on a hand-written recipe too
