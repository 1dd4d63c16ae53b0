"""The wizards' questions, driven through real questionary prompts with prompt_toolkit pipe input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from ds01.project.catalogue import load_catalogue
from ds01.errors import ExitCode, UsageError
from ds01.wizards.project_init import InitRequest, ask_missing
from ds01.wizards.prompts import Cancelled, Choice, Defaults, NoTerminal, Questionary, prompter_for
from ds01.wizards.user_setup import Experience, ask_experience

DOWN, ENTER = "\x1b[B", "\r"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def keys() -> Iterator[tuple[Questionary, object]]:
    with create_pipe_input() as pipe:
        yield Questionary(input=pipe, output=DummyOutput()), pipe


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue(ROOT / "config" / "resource-limits.yaml")


def test_project_init_questions_take_arrows_and_enter(keys, catalogue):
    prompter, pipe = keys
    types = list(catalogue.types)
    frameworks = list(catalogue.frameworks)
    # type: two down from the default; framework: Enter on the default; description; devcontainer: yes
    steps = types.index(catalogue.default_type)
    pipe.send_text(DOWN * 2 + ENTER + ENTER + "speech models" + ENTER + "y" + ENTER)
    req = ask_missing(InitRequest("demo"), catalogue, prompter)
    assert req.project_type == types[steps + 2]
    assert req.framework == catalogue.default_framework and req.framework in frameworks
    assert req.description == "speech models"
    assert req.devcontainer is True


def test_project_init_flags_skip_their_questions(keys, catalogue):
    prompter, pipe = keys
    pipe.send_text(ENTER)  # only the devcontainer question is left: default no
    req = ask_missing(InitRequest("demo", "nlp", "jax", "x"), catalogue, prompter)
    assert (req.project_type, req.framework, req.description, req.devcontainer) == ("nlp", "jax", "x", False)


def test_user_setup_three_experience_questions(keys):
    prompter, pipe = keys
    pipe.send_text(ENTER + DOWN + ENTER + "\x1b[A" + ENTER)  # the default, one down, one up
    assert ask_experience(prompter, None) == Experience(ssh="some", git="expert", containers="new")


def test_a_select_returns_the_value_not_the_title(keys):
    prompter, pipe = keys
    pipe.send_text(DOWN + ENTER)
    choices = [Choice("alpha", "alpha  image ready"), Choice("", "+ start a new project")]
    assert prompter.select("Which project?", choices, default="alpha", flag="NAME") == ""


def test_ctrl_c_cancels_with_exit_130(keys):
    prompter, pipe = keys
    pipe.send_text("\x03")
    with pytest.raises((Cancelled, KeyboardInterrupt)) as info:
        prompter.confirm("Go?", default=True, flag="--yes")
    if isinstance(info.value, Cancelled):
        assert info.value.exit_code == ExitCode.INTERRUPTED


def test_without_a_terminal_a_missing_answer_names_the_flag(catalogue):
    with pytest.raises(UsageError) as info:
        ask_missing(InitRequest("demo"), catalogue, NoTerminal())
    message = str(info.value)
    assert info.value.exit_code == ExitCode.USAGE and "--type" in message and "--yes" in message


def test_yes_takes_every_default(catalogue):
    req = ask_missing(InitRequest("demo"), catalogue, Defaults())
    assert (req.project_type, req.framework, req.description, req.devcontainer) == (
        catalogue.default_type,
        catalogue.default_framework,
        "",
        False,
    )


def test_prompter_choice():
    assert isinstance(prompter_for(yes=True, tty=True), Defaults)
    assert isinstance(prompter_for(yes=False, tty=False), NoTerminal)
    assert isinstance(prompter_for(yes=False, tty=True), Questionary)


def test_user_setup_offers_a_first_project(keys):
    from ds01.wizards.user_setup import ask_first_project

    prompter, pipe = keys
    pipe.send_text("y" + "\x7f" * 16 + "thesis" + ENTER)  # yes; replace the suggested name
    assert ask_first_project(prompter, None) == "thesis"


def test_user_setup_first_project_declined(keys):
    from ds01.wizards.user_setup import ask_first_project

    prompter, pipe = keys
    pipe.send_text(ENTER)  # the default is no
    assert ask_first_project(prompter, None) is None
    assert ask_first_project(Defaults(), "given") == "given"
