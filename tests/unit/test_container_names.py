"""Bad names and bad options are refused by the client before any request: exit 2 and one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
BAD = ["a/b", "..", "   ", "thésis", "x" * 200, "a;rm -rf ~", "$(id)", "-dash", "a..b", "a._.b", "x._.y._.1"]


def run(*argv: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    # a ds01d socket that answers nothing: a check that reached ds01d would exit 6
    env = dict(os.environ, DS01_SOCKET=f"{tmp}/none.sock")
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


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--mig-profile", ""], "--mig-profile"),
        (["--command", '"unterminated'], "--command"),
        (["--command", "x", "--image-cmd"], "--image-cmd"),
    ],
)
def test_bad_create_options_are_usage_errors(tmp_path, options, words):
    result = run("container-create", "thesis", *options, tmp=tmp_path)
    assert result.returncode == 2 and words in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


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
