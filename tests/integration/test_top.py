"""`ds01 top` on a real terminal (tmux): slots with holders, users against quotas, countdowns."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.users import run_as

pytestmark = pytest.mark.docker
BIN = Path(sys.executable).parent


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=20).stdout


def screen_of(session: str, needle: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = tmux("capture-pane", "-p", "-t", session)
        if needle in text:
            return text
        time.sleep(0.3)
    raise AssertionError(f"{needle!r} not on the screen:\n{text}")


def deploy(user, name: str, image: str, *flags: str) -> dict:
    r = run_as(user, "container-deploy", name, "--image", image, "--background", "--json", *flags)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_top_live_on_a_terminal_shows_slots_quota_and_own_containers(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    alice, bob = unix_users["alice"], unix_users["bob"]
    held = deploy(alice, "vision", base_image_ref, "--gpus", "1")["gpus"][0]
    deploy(bob, "secret-proj", base_image_ref, "--cpu-only")
    subprocess.run([str(BIN / "ds01-reaper"), "--once"], capture_output=True, timeout=60, check=True)
    session = f"ds01top{alice.uid}"
    cmd = (f"runuser -u {alice.name} -- env -i DS01_SOCKET={ds01_home.socket} TERM=xterm-256color "
           f"{BIN / 'ds01'} top --interval 1")  # fmt: skip
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "50", cmd)
    try:
        text = screen_of(session, "vision")
        assert "ds01 top" in text and "slots" in text and "users" in text and "containers" in text
        slot_line = next(line for line in text.splitlines() if line.strip().startswith(held["slot"] + " "))
        assert alice.name in slot_line and "vision" in slot_line
        assert "secret-proj" not in text  # bob's container: not alice's to see
        assert bob.name not in text.split("users")[1]  # only alice's quota row
        assert "23h5" in text  # the runtime countdown (24 h, less a minute)
        r = run_as(alice, "container-retire", "vision", "--yes")
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 15
        while "vision" in tmux("capture-pane", "-p", "-t", session) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert "vision" not in tmux("capture-pane", "-p", "-t", session)  # the live view refreshed
        tmux("send-keys", "-t", session, "C-c")
        deadline = time.monotonic() + 10
        while session in tmux("ls") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert session not in tmux("ls"), "Ctrl-C did not end ds01 top"
    finally:
        tmux("kill-session", "-t", session)


def test_top_once_admin_sees_everyone_and_json(ds01_home, engine_clean, base_image_ref, unix_users):
    alice, bob = unix_users["alice"], unix_users["bob"]
    deploy(alice, "vision", base_image_ref, "--gpus", "1")
    deploy(bob, "nlp", base_image_ref, "--cpu-only")
    root = subprocess.run([str(BIN / "ds01"), "top", "--once"], capture_output=True, text=True, timeout=60)
    assert root.returncode == 0, root.stderr
    assert "vision" in root.stdout and "nlp" in root.stdout and bob.name in root.stdout
    mine = run_as(bob, "ds01", "top", "--once", "--json")
    assert mine.returncode == 0, mine.stderr
    doc = json.loads(mine.stdout)
    assert doc["scope"] == bob.name and [u["user"] for u in doc["users"]] == [bob.name]
    assert [c["name"] for c in doc["users"][0]["containers"]] == ["nlp"]
    held = [s for s in doc["slots"] if s["holder"]]
    assert held and held[0]["holder"]["user"] == alice.name  # the slots: everyone sees who holds them
