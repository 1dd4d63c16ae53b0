"""`ds01 events`: --until, --follow with JSON lines; users see only their own."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.users import run_as

pytestmark = pytest.mark.docker
BIN = Path(sys.executable).parent


def test_until_and_own_events_only(ds01_home, engine_clean, base_image_ref, unix_users):
    alice, bob = unix_users["alice"], unix_users["bob"]
    for who, name in ((alice, "one"), (bob, "two")):
        r = run_as(who, "container-deploy", name, "--image", base_image_ref, "--cpu-only", "--background")
        assert r.returncode == 0, r.stderr
    mine = json.loads(run_as(alice, "ds01", "events", "--json").stdout)
    assert mine and {e["user"] for e in mine} == {alice.name}
    first = mine[0]["timestamp"]
    before = json.loads(run_as(alice, "ds01", "events", "--until", first, "--json").stdout)
    assert before == []
    r = run_as(alice, "ds01", "events", "--until", "soon")
    assert r.returncode == 2 and "--until" in r.stderr


def test_follow_prints_new_events_as_json_lines(ds01_home, engine_clean, base_image_ref, unix_users):
    alice = unix_users["alice"]
    env = [f"DS01_SOCKET={ds01_home.socket}", "PATH=/usr/bin:/bin"]
    proc = subprocess.Popen(
        ["runuser", "-u", alice.name, "--", "env", "-i", *env, str(BIN / "ds01"), "events", "--follow",
         "--json", "--type", "create"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(1)
        for name in ("f1", "f2"):
            r = run_as(
                alice, "container-deploy", name, "--image", base_image_ref, "--cpu-only", "--background"
            )
            assert r.returncode == 0, r.stderr
        got: list[dict] = []
        buf = b""
        deadline = time.monotonic() + 15
        while len(got) < 2 and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                buf += os.read(proc.stdout.fileno(), 65536)
                *lines, buf = buf.split(b"\n")
                got += [json.loads(x) for x in lines if x]
        assert [e["container"].split("._.")[0] for e in got] == ["f1", "f2"]
        assert all(e["event_type"] == "create" for e in got)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=10)
