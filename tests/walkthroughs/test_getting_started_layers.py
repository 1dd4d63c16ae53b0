"""Seed "Welcome to DS01 - Getting Started", section "Layered Command System": the L2 atomic commands
(`container-{create|start|run|stop|remove}`, `image-{create|list|update|delete}`, `{dir|git|readme}-...`),
the L3 orchestrators (`container-deploy` = create + start, `container-retire` = stop + remove) and the L4
wizards (`project-init`, `project-launch`; `user-setup` has its own tests), one after the other."""

from __future__ import annotations

import pytest
from seedlab import make_student

pytestmark = pytest.mark.docker


@pytest.fixture
def student(ds01_home, engine_clean, base_image_ref, unix_users):
    return make_student(ds01_home, engine_clean, base_image_ref, unix_users["dave"])


def test_l2_atomic_l3_orchestrators_l4_wizards(student):
    # L2: {dir|git|readme}-{create|init}
    student.ds01("dir-create", "manual")
    ws = student.workspace("manual")
    student.ds01("git-init", "manual")
    student.ds01("readme-create", "manual")
    assert ws.is_dir() and (ws / ".git").is_dir() and (ws / "README.md").exists()
    # L2: image-{create|list|update|delete}
    student.ds01("image-create", "manual", "--framework", "python", "--type", "custom")
    assert [i["name"] for i in student.json("image-list")] == ["manual"]
    updated = student.json("image-update", "manual", "--add", "tqdm")
    assert updated["added"] == ["tqdm"] and updated["rebuilt"] is True
    # L2: container-{create|start|run|stop|remove}
    student.ds01("container-create", "manual", "--gpus", "1")
    assert student.containers() == {"manual": "created"} and len(student.gpu_slots()) == 1
    student.ds01("container-start", "manual")
    assert student.ds01("container-run", "manual", "--", "pip", "list").stdout.split() == ["tqdm"]
    student.ds01("container-stop", "manual")
    assert student.containers() == {"manual": "exited"}
    student.ds01("container-remove", "manual")
    assert student.containers() == {} and student.gpu_slots() == {}

    # L3: container-deploy = create + start;  container-retire = stop + remove
    student.ds01("container-deploy", "manual", "--gpus", "1", "--background")
    assert student.containers() == {"manual": "running"} and len(student.gpu_slots()) == 1
    student.ds01("container-retire", "manual", "--yes")
    assert student.containers() == {} and student.gpu_slots() == {}
    student.ds01("image-delete", "manual")
    assert student.json("image-list") == [] and (ws / "Dockerfile").exists()

    # L4: project-init = workspace + Dockerfile + requirements;  project-launch = image if needed + deploy
    student.ds01("project-init", "wizard", "--type", "custom", "--framework", "python", "--yes")
    made = student.workspace("wizard")
    assert all((made / f).exists() for f in ("Dockerfile", "requirements.txt", "README.md", ".git"))
    launched = student.json("project-launch", "wizard", "--background")
    assert launched["image_built"] is True and launched["status"] == "running"
    student.ds01("container-retire", "wizard", "--yes")
