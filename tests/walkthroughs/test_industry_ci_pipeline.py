"""Seed "Industry Parallels", section "CI/CD Pipeline": build a test environment from test.Dockerfile
(`docker build -f test.Dockerfile .` -> `image-create test-image --dockerfile test.Dockerfile`) and run the
tests once in a fresh container (`docker run test-image pytest` -> `container-run test-image --rm -- pytest`):
the result is the exit code, and nothing is left running."""

from __future__ import annotations

import pytest
from seedlab import make_student, new_project

pytestmark = pytest.mark.docker

TEST_DOCKERFILE = """\
FROM ds01/python:3.11
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt pytest
"""


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["erin"])


def test_build_the_test_environment_and_run_the_tests_in_it(student):
    ws = new_project(student, "test-image")
    student.write(ws / "test.Dockerfile", TEST_DOCKERFILE)
    student.write(ws / "tests" / "test_model.py", '[ "$(pip list | grep -c pytest)" = 1 ]\n')

    # docker build -f test.Dockerfile .   (in ~/workspace/test-image)
    student.ds01("image-create", "test-image", "--dockerfile", "test.Dockerfile", cwd=str(ws))
    # docker run test-image pytest
    passed = student.try_ds01("container-run", "test-image", "--rm", "--", "pytest")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "1 passed, 0 failed" in passed.stdout
    assert student.containers() == {}

    student.write(ws / "tests" / "test_broken.py", "exit 1\n")
    failed = student.try_ds01("container-run", "test-image", "--rm", "--", "pytest")
    assert failed.returncode == 1 and "1 passed, 1 failed" in failed.stdout  # CI sees the failure
    assert student.containers() == {} and student.gpu_slots() == {}
