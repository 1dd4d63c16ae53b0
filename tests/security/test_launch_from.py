"""`project-launch NAME --from PROJECT`: an experiment runs one of the caller's own projects' images, never
another user's. Each case runs as a real user against the real ds01d and engine and checks the refusal (exit
code) AND that nothing was made: no container, no workspace folder, no image, the other user's files as they
were. An admin (root) may make one for a lab member with --user; its files are then the member's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.users import ok, run_as

pytestmark = pytest.mark.docker
BIN = Path(sys.executable).parent
PYTHON_BASE = "ds01/python:3.11"
INIT = ("--type", "custom", "--framework", "python", "--no-git", "--yes")


def snapshot(path: Path) -> dict[str, tuple[int, int, bytes]]:
    return {
        str(p): (p.lstat().st_mode, p.lstat().st_uid, p.read_bytes() if p.is_file() else b"")
        for p in [path, *sorted(path.rglob("*"))]
    }


@pytest.fixture
def world(ds01_home, engine_clean, base_image_ref, unix_users):
    """alice's my-project, built and with code in it; bob has nothing yet."""
    engine_clean.images.get(base_image_ref).tag(PYTHON_BASE)
    alice, bob = unix_users["alice"], unix_users["bob"]
    ok(run_as(alice, "project-init", "my-project", *INIT))
    src = ds01_home / "ws" / alice.name / "my-project" / "src"
    subprocess.run(["runuser", "-u", alice.name, "--", "mkdir", "-p", str(src)], check=True)
    subprocess.run(["runuser", "-u", alice.name, "--", "tee", str(src / "secret.py")], input="KEY = 42\n",
                   text=True, capture_output=True, check=True)  # fmt: skip
    ok(run_as(alice, "image-create", "my-project"))
    return alice, bob


def state(home: Path, engine: Any, user: Any) -> tuple[list[str], list[str], list[str]]:
    root = home / "ws" / user.name
    folders = sorted(p.name for p in root.iterdir()) if root.exists() else []
    found = engine.containers.list(all=True, filters={"label": f"ds01.uid={user.uid}"}, ignore_removed=True)
    images = sorted(t for i in engine.images.list() for t in i.tags if t.startswith(f"ds01-{user.uid}/"))
    return folders, sorted(c.name for c in found), images


def test_another_users_project_cannot_be_launched_from(ds01_home, engine_clean, world):
    alice, bob = world
    alices = snapshot(ds01_home / "ws" / alice.name)
    bobs = state(ds01_home, engine_clean, bob)
    r = run_as(bob, "project-launch", "exp", "--from", "my-project", "--background")
    assert r.returncode == 3 and "no project named 'my-project'" in r.stderr, r.stderr
    r = run_as(bob, "project-launch", "exp", "--from", "my-project", "--user", alice.name, "--background")
    assert r.returncode == 5, r.stderr
    r = run_as(bob, "project-launch", "exp", "--from", f"../{alice.name}/my-project", "--background")
    assert r.returncode == 2 and "invalid name" in r.stderr, r.stderr
    assert state(ds01_home, engine_clean, bob) == bobs
    assert state(ds01_home, engine_clean, alice)[1] == []  # nothing made for alice either
    assert snapshot(ds01_home / "ws" / alice.name) == alices


def test_a_hand_written_experiment_file_reaches_only_the_callers_own_images(ds01_home, engine_clean, world):
    alice, bob = world
    ok(run_as(bob, "project-init", "sneaky", *INIT))
    ws = ds01_home / "ws" / bob.name / "sneaky"
    (ws / "Dockerfile").unlink()  # no recipe of its own: only the experiment file says what to run
    note = '[experiment]\nfrom = "my-project"\n'
    subprocess.run(["runuser", "-u", bob.name, "--", "tee", str(ws / "ds01-experiment.toml")], input=note,
                   text=True, capture_output=True, check=True)  # fmt: skip
    before = state(ds01_home, engine_clean, bob)
    r = run_as(bob, "project-launch", "sneaky", "--background")
    assert r.returncode == 3 and "no project named 'my-project'" in r.stderr, r.stderr
    # naming alice's image outright is refused by ds01d whatever the client does
    alices_image = f"ds01-{alice.uid}/my-project:latest"
    r = run_as(bob, "container-deploy", "sneaky", "--image", alices_image, "--background")
    assert r.returncode == 5 and "belongs to another user" in r.stderr, r.stderr
    assert state(ds01_home, engine_clean, bob) == before


def test_the_owner_and_an_admin_for_the_owner(ds01_home, engine_clean, world):
    alice, _ = world
    mine = json.loads(
        ok(run_as(alice, "project-launch", "exp-1", "--from", "my-project", "--background", "--json")).stdout
    )
    assert mine["image"] == f"ds01-{alice.uid}/my-project:latest" and mine["image_built"] is False
    env = {**os.environ, "DS01_SOCKET": str(ds01_home / "ds01.sock")}
    argv = [str(BIN / "project-launch"), "exp-2", "--from", "my-project", "--user", alice.name]
    r = subprocess.run([*argv, "--background", "--json"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    theirs = json.loads(r.stdout)
    assert theirs["user"] == alice.name and theirs["image"] == mine["image"]
    ws = ds01_home / "ws" / alice.name / "exp-2"
    made = [ws, ws / "src", ws / "src" / "secret.py", ws / "ds01-experiment.toml"]
    assert all(p.lstat().st_uid == alice.uid for p in made)  # written as alice, not as root
    folders, containers, images = state(ds01_home, engine_clean, alice)
    assert folders == ["exp-1", "exp-2", "my-project"] and len(containers) == 2
    assert images == [mine["image"]]
