"""Real Unix users for isolation tests, and running ds01's commands as them: directly, as on a lab server
(no sudo rule, no docker group: the commands are clients of ds01d)."""

from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

USER_GROUP = "ds01-testers"
# What a client may read from its environment (CONTRACT §3): nothing else reaches the commands.
KEEP_ENV = ("DS01_SOCKET", "DS01_DEBUG", "COLUMNS", "NO_COLOR")


@dataclass(frozen=True)
class TestUser:
    __test__ = False  # a test account, not a test class
    name: str
    uid: int
    gid: int
    home: Path


def bin_dir() -> Path:
    return Path(sys.executable).parent


def ensure_user(name: str) -> TestUser:
    subprocess.run(["groupadd", "-f", USER_GROUP], check=True)
    try:
        pwd.getpwnam(name)
    except KeyError:
        # no check: a concurrent test run may have just made the same user (useradd exits 9)
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", "-G", USER_GROUP, name], capture_output=True)
    entry = pwd.getpwnam(name)
    return TestUser(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def remove_user(name: str) -> None:
    subprocess.run(["userdel", "-r", "-f", name], capture_output=True)


def run_as(
    user: TestUser | str,
    command: str,
    *args: str,
    input: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: str = "/",
) -> subprocess.CompletedProcess[str]:
    """Run a ds01 console script as a real Unix user, with only the environment a login would give."""
    name = user if isinstance(user, str) else user.name
    exe = str(bin_dir() / command)
    full_env = {k: v for k, v in os.environ.items() if k in KEEP_ENV or k in ("PATH", "LANG", "TERM")}
    full_env.update(env or {})
    argv = ["runuser", "-u", name, "--", "env", "-i", *[f"{k}={v}" for k, v in full_env.items()], exe, *args]
    return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """The finished command, asserted to have exited 0 (its code and output in the failure)."""
    assert result.returncode == 0, f"rc {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


DS01_HOME_FILES = ("ds01-quickstart.md", "workspace")  # what user-setup puts in a home


@contextlib.contextmanager
def without_ds01_files(user: TestUser, tag: str) -> Iterator[TestUser]:
    """`user`'s home without ds01's files for a while, then put back as it was (the accounts outlive a test);
    the files wait meanwhile as `.NAME.TAG`."""
    saved = {}
    for name in DS01_HOME_FILES:
        path = user.home / name
        if os.path.lexists(path):
            saved[path] = user.home / f".{name}.{tag}"
            os.rename(path, saved[path])
    try:
        yield user
    finally:
        for name in DS01_HOME_FILES:
            path = user.home / name
            if path.is_symlink() or path.is_file():
                path.unlink()
        for path, backup in saved.items():
            os.rename(backup, path)
