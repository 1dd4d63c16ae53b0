"""The CLI's shape: three ways to each command, --version, and failures without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.users import run_as

BIN = Path(sys.executable).parent


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full = dict(os.environ, **(env or {}))
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, env=full, timeout=60
    )


def test_version():
    from ds01 import __version__

    result = run("ds01", "--version")
    assert result.returncode == 0 and result.stdout.strip() == f"ds01 {__version__}"


def test_root_help_lists_the_groups():
    result = run("ds01", "--help")
    assert result.returncode == 0
    for group in ("container", "image", "project", "user", "gpu", "check-limits", "doctor"):
        assert group in result.stdout


def test_per_command_script_names_itself_in_help():
    result = run("check-limits", "--help")
    assert result.returncode == 0 and "Usage: check-limits" in result.stdout


def test_unknown_option_is_a_usage_error():
    assert run("check-limits", "--bogus").returncode == 2


@pytest.mark.parametrize("json_flag", [False, True])
@pytest.mark.parametrize("engine", ["unix://{tmp}/nothing.sock", "tcp://127.0.0.1:1"])
def test_engine_unreachable_exits_6_with_a_hint_and_no_traceback(ds01_home, unix_users, json_flag, engine):
    ds01_home.restart(DOCKER_HOST=engine.format(tmp=ds01_home))
    result = run_as(unix_users["alice"], "container-list", *(["--json"] if json_flag else []))
    assert result.returncode == 6
    assert "Traceback" not in result.stderr + result.stdout
    assert "cannot reach the Docker engine" in result.stderr or "refused" in result.stderr
    if json_flag:
        assert json.loads(result.stdout)["error"]["code"] == "engine_unavailable"


def test_a_bad_config_stops_ds01d_with_file_and_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("defaults:\n  max_cpu: 4\n")
    result = run("ds01d", "--config", str(cfg), "--socket", str(tmp_path / "s.sock"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {cfg}:2: defaults.max_cpu: unknown key (did you mean 'max_cpus'?)"
    )


def test_debug_shows_the_traceback(tmp_path):
    env = {"DS01_SOCKET": str(tmp_path / "none.sock")}
    quiet = run("container-list", env=env)
    assert quiet.returncode == 6 and "Traceback" not in quiet.stderr
    loud = run("container-list", env={**env, "DS01_DEBUG": "1"})
    assert loud.returncode == 6 and "Traceback" in loud.stderr


@pytest.mark.docker
def test_a_closed_stdout_is_a_quiet_exit(ds01_home, engine_clean, unix_users):
    """`container-list --json | head` with the reader already gone: no BrokenPipeError trace."""
    argv = ["runuser", "-u", unix_users["alice"].name, "--", "env", f"DS01_SOCKET={ds01_home.socket}",
            str(BIN / "container-list"), "--json"]  # fmt: skip
    read, write = os.pipe()
    os.close(read)
    done = subprocess.run(argv, stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    os.close(write)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_event_log_lines_are_whole_json_under_concurrent_writers(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from ds01.events import log_event, read_events

    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: log_event(tmp_path, "create", user="u", container=f"c{i}", n=i, pad="x" * 3000),
                range(200),
            )
        )
    events = read_events(tmp_path)
    assert len(events) == 200 and {e["details"]["n"] for e in events} == set(range(200))
    assert set(events[0]) == {"timestamp", "event_type", "user", "container", "details"}


def test_event_log_never_raises(tmp_path):
    from ds01.events import log_event

    blocker = tmp_path / "file"
    blocker.write_text("")
    log_event(blocker / "sub", "create", user="u", container="c")  # a file where a dir should be


def test_concepts_explains_the_three_ideas_in_one_screen():
    result = run("ds01", "concepts")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) <= 40 and max(len(line) for line in lines) <= 110
    for idea in ("image      the recipe", "container  the laptop you check out and hand back",
                 "workspace  the hard drive that stays"):  # fmt: skip
        assert idea in result.stdout


def test_a_plain_table_carries_no_markup():
    """`ds01 doctor | cat` once printed `[green]ok[/green]`: pipes and files get the words only."""
    import io

    from ds01.output import Output

    buf = io.StringIO()
    Output(stdout=buf).table(
        ["check", "status"], [["ds01d", "[green]ok[/green]"], ["gpus", "[yellow]warning[/yellow]"]]
    )
    assert buf.getvalue().splitlines() == ["check  status", "ds01d  ok", "gpus   warning"]
