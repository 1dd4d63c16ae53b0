"""Disk: a rebuild keeps exactly one previous image (`ds01-<uid>/<name>:previous`), `image-update NAME
--rollback` goes back to it, older ds01 images without a container are pruned by the lifecycle loop, and a
build or create first checks the engine's data root against images.min_free_gb."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import test_image
from test_image import create, ok

from harness.users import run_as

pytestmark = pytest.mark.docker

fake_pip_base = test_image.fake_pip_base
BIN = Path(sys.executable).parent


def image_id(client: Any, ref: str) -> str | None:
    import docker.errors

    try:
        return str(client.api.inspect_image(ref)["Id"])
    except docker.errors.ImageNotFound:
        return None


def events(home: Path, kind: str) -> list[dict[str, Any]]:
    from ds01.events import read_events

    return [e for e in read_events(home / "log") if e["event_type"] == kind]


def test_rebuilds_keep_one_previous_image_rollback_swaps_and_the_loop_prunes_the_rest(
    ds01_home: Any, engine_clean: Any, unix_users: Any, fake_pip_base: str
):
    alice, bob = unix_users["alice"], unix_users["bob"]
    latest, previous = f"ds01-{alice.uid}/proj:latest", f"ds01-{alice.uid}/proj:previous"
    ok(create(alice, "proj", fake_pip_base))
    first = image_id(engine_clean, latest)
    ok(run_as(alice, "container-create", "proj", "--cpu-only"))  # runs the first image
    rebuild = ("image-update", "proj", "--rebuild", "--no-cache", "--json")
    ok(run_as(alice, *rebuild))
    second = image_id(engine_clean, latest)
    assert second != first and image_id(engine_clean, previous) == first
    ok(run_as(alice, *rebuild))
    third = image_id(engine_clean, latest)
    assert image_id(engine_clean, previous) == second, "exactly one previous: the one just replaced"
    assert image_id(engine_clean, first) == first, "untagged, but its container still runs it: kept"

    assert run_as(bob, "image-update", f"ds01-{alice.uid}/proj", "--rollback").returncode == 5
    back = json.loads(ok(run_as(alice, "image-update", "proj", "--rollback", "--json")).stdout)
    assert back["rolled_back"] is True and back["id"] == second and back["previous_id"] == third
    assert (image_id(engine_clean, latest), image_id(engine_clean, previous)) == (second, third)
    (rolled,) = events(ds01_home, "image_rollback")
    assert rolled["user"] == alice.name and rolled["details"]["image_id"] == second

    ok(run_as(alice, "container-remove", "proj"))
    report = subprocess.run([str(BIN / "ds01-reaper"), "--once", "--json"], capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    assert image_id(engine_clean, first) is None, "the lifecycle loop pruned the untagged old image"
    (pruned,) = events(ds01_home, "image_prune")
    assert pruned["details"]["image_id"] == first and pruned["user"] == alice.name
    assert (image_id(engine_clean, latest), image_id(engine_clean, previous)) == (second, third)


def test_rollback_without_a_previous_image_is_not_found(
    ds01_home: Any, engine_clean: Any, unix_users: Any, fake_pip_base: str
):
    alice = unix_users["alice"]
    ok(create(alice, "solo", fake_pip_base))
    result = run_as(alice, "image-update", "solo", "--rollback")
    assert result.returncode == 3 and "no previous image" in result.stderr
    mixed = run_as(alice, "image-update", "solo", "--rollback", "--add", "requests")
    assert mixed.returncode == 2 and "--rollback" in mixed.stderr


def test_build_and_create_refuse_below_min_free_gb_and_say_how_much_is_free(
    ds01_home: Any, engine_clean: Any, unix_users: Any, base_image_ref: str, fake_pip_base: str
):
    alice = unix_users["alice"]
    ds01_home.reconfigure(images={"min_free_gb": 1_000_000})
    before = {i.id for i in engine_clean.images.list()}
    built = create(alice, "big", fake_pip_base)
    assert built.returncode == 4, built.stdout + built.stderr
    shown = built.stdout + built.stderr
    assert "GB free on the engine's data root" in shown and "images.min_free_gb (1e+06 GB)" in shown
    made = run_as(alice, "container-create", "big", "--image", base_image_ref, "--cpu-only")
    assert made.returncode == 4 and "GB free" in made.stderr, made.stderr
    assert {i.id for i in engine_clean.images.list()} == before and not engine_clean.containers.list(all=True)
