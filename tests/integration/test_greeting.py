"""The login greeting: ds01d keeps each user's summary current; /etc/profile.d/ds01.sh prints it, fast."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.users import run_as

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "profile.d" / "ds01.sh"
BIN = Path(sys.executable).parent


def login_shell(user, ds01_home, *, announcement: Path | None = None, measure: bool = False):
    """An interactive bash of `user` that sources the greeting (as a login does), timed with EPOCHREALTIME."""
    env = [f"DS01_RUN_DIR={ds01_home}", "PATH=/usr/bin:/bin", "HOME=" + str(user.home)]
    if announcement:
        env.append(f"DS01_ANNOUNCEMENT={announcement}")
    body = f". {SCRIPT}"
    if measure:
        body = f"s=$EPOCHREALTIME; for i in 1 2 3 4 5 6 7 8 9 10; do . {SCRIPT} >/dev/null; done; "
        body += "e=$EPOCHREALTIME; "
        body += 'echo "$s $e"'
    argv = ["runuser", "-u", user.name, "--", "env", "-i", *env, "bash", "--norc", "-i", "-c", body]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd="/")


def wait_greeting(path: Path, needle: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = path.read_text()
            if needle in text:
                return text
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{path} did not say {needle!r} within {timeout} s")


def test_greeting_shows_quota_containers_countdowns_alerts_and_announcement(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    alice, bob = unix_users["alice"], unix_users["bob"]
    ds01_home.reconfigure(policies={"grace_period_m": 0, "idle_detection_window": 1})
    r = run_as(alice, "container-deploy", "greet", "--gpus", "1", "--image", base_image_ref, "--background",
               "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    held = json.loads(r.stdout)["gpus"][0]
    greeting = ds01_home / "users" / str(alice.uid) / "greeting"
    text = wait_greeting(greeting, "greet")
    limits = json.loads(run_as(alice, "check-limits", "--json").stdout)
    quota = limits["limits"]["max_gpu_equivalents"]
    assert (
        f"holds {round(held['gpueq'], 4):g} of {quota:g} GPU-equivalents" in text
        and f"GPU {held['slot']}" in text
    )

    # a reaper pass (as root, an admin) starts the lifecycle record: countdowns appear; an alert too
    with open(ds01_home / "log" / "events.jsonl", "a") as log:
        log.write(json.dumps({
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event_type": "idle_warning",
            "user": alice.name, "container": f"greet._.{alice.uid}", "details": {"reason": "idle 20 min"},
        }) + "\n")  # fmt: skip
    r = subprocess.run([str(BIN / "ds01-reaper"), "--once"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text = wait_greeting(greeting, "runtime limit in")
    assert "idle stop in" in text and "idle warning: greet" in text

    st = os.stat(greeting)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o444
    folder = os.stat(greeting.parent)
    assert folder.st_uid == alice.uid and stat.S_IMODE(folder.st_mode) == 0o700

    note = ds01_home / "announcement"
    note.write_text("Maintenance on Friday 18:00.\n")
    note.chmod(0o644)
    shell = login_shell(alice, ds01_home, announcement=note)
    assert (
        f"holds {round(held['gpueq'], 4):g} of" in shell.stdout
        and "greet" in shell.stdout
        and "runtime limit in" in shell.stdout
    )
    assert "Maintenance on Friday" in shell.stdout
    # another user sees neither alice's greeting nor an error
    other = login_shell(bob, ds01_home, announcement=note)
    assert "greet" not in other.stdout and "Maintenance on Friday" in other.stdout
    assert "Permission denied" not in other.stderr

    timed = login_shell(alice, ds01_home, measure=True)
    start, end = map(float, timed.stdout.split()[-2:])
    per_login = (end - start) / 10
    print(f"greeting: {per_login * 1000:.2f} ms per login")
    assert per_login < 0.01


def test_the_greeting_empties_after_retire_and_a_planted_link_is_replaced(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    alice = unix_users["alice"]
    r = run_as(alice, "container-deploy", "brief", "--image", base_image_ref, "--cpu-only", "--background")
    assert r.returncode == 0, r.stderr
    greeting = ds01_home / "users" / str(alice.uid) / "greeting"
    wait_greeting(greeting, "brief")
    # alice owns her folder: she swaps the file for a link to a file of root's; ds01d replaces the link
    victim = ds01_home / "state" / "victim"
    victim.write_text("root's\n")
    subprocess.run(["runuser", "-u", alice.name, "--", "sh", "-c",
                    f"rm -f {greeting} && ln -s {victim} {greeting}"], check=True)  # fmt: skip
    r = run_as(alice, "container-retire", "brief", "--yes")
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (greeting.is_symlink() or greeting.read_text()):
        time.sleep(0.2)
    assert not greeting.is_symlink() and greeting.read_text() == ""
    assert victim.read_text() == "root's\n"


def test_a_greeting_left_from_before_a_restart_is_emptied(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    alice = unix_users["alice"]
    r = run_as(alice, "container-deploy", "gone", "--image", base_image_ref, "--cpu-only", "--background")
    assert r.returncode == 0, r.stderr
    greeting = ds01_home / "users" / str(alice.uid) / "greeting"
    wait_greeting(greeting, "gone")
    from harness import daemon

    daemon.stop_ds01d(ds01_home.server)
    for c in engine_clean.containers.list(all=True):  # the container goes while ds01d is down
        c.remove(force=True)
    ds01_home.restart()
    deadline = time.monotonic() + 15
    while "gone" in greeting.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert greeting.read_text() == ""


GPU_SCRIPT = ROOT / "deploy" / "profile.d" / "ds01-gpu.sh"


def _cuda_in_login(user, ds01_home) -> subprocess.CompletedProcess[str]:
    body = f'. {GPU_SCRIPT}; echo "cuda=[${{CUDA_VISIBLE_DEVICES-unset}}]"'
    env = [f"DS01_RUN_DIR={ds01_home}", "PATH=/usr/bin:/bin", "HOME=" + str(user.home)]
    argv = ["runuser", "-u", user.name, "--", "env", "-i", *env, "bash", "--norc", "-i", "-c", body]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd="/")


def test_host_gpus_are_hidden_from_non_admin_logins_only_when_the_config_says_so(ds01_home, unix_users):
    """Issue 14: a lab may deter GPU work outside containers (gpu.deter_host_use, off by default)."""
    alice, bob = unix_users["alice"], unix_users["bob"]
    marker = Path(ds01_home) / "deter-host-gpu"
    off = _cuda_in_login(alice, ds01_home)
    assert "cuda=[unset]" in off.stdout and not marker.exists()
    ds01_home.reconfigure(
        gpu={"deter_host_use": True},
        groups={"admin": {"admin": True, "members": [bob.name]}, "student": {"members": [alice.name]}},
    )
    ds01_home.restart()  # the notice file is written at start and every greeting round
    deadline = time.monotonic() + 15
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stat.S_IMODE(marker.stat().st_mode) == 0o644 and marker.stat().st_uid == 0
    student = _cuda_in_login(alice, ds01_home)
    assert "cuda=[]" in student.stdout and "GPUs here are for containers" in student.stdout
    admin = _cuda_in_login(bob, ds01_home)
    assert "cuda=[unset]" in admin.stdout and "for containers" not in admin.stdout
    ds01_home.reconfigure(gpu={"deter_host_use": False})
    ds01_home.restart()
    deadline = time.monotonic() + 15
    while marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "cuda=[unset]" in _cuda_in_login(alice, ds01_home).stdout
