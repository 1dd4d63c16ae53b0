"""attach and run through ds01d: the engine's exec stream handed to the client, as a real user, on pipes and
on a real terminal (a pty), and the interactive pick of a missing NAME."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time

import pytest

from harness import users
from harness.users import ok, run_as

pytestmark = pytest.mark.docker


def state(api, ref: str) -> str:
    return str(api.inspect_container(ref)["State"]["Status"])


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def in_terminal(
    user: users.TestUser,
    command: str,
    *args: str,
    steps: list[tuple[bytes, bytes | tuple[int, int]]],
    size: tuple[int, int] = (24, 80),
    timeout: float = 30,
) -> tuple[int, str]:
    """Run a ds01 command as `user` on a fresh pty (its controlling terminal); for each step, once `after`
    has been shown, type the keys (bytes) or resize the window (rows, cols)."""
    env = {k: v for k, v in os.environ.items() if k in users.KEEP_ENV or k in ("PATH", "LANG")}
    env["TERM"] = "xterm"
    argv = ["runuser", "-u", user.name, "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()],
            str(users.bin_dir() / command), *args]  # fmt: skip
    master, slave = pty.openpty()
    set_size(slave, *size)
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, cwd="/",
                            preexec_fn=_controlling_tty)  # fmt: skip
    os.close(slave)
    out, seen, todo, deadline = b"", 0, list(steps), time.monotonic() + timeout
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
            if todo and todo[0][0] in out[seen:]:
                after, action = todo.pop(0)
                seen = out.index(after, seen) + len(after)
                if isinstance(action, tuple):
                    set_size(master, *action)
                else:
                    time.sleep(0.2)  # let the shell reach its prompt read
                    os.write(master, action)
        return proc.wait(timeout=10), out.decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


@pytest.fixture
def alice(unix_users):
    return unix_users["alice"]


@pytest.fixture
def thesis(ds01_home, engine_clean, alice, base_image_ref):
    ok(run_as(alice, "container-create", "thesis", "--image", base_image_ref))
    ok(run_as(alice, "container-start", "thesis"))
    return f"thesis._.{alice.uid}"


# -- on pipes --------------------------------------------------------------------------------------------
def test_run_runs_the_command_as_the_user_in_workspace(thesis, alice):
    result = ok(run_as(alice, "container-run", "thesis", "--", "sh", "-c", "id -u; id -g; pwd"))
    assert result.stdout.split() == [str(alice.uid), str(alice.gid), "/workspace"]


def test_run_passes_the_exit_code_through(thesis, alice):
    assert run_as(alice, "container-run", "thesis", "--", "sh", "-c", "exit 7").returncode == 7
    assert run_as(alice, "container-run", "thesis", "--", "false").returncode == 1


def test_stdin_is_piped_in_and_stdout_and_stderr_stay_apart(thesis, alice):
    text = "first line\n" + "x" * 300_000 + "\nlast line\n"  # more than one frame and one socket buffer
    result = ok(run_as(alice, "container-run", "thesis", "--", "cat", input=text))
    assert result.stdout == text
    result = ok(run_as(alice, "container-run", "thesis", "--", "sh", "-c", "echo out; echo err >&2"))
    assert result.stdout == "out\n" and "err\n" in result.stderr and "out" not in result.stderr


def test_run_starts_a_stopped_container_first(thesis, alice, engine_clean):
    engine_clean.api.stop(thesis, timeout=1)
    result = ok(run_as(alice, "container-run", "thesis", "--", "echo", "hi"))
    assert result.stdout == "hi\n" and "started thesis" in result.stderr
    assert state(engine_clean.api, thesis) == "running"


def test_attach_to_a_stopped_container_points_to_start_and_run(thesis, alice, engine_clean):
    engine_clean.api.stop(thesis, timeout=1)
    result = run_as(alice, "container-attach", "thesis")
    assert result.returncode == 1, result.stderr
    assert "not running" in result.stderr and "container-run thesis" in result.stderr
    assert "Traceback" not in result.stderr
    assert state(engine_clean.api, thesis) == "exited"  # attach never starts it
    assert not engine_clean.api.inspect_container(thesis).get("ExecIDs")


def test_run_without_command_and_without_terminal_is_a_usage_error(thesis, alice):
    result = run_as(alice, "container-run", "thesis")
    assert result.returncode == 2 and "--" in result.stderr


def test_a_missing_container_is_exit_3(ds01_home, engine_clean, alice):
    result = run_as(alice, "container-run", "nothere", "--", "true")
    assert result.returncode == 3 and "nothere" in result.stderr


# -- on a terminal ----------------------------------------------------------------------------------------
def test_attach_gives_a_login_shell_as_the_user_in_workspace(thesis, alice, engine_clean):
    code, out = in_terminal(alice, "container-attach", "thesis",
                            steps=[(b"$ ", b"id -u; pwd; tty\n"), (b"/dev/pts", b"exit 3\n")])  # fmt: skip
    assert code == 3, out  # the shell's exit code comes back
    assert f"\r\n{alice.uid}\r\n/workspace\r\n/dev/pts/" in out
    assert state(engine_clean.api, thesis) == "running"  # leaving the shell leaves the container running


def test_ctrl_d_leaves_and_the_window_size_follows_the_terminal(thesis, alice):
    code, out = in_terminal(alice, "container-run", "thesis", size=(33, 101),
                            steps=[(b"$ ", b"stty size\n"), (b"33 101", (40, 120)),
                                   (b"$ ", b"stty size\n"), (b"40 120", b"\x04")])  # fmt: skip
    assert code == 0, out
    assert "33 101" in out and "40 120" in out


def test_run_a_command_on_a_terminal(thesis, alice):
    code, out = in_terminal(alice, "container-run", "thesis", "--", "sh", "-c", "tty; exit 4", steps=[])
    assert code == 4, out
    assert "/dev/pts/" in out


def test_a_missing_name_on_a_terminal_offers_a_numbered_choice(thesis, alice, engine_clean, base_image_ref):
    ok(run_as(alice, "container-create", "other", "--image", base_image_ref))
    code, out = in_terminal(alice, "container-attach", steps=[(b"Which container", b"1\r"),
                                                              (b"$ ", b"echo in-$((40+2))\n"),
                                                              (b"in-42", b"exit\n")])  # fmt: skip
    assert code == 0, out
    assert "1) thesis" in out and "other" not in out  # only running ones are offered to attach
    result = run_as(alice, "container-attach")
    assert result.returncode == 2 and "NAME" in result.stderr  # no terminal: a usage error
