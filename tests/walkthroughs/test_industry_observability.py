"""Seed "Industry Parallels", section "3. Observability": logs (`docker logs container-name` ->
`container-logs NAME`), metrics (`container-stats`), GPU monitoring (`nvidia-smi` -> `gpu-status` on the
server; nvidia-smi inside a GPU container)."""

from __future__ import annotations

import pytest
from seedlab import make_student, new_project

pytestmark = pytest.mark.docker


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["alice"])


def test_logs_metrics_and_gpus(student):
    new_project(student, "my-project")
    student.ds01("project", "launch", "my-project", "--background")
    # a program writing to the container's own output (what docker logs shows: the main process's output)
    student.ds01("container-run", "my-project", "--", "sh", "-c", "echo 'step 100 loss 0.42' > /proc/1/fd/1")

    # Logs: docker logs container-name -> container-logs my-project
    assert student.ds01("container-logs", "my-project").stdout.strip() == "step 100 loss 0.42"
    # Metrics: container-stats
    [stats] = student.json("container-stats")
    assert stats["name"] == "my-project" and stats["status"] == "running" and stats["memory_used"] > 0
    assert "my-project" in student.ds01("container-stats").stdout
    # GPU monitoring: nvidia-smi -> gpu-status
    [slot] = student.gpu_slots()
    human = student.ds01("gpu-status").stdout
    assert student.name in human and slot in human
    assert stats["gpus"] and stats["gpus"][0]["slot"] == slot
    student.ds01("container-retire", "my-project", "--yes")
