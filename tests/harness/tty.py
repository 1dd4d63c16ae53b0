"""A real user at a real terminal: a console script run as that user (runuser, no sudo) on a pseudo-terminal,
its screen read until a text shows (with a deadline), keys typed, its exit code."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import time
from typing import Any

from harness.users import KEEP_ENV, bin_dir

ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """`text` without the terminal's colour and cursor escapes."""
    return ESCAPES.sub("", text)


def spawn(user: Any, *argv: str, env: dict[str, str] | None = None) -> tuple[int, int]:
    """`argv[0]` (a console script of this checkout) with `argv[1:]`, run as `user` on a new pseudo-terminal
    of 120x40 (`env` may say otherwise); returns (the child's pid, the terminal's fd)."""
    full = {k: v for k, v in os.environ.items() if k in (*KEEP_ENV, "PATH")}
    full.update({"TERM": "xterm", "COLUMNS": "120", "LINES": "40", **(env or {})})
    pid, fd = pty.fork()
    if pid == 0:  # the child: the user, on a real terminal, running the command directly
        os.execvpe("runuser", ["runuser", "-u", user.name, "--", str(bin_dir() / argv[0]), *argv[1:]], full)
    return pid, fd


def read_until(
    fd: int,
    pattern: str | None,
    timeout: float = 60,
    *,
    seen: str = "",
    strip: bool = False,
    size: int = 4096,
) -> str:
    """Read the terminal until `pattern` shows in what arrives after `seen` (None: until the command has
    gone); returns `seen` and all that arrived (with `strip`, searched and returned without escapes). Not
    seen by the deadline: an AssertionError showing the screen's tail."""
    start, end = len(seen), time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, size).decode(errors="replace")
            except OSError:  # EIO: the command and its terminal have gone
                chunk = ""
            if not chunk:
                if pattern is None:
                    return seen
                break
            seen += chunk
            if pattern is not None and re.search(pattern, plain(seen[start:]) if strip else seen[start:]):
                return plain(seen) if strip else seen
    shown = plain(seen) if strip else seen
    raise AssertionError(f"never saw {pattern!r}; the terminal showed:\n{shown[-3000:]}")


def wait_exit(pid: int, fd: int, timeout: float = 120) -> tuple[int | None, str]:
    """Wait for the command to end, reading what it still shows: (its exit code, or None if it still runs at
    the deadline; the text that arrived)."""
    text, end = "", time.monotonic() + timeout
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), text
        if select.select([fd], [], [], 0.5)[0]:
            with contextlib.suppress(OSError):  # EIO once the command has gone
                text += os.read(fd, 4096).decode(errors="replace")
    return None, text


def reap(pid: int, fd: int, kill: bool = False) -> int:
    """Wait for the command to end (killed first with `kill`: a dialogue that went wrong), close the
    terminal; returns its exit code."""
    if kill:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status)


def stop(pid: int, fd: int) -> None:
    """Kill the command if it still runs, reap it and close the terminal."""
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    os.close(fd)


class Terminal:
    """A command run as a user on a pseudo-terminal; `screen` is all it has shown."""

    def __init__(self, user: Any, *argv: str, env: dict[str, str] | None = None) -> None:
        self.pid, self.fd = spawn(user, *argv, env=env)
        self.argv0 = argv[0]
        self.screen = ""

    def expect(self, pattern: str, timeout: float = 90) -> str:
        """Read until `pattern` shows in what arrives from now on; returns the whole screen."""
        self.screen = read_until(self.fd, pattern, timeout, seen=self.screen)
        return self.screen

    def send(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def finish(self, timeout: float = 120) -> int:
        """The command's exit code once it ends by itself (killed at the deadline: an AssertionError)."""
        code, text = wait_exit(self.pid, self.fd, timeout)
        self.screen += text
        if code is None:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
            raise AssertionError(f"{self.argv0} did not finish:\n{self.screen[-3000:]}")
        return code

    def close(self) -> None:
        stop(self.pid, self.fd)
