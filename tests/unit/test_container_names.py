"""Bad names are refused before anything is touched: exit 2 and one line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
BAD = ["a/b", "..", "   ", "thésis", "x" * 200, "a;rm -rf ~", "$(id)", "-dash", "a..b"]


def run(*argv: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    # an engine address that answers nothing: a name check that reached Docker would exit 6
    env = dict(
        os.environ, DOCKER_HOST=f"unix://{tmp}/none.sock", DS01_STATE_DIR=str(tmp), DS01_LOG_DIR=str(tmp)
    )
    env.pop("SUDO_UID", None)
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.parametrize("name", BAD)
@pytest.mark.parametrize("command", ["container-create", "container-start", "container-remove"])
def test_bad_names_exit_2_with_one_line(tmp_path, command, name):
    result = run(command, "--", name, tmp=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid name"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_name_without_a_terminal_exits_2_naming_the_argument(tmp_path):
    result = run("container-start", tmp=tmp_path)
    assert result.returncode == 2
    assert "missing argument NAME" in result.stderr and "container-start thesis" in result.stderr


def test_cpu_only_with_gpus_is_a_usage_error(tmp_path):
    result = run("container-create", "thesis", "--cpu-only", "--gpus", "1", tmp=tmp_path)
    assert result.returncode == 2 and "--cpu-only" in result.stderr


def test_every_command_has_help_with_examples():
    for verb in (
        "create",
        "start",
        "stop",
        "remove",
        "list",
        "stats",
        "attach",
        "run",
        "logs",
        "pause",
        "unpause",
    ):
        result = subprocess.run(
            [str(BIN / f"container-{verb}"), "--help"],
            capture_output=True,
            text=True,
            env=dict(os.environ, COLUMNS="200"),
        )
        assert result.returncode == 0 and "Examples:" in result.stdout, verb
        assert f"container-{verb}" in result.stdout
    grouped = subprocess.run([str(BIN / "ds01"), "container", "--help"], capture_output=True, text=True)
    assert all(v in grouped.stdout for v in ("create", "attach", "unpause"))
