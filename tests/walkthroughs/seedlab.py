"""What the walkthrough tests share: a student (a real Unix user) typing ds01 commands against the real
ds01d and the private engine, and the lab's Python base image stood in for offline.

The private engine has no registry, so the lab's `ds01/python:3.11` base (what `--framework python` builds
FROM) is the busybox image plus three small shell scripts standing in for Python's programs:

- `python FILE ARGS` / `python3 FILE ARGS` runs FILE with sh (the walkthroughs' train.py and api.py are sh);
- `pip install [-r FILE] PKG...` records the packages (root at build time: in the image; the user in a
  running container: in ~/.local, which goes with the container), `pip list` prints them;
- `pytest` runs every test_*.py under the current folder with sh and fails when one fails (5: none found).

The ds01 side (ds01d, builds, containers, GPUs, workspaces) is all real.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.tty import read_until, spawn
from harness.users import TestUser, run_as

PYTHON_BASE = "ds01/python:3.11"  # what the catalogue maps `--framework python` to

PYTHON = """\
#!/bin/sh
# Stands in for Python in the offline test base (see tests/walkthroughs/seedlab.py).
if [ "$1" = -m ] && [ "$2" = pip ]; then
  shift 2
  if [ "$(id -u)" = 0 ]; then rec=/usr/lib/python3-installed; else
    mkdir -p "$HOME/.local"; rec="$HOME/.local/python3-installed"; fi
  case "$1" in
    install)
      shift
      while [ $# -gt 0 ]; do
        case "$1" in
          -r) grep -v '^[[:space:]]*#' "$2" | grep . >> "$rec"; shift ;;
          -*) ;;
          *) echo "$1" >> "$rec" ;;
        esac
        shift
      done
      ;;
    list) cat /usr/lib/python3-installed "$HOME/.local/python3-installed" 2>/dev/null ;;
  esac
  exit 0
fi
exec sh "$@"
"""
PIP = '#!/bin/sh\nexec python3 -m pip "$@"\n'
PYTEST = """\
#!/bin/sh
# Stands in for pytest: each test_*.py under the current folder runs with sh; exit 1 if one fails.
n=0; failed=0
for t in $(find . -name 'test_*.py' | sort); do
  n=$((n + 1))
  if sh "$t"; then echo "$t PASSED"; else echo "$t FAILED"; failed=$((failed + 1)); fi
done
[ "$n" = 0 ] && { echo "no tests ran"; exit 5; }
echo "$((n - failed)) passed, $failed failed"
[ "$failed" = 0 ]
"""
BASE_DOCKERFILE = "FROM ds01-test/busybox:latest\nCOPY usr/ /usr/\n"  # one step, no RUN: quick
FILES = {  # path in the image -> (text, mode)
    "usr/bin/python3": (PYTHON, 0o755),
    "usr/bin/python": (PYTHON, 0o755),
    "usr/bin/pip": (PIP, 0o755),
    "usr/bin/pytest": (PYTEST, 0o755),
    "usr/lib/python3-installed": ("", 0o644),
}


def _context() -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (text, mode) in {"Dockerfile": (BASE_DOCKERFILE, 0o644), **FILES}.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@dataclass
class Student:
    """One user at a terminal on the lab server; `ds01(...)` is one command line typed."""

    user: TestUser
    world: Path
    engine: Any  # docker-py client, for looking (never for acting)

    @property
    def name(self) -> str:
        return self.user.name

    def ds01(
        self, *argv: str, input: str | None = None, cwd: str = "/", env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """A ds01 command line that must succeed."""
        result = run_as(self.user, *argv, input=input, cwd=cwd, env=env, timeout=180)
        assert result.returncode == 0, (
            f"{' '.join(argv)} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
        return result

    def try_ds01(self, *argv: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return run_as(self.user, *argv, timeout=180, **kw)

    def json(self, *argv: str, **kw: Any) -> Any:
        return json.loads(self.ds01(*argv, "--json", **kw).stdout)

    def workspace(self, project: str) -> Path:
        """What ~/workspace/PROJECT is (user-setup links ~/workspace to the user's workspace folder)."""
        return self.world / "ws" / self.name / project

    def sh(self, script: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """A line typed at the server's own shell (not in a container), as the user."""
        return subprocess.run(
            ["runuser", "-u", self.name, "--", "sh", "-c", script],
            input=input, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def write(self, path: Path, text: str) -> None:
        """Write a file as the user (an editor save)."""
        done = self.sh(f'mkdir -p "{path.parent}" && cat > "{path}"', input=text)
        assert done.returncode == 0, done.stderr

    def gpu_slots(self) -> dict[str, str]:
        """slot -> container, for the slots this user holds (gpu-status --json, as the user sees it)."""
        status = self.json("gpu-status")
        return {
            s["id"]: s["holder"]["container"]
            for s in status["slots"]
            if s["holder"] and s["holder"]["user"] == self.name
        }

    def containers(self) -> dict[str, str]:
        """ds01 container name -> engine status, from the engine itself."""
        found = self.engine.containers.list(
            all=True, filters={"label": [f"ds01.uid={self.user.uid}"]}, ignore_removed=True
        )
        return {c.labels["ds01.project"]: c.status for c in found}

    def image_id(self, project: str) -> str:
        return str(self.engine.api.inspect_image(f"ds01-{self.user.uid}/{project}:latest")["Id"])


def make_student(ds01_home: Path, engine_clean: Any, base_image_ref: str, user: TestUser) -> Student:
    engine_clean.images.build(fileobj=_context(), custom_context=True, tag=PYTHON_BASE, rm=True)
    return Student(user, ds01_home, engine_clean)


def new_project(student: Student, name: str) -> Path:
    """`project-init NAME` with the answers of a plain Python project (no git: quicker)."""
    student.ds01("project-init", name, "--type", "custom", "--framework", "python", "--no-git", "--yes")
    return student.workspace(name)


def on_terminal(
    student: Student, argv: list[str], dialogue: list[tuple[str, str]], timeout: float = 120
) -> str:
    """Run a command on a real terminal as the student: for each (pattern, keys), wait until the screen shows
    pattern, then type keys. Returns the screen; the command must exit 0."""
    pid, fd = spawn(student.user, *argv)  # the user, on a real terminal, running the command directly
    screen, status = "", None
    try:
        for pattern, keys in dialogue:
            screen = read_until(fd, pattern, timeout, seen=screen)
            os.write(fd, keys.encode())
        screen = read_until(fd, None, timeout, seen=screen)  # to the end
        _, status = os.waitpid(pid, 0)
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    code = os.waitstatus_to_exitcode(status) if status is not None else None
    assert code == 0, f"{' '.join(argv)} -> {code}; the terminal showed:\n{screen[-3000:]}"
    return screen
