"""The wizards' questions, driven through real questionary prompts with prompt_toolkit pipe input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from ds01.errors import ExitCode, UsageError
from ds01.project.catalogue import load_catalogue
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
    with pytest.raises(Cancelled) as info:
        prompter.confirm("Go?", default=True, flag="--yes")
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


def test_the_wizards_import_questionary_only_to_prompt():
    import subprocess
    import sys

    code = (
        "import sys, ds01.cli.project, ds01.cli.user, ds01.wizards.project_init, "
        "ds01.wizards.project_launch, ds01.wizards.user_setup; "
        "print(sorted(m for m in ('questionary', 'docker', 'ds01.atomic', 'ds01.config') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_limits_in_plain_words():
    from ds01.wizards.user_setup import plain_limits

    words = plain_limits(
        {"max_gpu_equivalents": 1.5, "allow_full_gpu": False, "max_containers_per_user": 3, "max_cpus": 8.0,
         "memory": "32g", "idle_timeout_h": 0.5, "max_runtime_h": None}
    )  # fmt: skip
    assert words["GPUs"] == "up to 1.5 GPU(s) at once, counting MIG slices by their size (MIG slices only)"
    assert words["containers"] == "up to 3 at once" and words["each container"] == "8 CPUs, 32g memory"
    assert words["idle GPUs"] == "containers idle for 30 min are retired (your workspace stays)"
    assert words["runtime"] == "no limit"
    assert plain_limits({"max_gpu_equivalents": 0})["GPUs"].startswith("no GPU quota")


def test_the_workspace_link_is_made_once_and_a_real_folder_is_left_alone(tmp_path):
    from ds01.wizards.user_setup import link_workspace

    target = tmp_path / "srv" / "alice"
    home = tmp_path / "home"
    home.mkdir()
    made, advice = link_workspace(home, target)
    assert (home / "workspace").is_symlink() and str((home / "workspace").readlink()) == str(target)
    assert advice == "" and "(new)" in made
    again, advice = link_workspace(home, target)
    assert advice == "" and "(new)" not in again

    other = tmp_path / "other"
    other.mkdir()
    (other / "workspace").mkdir()
    (other / "workspace" / "notes.txt").write_text("mine")
    said, advice = link_workspace(other, target)
    assert "left as it is" in said and str(target) in advice and "mv " in advice
    assert (other / "workspace" / "notes.txt").read_text() == "mine" and not (
        other / "workspace"
    ).is_symlink()


def test_the_vscode_steps_need_no_docker_group():
    from ds01.wizards.user_setup import vscode_steps

    steps = " ".join(vscode_steps("lab"))
    assert "Attach to Running Container" not in steps and "container-attach" in steps
