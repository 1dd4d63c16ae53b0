"""A client killed while its build streams: the build runs inside ds01d, so it finishes there (the stream to
the vanished client is dropped) and leaves a whole image, tagged once at the end, with no build container
and no dangling layer behind; ds01d keeps serving. (Exec sessions: tests/security/test_exec.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

import pytest
from fault_invariants import ds01d_serves, events, popen_as

from harness.users import run_as

pytestmark = pytest.mark.docker

DOCKERFILE = """FROM {base}
RUN echo one > /one
RUN sleep 2 && echo two > /two
RUN echo three > /three
"""


def test_a_build_whose_client_is_killed_finishes_whole_in_ds01d(
    ds01_home: Any, engine_clean: Any, base_image_ref: str, unix_users: Any
) -> None:
    erin = unix_users["erin"]
    made = run_as(erin, "dir-create", "slow", "--type", "blank")
    assert made.returncode == 0, made.stderr
    dockerfile = ds01_home / "ws" / erin.name / "slow" / "Dockerfile"
    dockerfile.write_text(DOCKERFILE.format(base=base_image_ref))
    os.chown(dockerfile, erin.uid, erin.gid)
    image = f"ds01-{erin.uid}/slow:latest"

    proc = popen_as(erin, "image-create", "slow", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not engine_clean.api.containers(filters={"status": "running"}):  # the `sleep 2` step runs
        assert proc.poll() is None, "the build ended before it could be cut"
        assert time.monotonic() < deadline, "the build never reached its RUN step"
        time.sleep(0.05)
    assert engine_clean.api.images(name=image) == []  # not tagged while it builds
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    deadline = time.monotonic() + 60
    while not engine_clean.api.images(name=image):
        assert time.monotonic() < deadline, "the build did not finish without its client"
        time.sleep(0.2)
    info = engine_clean.api.inspect_image(image)
    assert info["Config"]["Labels"]["ds01.uid"] == str(erin.uid)  # ds01d's labels: the whole build
    out = engine_clean.containers.run(
        image, ["cat", "/one", "/two", "/three"], remove=True, network_mode="none"
    )
    assert out.decode().split() == ["one", "two", "three"]
    deadline = time.monotonic() + 10
    while not [e for e in events(ds01_home) if e["event_type"] == "image_build"]:
        assert time.monotonic() < deadline, "no image_build event"
        time.sleep(0.1)
    assert engine_clean.api.containers(all=True) == []  # no build container left
    assert engine_clean.api.images(filters={"dangling": True}) == []
    assert ds01d_serves(erin)
