"""Seed "Ephemeral Container Model", question "Can I save a container's state?": the quick save
(`container retire --save-changes`) keeps what was installed by hand; the better way is the Dockerfile:
edit it, then `image-update my-project` rebuilds because the recipe changed, and says what changed."""

from __future__ import annotations

import pytest
from seedlab import make_student, new_project

pytestmark = pytest.mark.docker

ADDITIONS = "# >>> your additions (kept when ds01 regenerates this file) >>>\n"


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["bob"])


def pip_list(student) -> str:
    return student.ds01("container-run", "my-project", "--", "pip", "list").stdout


def test_quick_save_then_the_dockerfile_way(student):
    ws = new_project(student, "my-project")
    student.ds01("project", "launch", "my-project", "--background")
    student.ds01("container-attach", "my-project", input="pip install quick-fix\nexit\n")
    assert "quick-fix" in pip_list(student)

    # Quick save (non-reproducible): container retire my-project --save-changes
    student.ds01("container", "retire", "my-project", "--save-changes", "--yes")
    assert student.containers() == {}
    student.ds01("project", "launch", "my-project", "--background")
    assert "quick-fix" in pip_list(student)  # the hand install came back with the saved image
    student.ds01("container", "retire", "my-project", "--yes")

    # Better: Document in Dockerfile:  vim ~/workspace/my-project/Dockerfile  # Add changes
    dockerfile = ws / "Dockerfile"
    text = dockerfile.read_text()
    assert text.count(ADDITIONS) == 1
    student.write(dockerfile, text.replace(ADDITIONS, ADDITIONS + "RUN pip install some-package==1.5.0\n"))
    before = student.image_id("my-project")
    # image-update my-project
    updated = student.ds01("image-update", "my-project")
    said = updated.stdout + updated.stderr
    assert "Dockerfile changed" in said and "rebuilt" in said
    assert student.image_id("my-project") != before
    student.ds01("project", "launch", "my-project", "--background")
    installed = pip_list(student)
    assert "some-package==1.5.0" in installed and "quick-fix" not in installed  # the recipe alone
    again = student.ds01("image-update", "my-project")  # nothing edited since: nothing to rebuild
    assert "nothing changed" in again.stdout + again.stderr
    student.ds01("container", "retire", "my-project", "--yes")
