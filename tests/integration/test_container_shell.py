"""attach and the interactive pick, on a real terminal (a pty) as a real user through sudo."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest

from harness import users
from harness.users import run_as

pytestmark = pytest.mark.docker


def ok(result):
    assert result.returncode == 0, f"rc {result.returncode}: {result.stderr}"
    return result


def in_terminal(
    user: users.TestUser, command: str, *args: str, keys: bytes, after: bytes, timeout: float = 30
) -> tuple[int, str]:
    """Run a ds01 command as `user` on a fresh pty; type `keys` once `after` has been shown."""
    env = {k: v for k, v in os.environ.items() if k in users.KEEP_ENV or k in ("PATH", "LANG")}
    env["TERM"] = "xterm"
    argv = ["runuser", "-u", user.name, "--", "env", *[f"{k}={v}" for k, v in env.items()],
            "sudo", "-n", str(users.bin_dir() / command), *args]  # fmt: skip
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, cwd="/")
    os.close(slave)
    out, typed, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the other side closed: the program ended
                    break
                if not chunk:
                    break
                out += chunk
            if not typed and after in out:
                os.write(master, keys)
                typed = True
        return proc.wait(timeout=10), out.decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


@pytest.fixture
def running(ds01_home, engine_clean, unix_users, base_image_ref):
    alice = unix_users["alice"]
    ok(run_as(alice, "container-create", "thesis", "--image", base_image_ref))
    ok(run_as(alice, "container-start", "thesis"))
    return alice


def test_attach_gives_a_shell_as_the_user_in_workspace_and_ctrl_d_leaves(running, engine_clean):
    code, out = in_terminal(running, "container-attach", "thesis", keys=b"id -u; pwd; echo $0\n\x04",
                            after=b"$ ")  # fmt: skip
    assert code == 0, out
    assert f"\r\n{running.uid}\r\n/workspace\r\nsh\r\n" in out  # busybox has no bash: sh it is
    state = engine_clean.api.inspect_container(f"thesis._.{running.uid}")["State"]["Status"]
    assert state == "running"  # leaving the shell leaves the container running


def test_attach_to_a_stopped_container_points_to_container_run(running):
    ok(run_as(running, "container-stop", "thesis"))
    result = run_as(running, "container-attach", "thesis")
    assert result.returncode == 1 and "container-run thesis" in result.stderr


def test_a_missing_name_on_a_terminal_offers_a_numbered_choice(running, engine_clean, unix_users,
                                                               base_image_ref):  # fmt: skip
    ok(run_as(running, "container-create", "other", "--image", base_image_ref))
    code, out = in_terminal(running, "container-stop", keys=b"1\r", after=b"Which container")
    assert code == 0, out
    assert "1) thesis" in out and "other" not in out  # only the running ones are offered to stop
    state = engine_clean.api.inspect_container(f"thesis._.{running.uid}")["State"]["Status"]
    assert state == "exited"
    assert run_as(running, "container-stop").returncode == 2  # no terminal: a usage error
