"""Generated arguments for every command (each console script, and every `ds01 ...` subcommand), run by an
ordinary user against the real ds01d and engine: the answer is always one of the contract's exit codes with
one error line (never a traceback or an internal error), and ds01d keeps serving.

The arguments come from each command's own declared parameters (click's view of the typer app), so a new
option is fuzzed without touching this file. No terminal: stdin is empty, so nothing may prompt.
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ds01.cli.common import Ds01Typer
from ds01.cli.entrypoints import COMMANDS
from harness.users import ensure_user, run_as

pytestmark = pytest.mark.docker

CONTRACT_CODES = {0, 1, 2, 3, 4, 5, 6}  # 130 (interrupted) is never the answer to an argument
EXAMPLES = int(os.environ.get("DS01_FUZZ_EXAMPLES", "150"))  # more for a longer hunt
# Commands that would wait on purpose (a follow, a loop): given the flag that makes them stop.
NEVER_FLAGS = {"--follow", "-f"}


@dataclass(frozen=True)
class Target:
    argv: tuple[str, ...]  # the program and any subcommand words
    params: tuple[Any, ...]  # click parameters (typer's own copy of click: judged by duck typing)


def _script_targets() -> list[Target]:
    import importlib

    targets = []
    for script, (module, attr) in sorted(COMMANDS.items()):
        app = Ds01Typer(add_completion=False)
        app.command()(getattr(importlib.import_module(module), attr))
        command = typer.main.get_command(app)
        targets.append(Target((script,), tuple(command.params)))
    return targets


def _root_targets() -> list[Target]:
    from ds01.cli.main import app

    found = []

    def walk(cmd: Any, words: tuple[str, ...]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, (*words, name))
        else:
            found.append(Target(words, tuple(p for p in cmd.params if p.name != "help")))

    walk(typer.main.get_command(app), ("ds01",))
    return found


TARGETS = _script_targets() + _root_targets()

weird = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30),
    st.sampled_from([
        "", " ", ".", "..", "../../etc", "/", "/etc/shadow", "/proc/self/root", "/dev/zero", "~root", "~",
        "a._.0", "x._.1001", "x" * 64, "y" * 5000, "\u202e", "a\nb", "\x1b[2J", "\t", "😀", "名前", "ＡＢＣ",
        "-1", "0", "1", "2", "1e9", "99999999999999999999999", "nan", "-", "--", "thesis", "my-thesis",
        "ds01-test/busybox:latest", "ds01-0/x:latest", "UPPER/case", "a:b:c", "@sha256:short", "1g.10gb",
        "9g.1tb", '"unterminated', "$(id)", "%00", os.fsdecode(b"\xff\xfe"), "root", "ds01t-bob", "running",
        "data-science", "blank", "pytorch", "custom", "2026-01-01T00:00:00Z",
    ]),
)  # fmt: skip
numbers = st.one_of(st.integers(-(2**70), 2**70).map(str), st.sampled_from(["-1", "0", "1", "65536"]), weird)


@st.composite
def invocations(draw: st.DrawFn) -> list[str]:
    target = draw(st.sampled_from(TARGETS))
    argv = list(target.argv)
    for param in target.params:
        if not draw(st.booleans()):
            continue
        is_int = getattr(param.type, "name", "") == "integer"
        if param.param_type_name == "argument":
            count = draw(st.integers(1, 3)) if param.nargs == -1 else 1
            argv += [draw(numbers if is_int else weird) for _ in range(count)]
            continue
        names = [n for n in param.opts + param.secondary_opts if n not in NEVER_FLAGS]
        if not names:
            continue
        flag = draw(st.sampled_from(names))
        if getattr(param, "is_flag", False):
            argv.append(flag)
            continue
        for _ in range(draw(st.integers(1, 2)) if getattr(param, "multiple", False) else 1):
            value = draw(numbers if is_int else weird)
            argv += [flag, value] if draw(st.integers(0, 9)) else [f"{flag}={value}"]
    if draw(st.integers(0, 9)) == 0:  # sometimes one more stray word or option
        argv.append(draw(st.sampled_from(["--bogus", "-Z", "extra", "--json", "--", "--help"])))
    return argv


def check(argv: list[str], result: subprocess.CompletedProcess[str]) -> None:
    out, err = result.stdout, result.stderr
    shown = f"{argv!r} -> rc {result.returncode}\n{err[-800:]}"
    for text in (out, err):
        assert "Traceback" not in text and "Exception ignored" not in text, shown
        assert "internal error" not in text, shown
    assert result.returncode in CONTRACT_CODES, shown
    if result.returncode == 0:
        return
    if result.returncode == 2 and ("Usage:" in err or "─ Error ─" in err):
        return  # click's usage error, as typer shows it
    if "doctor" in argv[0] + " ".join(argv[1:2]) and out.strip() and not err.strip():
        return  # doctor's failing answer is its report of checks (--strict: warnings count)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, shown
    assert err.splitlines()[-1] == errors[0], shown


def test_generated_arguments_get_contract_answers_and_ds01d_keeps_serving(ds01_home, engine_clean):
    alice = ensure_user("ds01t-fuzz")  # its own account: what user-setup & co. write stays out of others' way
    codes: list[int] = []

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(invocations())
    def one(argv: list[str]) -> None:
        try:
            result = run_as(alice, argv[0], *argv[1:], input="", timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{argv!r} ran for 60 s (a prompt or a wait with no terminal)")
        check(argv, result)
        codes.append(result.returncode)

    one()
    assert len(codes) >= EXAMPLES
    print(f"{len(codes)} generated invocations; exit codes: {sorted(Counter(codes).items())}")
    assert {0, 2} <= set(codes), sorted(set(codes))  # both accepted and refused inputs were reached
    assert run_as(alice, "container-list", "--json").returncode == 0  # ds01d still serves
    log = ds01_home.server.log_text()
    assert "internal error" not in log and "Traceback" not in log, log[-3000:]


def test_every_command_is_a_target():
    scripts = {t.argv[0] for t in TARGETS if t.argv[0] != "ds01"}
    assert scripts == set(COMMANDS)
    assert len([t for t in TARGETS if t.argv[0] == "ds01"]) >= 20
