"""Cross-cutting checks of CONTRACT.md as an outside script author reads it (§4 names, flags, --json)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from inspect import unwrap
from pathlib import Path
from typing import Any

import pytest
import typer.main

from ds01.cli import entrypoints, main

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# CONTRACT §4: every command and the flags the table lists for it (plus --json on listing/status commands).
FLAGS: dict[str, set[str]] = {
    "container-create": {
        "--image", "--gpus", "--mig-profile", "--cpu-only", "--workspace", "--data", "--command", "--dry-run",
        "--json",
    },
    "container-start": {"--json"},
    "container-stop": {"--timeout", "--force", "--all"},
    "container-remove": {"--force"},
    "container-list": {"--all-users", "--status", "--json"},
    "container-stats": {"--json"},
    "container-attach": set(),
    "container-run": set(),
    "container-logs": {"--follow", "--tail"},
    "container-pause": set(),
    "container-unpause": set(),
    "image-create": {"--framework", "--type", "--dockerfile", "--no-build"},
    "image-list": {"--json"},
    "image-update": {"--add", "--add-system", "--remove", "-r", "--rebuild"},
    "image-delete": {"--force"},
    "dir-create": {"--type"},
    "git-init": {"--type"},
    "readme-create": {"--type"},
    "container-deploy": {
        "--gpus", "--mig-profile", "--cpu-only", "--image", "--background", "--open", "--json",
    },
    "container-retire": {"--all", "--save-changes", "--yes"},
    "user-setup": {"--yes"},
    "project-init": {"--type", "--framework", "--no-git", "--yes"},
    "project-launch": {"--open", "--background", "--rebuild", "--gpus", "--cpu-only"},
    "check-limits": {"--user", "--json"},
    "gpu-status": {"--json"},
    "ds01-doctor": {"--json"},
    "ds01-reaper": {"--once", "--dry-run", "--interval", "--json"},
}  # fmt: skip

# the dispatcher and root paths of each script; dir/git/readme have no dispatcher script on purpose
NO_DISPATCHER = {"dir", "git", "readme", "ds01", "check"}


def paths(script: str) -> tuple[list[str] | None, list[str]]:
    """(dispatcher argv or None, root-app argv) for a console script name."""
    if script.startswith("ds01-"):
        return None, [script.removeprefix("ds01-")]
    if script == "check-limits":
        return None, ["check-limits"]
    group, verb = script.split("-", 1)
    return ([group, verb] if group not in NO_DISPATCHER else None), [group, verb]


def click_command(app: typer.Typer, argv: list[str]) -> Any:
    cmd = typer.main.get_command(app)
    for word in argv:
        cmd = cmd.commands[word]  # type: ignore[attr-defined]
    return cmd


def options_of(cmd: Any) -> set[str]:
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}


def test_every_contract_command_is_a_console_script_a_dispatcher_verb_and_a_root_verb() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for script in FLAGS:
        assert scripts.get(script) == f"ds01.cli.entrypoints:{script.replace('-', '_')}", script
        module, attr = entrypoints.COMMANDS[script]
        fn = getattr(__import__(module, fromlist=[attr]), attr)
        dispatcher, root = paths(script)
        assert unwrap(click_command(main.app, root).callback) is unwrap(fn), root
        if dispatcher:
            group = scripts[dispatcher[0]]
            assert group.endswith(":app"), group
            app = __import__(group.split(":")[0], fromlist=["app"]).app
            assert unwrap(click_command(app, dispatcher[1:]).callback) is unwrap(fn), dispatcher


@pytest.mark.parametrize("script", sorted(FLAGS))
def test_every_listed_flag_is_accepted(script: str) -> None:
    _, root = paths(script)
    missing = FLAGS[script] - options_of(click_command(main.app, root))
    assert not missing, f"{script} lacks {sorted(missing)}"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "argv",
    [
        ("container-list", "--json", "--bogus"),
        ("container", "list", "--json", "--status"),
        ("ds01", "container", "create", "x", "--gpus", "many", "--json"),
        ("gpu-status", "--json", "--frees"),
        ("check-limits", "--json", "--user"),
    ],
)
def test_a_command_line_error_with_json_prints_the_error_object_on_stdout(argv: tuple[str, ...]) -> None:
    result = run(*argv)
    assert result.returncode == 2, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "usage" and error["message"], error
    assert "Traceback" not in result.stderr and result.stderr.strip(), "the human line stays on stderr"


def test_a_command_line_error_without_json_keeps_stdout_empty() -> None:
    result = run("container-list", "--bogus")
    assert result.returncode == 2 and result.stdout == "" and "--bogus" in result.stderr
