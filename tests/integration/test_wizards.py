"""The L4 wizards as a newcomer meets them: real Unix users running the commands directly (clients of
ds01d), the private engine, a real terminal."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from harness import base_image
from harness.tty import read_until, reap, spawn
from harness.users import ok, run_as, without_ds01_files

pytestmark = pytest.mark.docker
python_base = base_image.python_base  # the offline Python base, tagged


def owned_by(path: Path, uid: int) -> bool:
    return path.stat().st_uid == uid


@pytest.fixture
def fresh_home(unix_users):
    """alice's home without ds01's files; put back as it was afterwards (the accounts outlive a test)."""
    with without_ds01_files(unix_users["alice"], "saved-by-test") as alice:
        yield alice


def test_fresh_account_setup_init_launch(ds01_home, engine_clean, python_base, fresh_home):
    alice = fresh_home
    quickstart = alice.home / "ds01-quickstart.md"
    setup = ok(run_as(alice, "user-setup", "--yes"))
    assert "Host " in setup.stdout and f"User {alice.name}" in setup.stdout
    assert "idle" in setup.stdout and quickstart.exists() and owned_by(quickstart, alice.uid)
    assert "Attach to Running Container" not in setup.stdout and "container-attach" in setup.stdout
    link = alice.home / "workspace"
    assert link.is_symlink() and link.readlink() == ds01_home / "ws" / alice.name
    assert link.lstat().st_uid == alice.uid  # made by alice herself

    start = time.monotonic()
    again = ok(run_as(alice, "user-setup", "--yes"))
    assert "set up already" in again.stdout and time.monotonic() - start < 5
    assert link.readlink() == ds01_home / "ws" / alice.name

    ok(run_as(alice, "project-init", "demo", "--type", "custom", "--framework", "python", "--yes"))
    ws = ds01_home / "ws" / alice.name / "demo"
    for rel in ("pyproject.toml", "requirements.txt", "Dockerfile", "README.md", ".gitignore", "data/raw"):
        assert (ws / rel).exists(), rel
        assert owned_by(ws / rel, alice.uid), rel
    assert "[tool.ds01]" in (ws / "pyproject.toml").read_text()
    log = subprocess.run(
        ["git", "-C", str(ws), "log", "--oneline"],
        capture_output=True,
        text=True,
        env={
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "safe.directory",
            "GIT_CONFIG_VALUE_0": "*",
            "PATH": os.environ["PATH"],
        },
    )
    assert "Start demo with ds01" in log.stdout

    assert (ws / "Dockerfile").read_text().count("ds01 image recipe") == 1
    launched = json.loads(ok(run_as(alice, "project-launch", "demo", "--background", "--json")).stdout)
    assert launched["image_built"] is True and launched["status"] == "running"
    assert launched["image"] == f"ds01-{alice.uid}/demo:latest"
    listed = json.loads(ok(run_as(alice, "container-list", "--json")).stdout)
    assert [c["name"] for c in listed] == ["demo"]
    container = engine_clean.containers.get(launched["container"])
    assert container.labels["ds01.interface"] == "wizard"
    code, out = container.exec_run(["id", "-u"])  # as the container's own user
    assert code == 0 and out.decode().strip() == str(alice.uid)


def test_project_init_twice_never_overwrites(ds01_home, engine_clean, python_base, unix_users):
    bob = unix_users["bob"]  # a base this registry-less engine has (pytorch's would be refused: exit 1)
    ok(run_as(bob, "project-init", "thesis", "--type", "nlp", "--framework", "python", "--no-git", "--yes"))
    ws = ds01_home / "ws" / bob.name / "thesis"
    (ws / "README.md").write_text("# mine\n")
    (ws / "Dockerfile").unlink()
    result = json.loads(
        ok(
            run_as(
                bob,
                "project-init",
                "thesis",
                "--type",
                "nlp",
                "--framework",
                "python",
                "--no-git",
                "--yes",
                "--json",
            )
        ).stdout
    )
    assert (ws / "README.md").read_text() == "# mine\n"
    assert result["created"] == ["Dockerfile"] and "README.md" in result["kept"]
    assert "transformers" in (ws / "requirements.txt").read_text()


def test_user_setup_leaves_a_real_workspace_folder_alone_and_says_what_to_do(ds01_home, fresh_home):
    alice = fresh_home
    mine = alice.home / "workspace"
    subprocess.run(["runuser", "-u", alice.name, "--", "mkdir", str(mine)], check=True)
    (mine / "notes.txt").write_text("mine\n")
    try:
        setup = ok(run_as(alice, "user-setup", "--yes", "--no-project"))
        said = setup.stdout + setup.stderr
        assert "left as it is" in said and str(ds01_home / "ws" / alice.name) in said
        assert mine.is_dir() and not mine.is_symlink() and (mine / "notes.txt").read_text() == "mine\n"
        data = json.loads(ok(run_as(alice, "user-setup", "--yes", "--json")).stdout)
        assert "mv " in data["workspace_link_advice"] and not mine.is_symlink()
    finally:
        subprocess.run(["rm", "-rf", str(mine)], check=True)


def test_project_init_adds_a_tool_table_to_an_existing_pyproject(
    ds01_home, engine_clean, python_base, unix_users
):
    carol = unix_users["carol"]
    ok(run_as(carol, "dir-create", "old", "--type", "blank"))
    ws = ds01_home / "ws" / carol.name / "old"
    subprocess.run(
        [
            "runuser",
            "-u",
            carol.name,
            "--",
            "sh",
            "-c",
            f"printf '[project]\\nname = \"old\"\\n' > {ws}/pyproject.toml",
        ],
        check=True,
    )
    assert (ws / "pyproject.toml").read_text() == '[project]\nname = "old"\n'
    ok(run_as(carol, "project-init", "old", "--type", "ml", "--framework", "python", "--no-git", "--yes"))
    text = (ws / "pyproject.toml").read_text()
    assert text.startswith('[project]\nname = "old"\n') and '[tool.ds01]\ntype = "ml"' in text
    assert (ws / "pyproject.toml.bak").read_text() == '[project]\nname = "old"\n'


def test_without_a_terminal_a_missing_answer_is_exit_2_naming_the_flag(ds01_home, engine_clean, unix_users):
    result = run_as(unix_users["dave"], "project-init", "x")
    assert result.returncode == 2 and "--type" in result.stderr and "Traceback" not in result.stderr
    result = run_as(unix_users["dave"], "project-launch")
    assert result.returncode == 2 and "NAME" in result.stderr


def test_launch_without_a_name_lists_projects_to_pick(
    ds01_home, engine_clean, python_base, unix_users, monkeypatch
):
    from ds01.cli.common import connect
    from ds01.cli.project import _pick_project
    from ds01.wizards.project_launch import list_projects
    from ds01.wizards.prompts import Questionary

    erin = unix_users["erin"]
    for name in ("alpha", "beta"):
        ok(
            run_as(
                erin, "project-init", name, "--type", "custom", "--framework", "python", "--no-git", "--yes"
            )
        )
    ok(run_as(erin, "project-launch", "beta", "--background"))
    client = connect()  # root, acting for erin (as an admin at a root shell would)
    projects = {p.name: p.image_ready for p in list_projects(client, erin.name)}
    assert projects == {"alpha": False, "beta": True}
    with create_pipe_input() as pipe:
        pipe.send_text("\x1b[B\r")  # default is the first project; one down picks beta
        assert _pick_project(client, Questionary(input=pipe, output=DummyOutput()), erin.name) == "beta"
    with create_pipe_input() as pipe:
        # two down: "+ start a new project"; its name; then type, framework, description, dev container
        pipe.send_text("\x1b[B\x1b[B\r" + "gamma\r" + "\r" + "\r" + "a new one\r" + "\r")
        assert _pick_project(client, Questionary(input=pipe, output=DummyOutput()), erin.name) == "gamma"
    gamma = ds01_home / "ws" / erin.name / "gamma"
    assert (gamma / "Dockerfile").exists() and "a new one" in (gamma / "pyproject.toml").read_text()
    assert (gamma / "Dockerfile").stat().st_uid == erin.uid


def test_project_launch_open_on_a_real_terminal_then_retire(ds01_home, engine_clean, python_base, unix_users):
    frank = unix_users["frank"]
    ok(
        run_as(
            frank, "project-init", "demo", "--type", "custom", "--framework", "python", "--no-git", "--yes"
        )
    )
    pid, fd = spawn(frank, "project-launch", "demo", "--open")  # the user, on a real terminal
    finished = False
    try:
        read_until(fd, r"container-retire demo when done")  # the summary, then the shell
        read_until(fd, r"/workspace [$#] ")
        os.write(fd, b"\x1b[40;1R")  # the answer to the shell's cursor-position query, as a terminal gives
        os.write(fd, b"echo inside-$((6*7)) $(pwd)\r")
        screen = read_until(fd, r"inside-42 /workspace")
        assert "inside-42 /workspace" in screen
        os.write(fd, b"exit\r")
        read_until(fd, r"Keep demo running")
        os.write(fd, b"n\r")
        read_until(fd, r"retired demo")
        finished = True
    finally:
        code = reap(pid, fd, kill=not finished)
    assert code == 0
    assert engine_clean.containers.list(all=True, filters={"label": f"ds01.uid={frank.uid}"}) == []
    assert (ds01_home / "ws" / frank.name / "demo" / "Dockerfile").exists()


def test_project_launch_rebuild_replaces_the_running_container(
    ds01_home, engine_clean, python_base, unix_users
):
    dave = unix_users["dave"]
    ok(run_as(dave, "project-init", "demo", "--type", "custom", "--framework", "python", "--no-git", "--yes"))
    first = json.loads(ok(run_as(dave, "project-launch", "demo", "--background", "--json")).stdout)
    again = json.loads(ok(run_as(dave, "project-launch", "demo", "--background", "--json")).stdout)
    assert again["image_built"] is False and again["container"] == first["container"]
    old_id = engine_clean.containers.get(first["container"]).id
    rebuilt = json.loads(
        ok(run_as(dave, "project-launch", "demo", "--rebuild", "--background", "--json")).stdout
    )
    assert rebuilt["image_built"] is True and rebuilt["status"] == "running"
    assert engine_clean.containers.get(rebuilt["container"]).id != old_id
    missing = run_as(dave, "project-launch", "nothing-here", "--background")
    assert missing.returncode == 3 and "project-init nothing-here" in missing.stderr
