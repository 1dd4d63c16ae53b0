"""Real Unix users for isolation tests, and running ds01 as them through the lab's sudo rule."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

USER_GROUP = "ds01-testers"
# one rule file per test run, so that concurrent runs do not pull the rule from under each other
SUDOERS = Path(f"/etc/sudoers.d/ds01-tests-{os.getpid()}")
# The lab's rule: members may run ds01's commands as root; sudo sets SUDO_UID, which ds01 trusts as root.
KEEP_ENV = (
    "DOCKER_HOST",
    "DS01_CONFIG",
    "DS01_STATE_DIR",
    "DS01_LOG_DIR",
    "DS01_GPU_BACKEND",
    "DS01_GPU_INVENTORY",
    "DS01_DEBUG",
    "COLUMNS",
    "LD_LIBRARY_PATH",
    "DS01_NVML_LIBRARY",
)


@dataclass(frozen=True)
class TestUser:
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


def install_sudo_rule() -> None:
    rule = (
        f'Defaults:%{USER_GROUP} env_keep += "{" ".join(KEEP_ENV)}"\n'
        f"Defaults:%{USER_GROUP} !requiretty\n"
        f"%{USER_GROUP} ALL=(root) NOPASSWD: {bin_dir()}/\n"
    )
    SUDOERS.write_text(rule)
    SUDOERS.chmod(0o440)
    subprocess.run(["visudo", "-c", "-f", str(SUDOERS)], check=True, capture_output=True)


def remove_sudo_rule() -> None:
    SUDOERS.unlink(missing_ok=True)


def run_as(
    user: TestUser | str,
    command: str,
    *args: str,
    sudo: bool = True,
    input: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run a ds01 console script as a real Unix user: through sudo (the lab's way) or directly."""
    name = user if isinstance(user, str) else user.name
    exe = str(bin_dir() / command)
    full_env = {k: v for k, v in os.environ.items() if k in KEEP_ENV or k in ("PATH", "LANG", "TERM")}
    full_env.update(env or {})
    argv = ["runuser", "-u", name, "--", "env", *[f"{k}={v}" for k, v in full_env.items()]]
    argv += ["sudo", "-n", exe, *args] if sudo else [exe, *args]
    return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, cwd="/")
