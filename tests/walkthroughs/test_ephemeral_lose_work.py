"""Seed "Ephemeral Container Model", question "Won't I lose work if container is removed?": what is written
to /workspace survives a retire; what is written to ~ inside the container goes with it."""

from __future__ import annotations

import pytest
from seedlab import make_student, new_project

pytestmark = pytest.mark.docker


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["erin"])


def test_workspace_is_safe_home_in_the_container_is_not(student):
    ws = new_project(student, "my-project")
    student.ds01("project", "launch", "my-project", "--background")
    # Inside container:  echo "results" > /workspace/output.txt   (safe)
    #                    echo "results" > ~/output.txt            (unsafe)
    student.ds01(
        "container-attach", "my-project",
        input='echo "results" > /workspace/output.txt\necho "results" > ~/output.txt\nexit\n',
    )  # fmt: skip
    student.ds01("container", "retire", "my-project", "--yes")
    assert (ws / "output.txt").read_text() == "results\n"  # ~/workspace/my-project/output.txt on the server

    student.ds01("project", "launch", "my-project", "--background")
    look = student.try_ds01(
        "container-attach", "my-project", input="cat /workspace/output.txt; cat ~/output.txt; exit $?\n"
    )
    assert look.stdout.count("results") == 1 and look.returncode != 0  # the home copy went with the container
    student.ds01("container", "retire", "my-project", "--yes")
