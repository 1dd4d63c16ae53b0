"""The air-gapped Python base: debootstrap of the host's Debian mirror + docker import, no registry, built
by ds01d for an admin (here root at the console) and refused to a user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BIN = Path(sys.executable).parent


def test_build_base_offline_makes_a_python_image_that_project_images_build_from(
    ds01_home, engine_clean, unix_users
):
    env = dict(os.environ)  # root at the console: a client of ds01d like any other, and an admin
    started = time.monotonic()
    argv = [str(BIN / "ds01"), "image", "build-base", "--offline", "--only", "ds01/python:3.11", "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=240)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    [result] = json.loads(proc.stdout)
    print(f"\nair-gapped base: {seconds:.1f} s, {result['size'] / 1e6:.0f} MB")
    assert result["method"] == "debootstrap" and result["size"] > 100_000_000
    check = ["python3", "-c", "import sys, pip; print(sys.version_info[0])"]
    out = engine_clean.containers.run("ds01/python:3.11", check, remove=True, network_mode="none")
    assert out.decode().strip() == "3"

    # the plain Python project type installs nothing, so it builds from this base with no network at all
    from harness.users import run_as

    alice = unix_users["alice"]
    built = run_as(alice, "image-create", "offline", "--framework", "python", "--type", "custom", "--json")
    assert built.returncode == 0, built.stderr
    image = json.loads(built.stdout)["image"]
    ids = engine_clean.containers.run(image, ["sh", "-c", "id -u; id -g; python3 -c 'print(40 + 2)'"],
                                      remove=True, network_mode="none").decode().split()  # fmt: skip
    assert ids == [str(alice.uid), str(alice.gid), "42"]

    # a non-admin may not build bases (ds01d refuses before anything runs)
    refused = run_as(alice, "ds01", "image", "build-base", "--offline")
    assert refused.returncode == 5, refused.stderr
    assert "only admins" in refused.stderr
