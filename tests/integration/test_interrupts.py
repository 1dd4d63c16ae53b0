"""Ctrl-C is exit 130 (CONTRACT §5) end to end, for real: a question on a terminal, a build under way.
Nothing is left behind. (A deploy waiting in the queue: tests/integration/test_queue_wait.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.tty import read_until, reap, spawn
from harness.users import KEEP_ENV

pytestmark = pytest.mark.docker
BIN = Path(sys.executable).parent


def test_ctrl_c_at_a_wizard_question_is_130_and_makes_nothing(ds01_home, engine_clean, unix_users):
    carol = unix_users["carol"]
    pid, fd = spawn(carol, "project-init", "asked")  # on a real terminal: it asks what kind of project
    try:
        read_until(fd, r"(?i)type|kind")
        os.write(fd, b"\x03")  # Ctrl-C, as the terminal sends it
        read_until(fd, r"cancelled")
    finally:
        code = reap(pid, fd)
    assert code == 130
    assert not (ds01_home / "ws" / carol.name / "asked").exists()


def test_sigint_during_a_build_is_130_and_leaves_no_half_build(ds01_home, engine_clean, unix_users, tmp_path):
    dave = unix_users["dave"]
    src = Path(subprocess.run(["runuser", "-u", dave.name, "--", "mktemp", "-d"], capture_output=True,
                              text=True, check=True).stdout.strip())  # fmt: skip
    (src / "Dockerfile").write_text(
        "FROM ds01-test/busybox:latest\nRUN echo started && sleep 4\nRUN echo second\n"
    )
    os.chown(src / "Dockerfile", dave.uid, dave.gid)
    env = {k: v for k, v in os.environ.items() if k in (*KEEP_ENV, "PATH")}
    proc = subprocess.Popen(
        ["runuser", "-u", dave.name, "--", "env", *[f"{k}={v}" for k, v in env.items()],
         str(BIN / "image-create"), "slow", "--dockerfile", str(src / "Dockerfile")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if "started" in line or "step 2" in line.lower():
            break
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C goes to the whole foreground group
    rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, rest
    assert "Traceback" not in rest
    # ds01d finishes the build whole: the image is tagged with its owner, and no build container is left
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not engine_clean.api.images(name=f"ds01-{dave.uid}/slow"):
        time.sleep(0.2)
    while time.monotonic() < deadline and engine_clean.api.containers(all=True):
        time.sleep(0.2)
    assert engine_clean.api.containers(all=True) == []
    tagged = engine_clean.api.images(name=f"ds01-{dave.uid}/slow")
    assert tagged, "the interrupted client's build did not finish in ds01d"
    labels = engine_clean.api.inspect_image(tagged[0]["Id"])["Config"]["Labels"]
    assert labels["ds01.uid"] == str(dave.uid)
    subprocess.run(["rm", "-rf", str(src)], check=False)
