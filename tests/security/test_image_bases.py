"""`GET /v1/catalogue/bases` (what this server can build from) and the pulls before a build, through the real
ds01d: every user, another user and an admin get the same answer, which names no user's image; the request
cannot be steered (no body, no other method); asking changes nothing on the host (no pull, no container);
and a build cannot make ds01d look for a user's image on a public registry."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.raw import request
from harness.users import TestUser, ok, run_as

pytestmark = pytest.mark.docker
TARGET = "/v1/catalogue/bases"
USAGE, NOT_FOUND, FAILED = 2, 3, 1


def engine_state(engine) -> tuple[set[str], set[str]]:
    return {i.id for i in engine.images.list(all=True)}, {c.id for c in engine.containers.list(all=True)}


def folder_of(user: TestUser, name: str, dockerfile: str) -> Path:
    path = user.home / f"ds01-bases-{name}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    (path / "Dockerfile").write_text(dockerfile)
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(path)], check=True)
    return path


@pytest.fixture
def secret_image(ds01_home, engine_clean, base_image_ref, unix_users):
    """bob's own image, with a name worth hiding."""
    bob = unix_users["bob"]
    folder = folder_of(bob, "secret", f"FROM {base_image_ref}\nRUN echo hidden > /note\n")
    try:
        ok(run_as(bob, "image-create", "secret-thesis", "--dockerfile", str(folder / "Dockerfile")))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return f"ds01-{bob.uid}/secret-thesis:latest"


def test_owner_other_and_admin_get_the_same_answer_naming_no_user(
    ds01_home, engine_clean, secret_image, unix_users
):
    alice, bob, carol = unix_users["alice"], unix_users["bob"], unix_users["carol"]
    ds01_home.reconfigure(groups={"admin": {"members": [carol.name], "admin": True}})
    before = engine_state(engine_clean)
    answers = {}
    for who in (bob, alice, carol, None):  # the image's owner, another user, an admin, root
        started = time.monotonic()
        answer = request(who, ds01_home.socket, "GET", TARGET)
        assert answer.exit_code == 0, answer
        assert time.monotonic() - started < 5  # bounded, and cached after the first
        answers[who.name if who else "root"] = answer.result
    first = answers["ds01t-bob"]
    assert all(a == first for a in answers.values())
    text = json.dumps(first)
    assert "secret-thesis" not in text and f"ds01-{bob.uid}" not in text
    assert not any(u.name in text for u in unix_users.values())
    assert {b["image"] for b in first["bases"]} >= {
        "ds01/python:3.11",
        "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
    }
    assert engine_state(engine_clean) == before  # no pull, no container: asking changes nothing


def test_the_request_cannot_be_steered(ds01_home, engine_clean, unix_users):
    alice = unix_users["alice"]
    before = engine_state(engine_clean)
    for query in (f"user={unix_users['bob'].name}", "image=busybox:latest", "refresh=1"):  # a GET's body
        answer = request(alice, ds01_home.socket, "GET", f"{TARGET}?{query}")
        assert answer.exit_code == USAGE and answer.error, (query, answer)
    for method in ("POST", "DELETE", "PUT"):
        answer = request(alice, ds01_home.socket, method, TARGET)
        assert answer.exit_code == USAGE and answer.error, (method, answer)
    assert engine_state(engine_clean) == before


def test_a_build_never_looks_for_a_users_image_on_a_registry(ds01_home, engine_clean, unix_users):
    alice, bob = unix_users["alice"], unix_users["bob"]
    before = engine_state(engine_clean)
    cases = {  # her own image that is not there: exit 3; bob's (there or not): exit 5, as ever
        f"ds01-{alice.uid}/never-built:latest": NOT_FOUND,
        f"ds01-{bob.uid}/never-built:latest": 5,
    }
    for ref, code in cases.items():
        folder = folder_of(alice, "missing", f"FROM {ref}\nRUN true\n")
        try:
            result = run_as(alice, "image-create", "probe", "--dockerfile", str(folder / "Dockerfile"))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        assert result.returncode == code, (ref, result.stderr)
        assert "Downloading" not in result.stderr and "registry" not in result.stderr, result.stderr
    assert engine_state(engine_clean) == before
    log = "".join(p.read_text() for p in (ds01_home / "log").rglob("*") if p.is_file())
    assert "image_pull" not in log


def test_a_base_that_cannot_be_downloaded_is_exit_1_in_plain_words_and_makes_nothing(
    ds01_home, engine_clean, unix_users
):
    dave = unix_users["dave"]
    before = engine_state(engine_clean)
    folder = folder_of(dave, "hub", "FROM python:3.11-slim-bookworm\nRUN true\n")
    try:
        result = run_as(dave, "image-create", "hub", "--dockerfile", str(folder / "Dockerfile"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    said = " ".join(result.stderr.split())
    assert result.returncode == FAILED, result.stderr
    assert (
        "this server cannot reach the container registry (registry-1.docker.io) to download "
        "python:3.11-slim-bookworm" in said
    )
    assert "Traceback" not in said and "dial tcp" not in said
    assert engine_state(engine_clean) == before
