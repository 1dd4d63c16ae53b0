"""F5 and the state ds01d keeps: the reservation lock, the state and log dirs and the event log are root's
alone. A user can neither hold the lock (and stall every create on the host) nor read the event log; they
read their own events through ds01d."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.users import bin_dir, run_as

pytestmark = pytest.mark.docker

GRAB_LOCK = """
import fcntl, os, sys
try:
    fd = os.open(sys.argv[1], os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError as exc:
    print(type(exc).__name__)
    sys.exit(3)
print("HELD")
"""

HAMMER_LOCK = """
import fcntl, os, sys, time
end = time.monotonic() + float(sys.argv[2])
tries = 0
while time.monotonic() < end:
    tries += 1
    for flags in (os.O_RDONLY, os.O_RDWR, os.O_RDWR | os.O_CREAT):
        try:
            fd = os.open(sys.argv[1], flags, 0o666)
        except OSError:
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("HELD", flush=True)
        time.sleep(60)
print(f"refused {tries}", flush=True)
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def deploy(user, name: str, image: str) -> subprocess.CompletedProcess[str]:
    return run_as(user, "container-deploy", name, "--gpus", "1", "--image", image, "--background", "--json")


def test_lock_state_and_events_are_root_only(ds01_home, engine_clean, base_image_ref, unix_users):
    alice = unix_users["alice"]
    assert deploy(alice, "s1", base_image_ref).returncode == 0
    lock = ds01_home / "state" / "gpu-reservation.lock"
    events = ds01_home / "log" / "events.jsonl"
    for path, want in (
        (ds01_home / "state", 0o700),
        (ds01_home / "log", 0o700),
        (lock, 0o600),
        (events, 0o600),
    ):
        assert mode(path) == want and os.lstat(path).st_uid == 0, path


def test_ds01d_makes_missing_state_and_log_dirs_root_only(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    fresh = ds01_home / "fresh"
    fresh.mkdir(mode=0o755)
    ds01_home.reconfigure(paths={"state_dir": str(fresh / "state"), "log_dir": str(fresh / "log")})
    assert deploy(unix_users["alice"], "s2", base_image_ref).returncode == 0
    assert mode(fresh / "state") == 0o700 and mode(fresh / "log") == 0o700
    assert mode(fresh / "state" / "gpu-reservation.lock") == 0o600
    assert mode(fresh / "log" / "events.jsonl") == 0o600


def test_an_older_installs_loose_modes_are_tightened(ds01_home, engine_clean, base_image_ref, unix_users):
    state, log = ds01_home / "state", ds01_home / "log"
    lock, events = state / "gpu-reservation.lock", log / "events.jsonl"
    lock.touch()
    events.touch()
    for path, loose in ((state, 0o1777), (log, 0o755), (lock, 0o666), (events, 0o644)):
        path.chmod(loose)
    assert deploy(unix_users["bob"], "s3", base_image_ref).returncode == 0
    assert (mode(state), mode(log), mode(lock), mode(events)) == (0o700, 0o700, 0o600, 0o600)


def test_f5_a_user_cannot_open_the_lock_even_with_the_dir_open(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    """Even where an admin loosened the state dir, the lock file itself is 0600: no open, no flock."""
    alice = unix_users["alice"]
    assert deploy(alice, "s4", base_image_ref).returncode == 0
    (ds01_home / "state").chmod(0o755)  # the worst case: the dir is readable
    lock = ds01_home / "state" / "gpu-reservation.lock"
    result = run_as(alice, "python", "-c", GRAB_LOCK, str(lock))
    assert result.returncode == 3 and "PermissionError" in result.stdout
    assert mode(lock) == 0o600


def test_f5_creates_keep_working_while_a_user_tries_to_hold_the_lock(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    alice, bob = unix_users["alice"], unix_users["bob"]
    (ds01_home / "state").chmod(0o755)  # even then
    lock = ds01_home / "state" / "gpu-reservation.lock"
    argv = ["runuser", "-u", bob.name, "--", str(bin_dir() / "python"), "-c", HAMMER_LOCK, str(lock), "12"]
    hammer = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        time.sleep(0.5)
        for i in range(3):
            started = time.monotonic()
            result = deploy(alice, f"busy{i}", base_image_ref)
            assert result.returncode == 0, result.stderr
            assert time.monotonic() - started < 8, "the create waited on a lock a user holds"
        out, _ = hammer.communicate(timeout=30)
    finally:
        if hammer.poll() is None:
            os.killpg(hammer.pid, 9)
            hammer.wait()
    assert "HELD" not in out and out.startswith("refused")
    assert len(engine_clean.containers.list(filters={"label": [f"ds01.uid={alice.uid}"]})) == 3


def test_a_user_cannot_read_the_event_log_but_reads_their_own_events_through_ds01d(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    alice, bob = unix_users["alice"], unix_users["bob"]
    assert deploy(alice, "mine", base_image_ref).returncode == 0
    assert deploy(bob, "his", base_image_ref).returncode == 0
    events = ds01_home / "log" / "events.jsonl"
    (ds01_home / "log").chmod(0o755)  # even with the dir open, the file is root's
    direct = run_as(alice, "python", "-c", f"print(open({str(events)!r}).read())")
    assert direct.returncode != 0 and "PermissionError" in direct.stderr
    assert mode(events) == 0o600
    own = run_as(alice, "ds01", "events", "--json")
    assert own.returncode == 0, own.stderr
    found = json.loads(own.stdout)
    assert {e["user"] for e in found} == {alice.name}
    assert any(e["event_type"] == "allocate" and e["container"] == f"mine._.{alice.uid}" for e in found)
    assert all("his" not in str(e["container"]) for e in found)


def test_the_state_of_the_reaper_is_root_only(ds01_home, engine_clean, unix_users):
    fresh = ds01_home / "fresh"
    fresh.mkdir(mode=0o755)
    ds01_home.reconfigure(paths={"state_dir": str(fresh / "state"), "log_dir": str(fresh / "log")})
    reaper = subprocess.run(
        [str(Path(sys.executable).parent / "ds01-reaper"), "--once", "--json"], capture_output=True, text=True
    )
    assert reaper.returncode == 0, reaper.stderr
    assert mode(fresh / "state") == 0o700 and mode(fresh / "state" / "reaper") == 0o700
