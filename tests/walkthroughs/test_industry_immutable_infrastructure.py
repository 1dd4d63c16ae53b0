"""Seed "Industry Parallels", section "1. Immutable Infrastructure": don't `pip install` in a running
container (it goes with the container); do update the image (`image-update`, the interactive menu), then
retire and deploy: the package is in every new container."""

from __future__ import annotations

import pytest
from seedlab import make_student, new_project, on_terminal

pytestmark = pytest.mark.docker

SHELL = r"/workspace [$#] "
CURSOR = "\x1b[40;1R"  # a terminal's answer to the shell's cursor-position query


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["frank"])


def pip_list(student) -> list[str]:
    return student.ds01("container-run", "my-project", "--", "pip", "list").stdout.split()


def test_dont_install_in_the_container_do_update_the_image(student):
    ws = new_project(student, "my-project")
    student.ds01("image-create", "my-project")
    student.ds01("container-deploy", "my-project")

    # Don't: container-run my-project  /  pip install new-package   # Bad: Not reproducible
    screen = on_terminal(
        student,
        ["container-run", "my-project"],
        [(SHELL, CURSOR + "pip install new-package; pip list\r"), ("new-package", "exit\r")],
    )
    assert "new-package" in screen
    student.ds01("container-retire", "my-project", "--yes")
    student.ds01("container-deploy", "my-project")
    assert "new-package" not in pip_list(student)  # gone with the container it was installed in

    # Do: image-update   # Add package via interactive GUI
    before = student.image_id("my-project")
    screen = on_terminal(
        student,
        ["image-update"],
        [
            ("Which image", "1\r"),
            ("What to do with my-project", "\r"),  # the first entry: add Python packages
            ("Python packages to add", "new-package\r"),
            ("Recreate my-project with the new image", "n\r"),  # the guide retires and deploys by hand
        ],
    )
    assert "rebuilt" in screen
    assert "new-package" in (ws / "requirements.txt").read_text()  # the recipe says so: reproducible
    assert student.image_id("my-project") != before
    # container-retire my-project  /  container-deploy my-project
    student.ds01("container-retire", "my-project", "--yes")
    student.ds01("container-deploy", "my-project")
    assert "new-package" in pip_list(student)
    student.ds01("container-retire", "my-project", "--yes")

    # without a terminal, image-update alone says which flags do the same
    plain = student.try_ds01("image-update")
    assert plain.returncode == 2 and "--add" in plain.stderr
