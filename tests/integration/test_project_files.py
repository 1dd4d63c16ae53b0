"""dir-create, git-init and readme-create as a real user (a client of ds01d): ds01d makes the workspace
under `<workspace_root>/<user>`, the client fills it in as the user; idempotent, never overwriting."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.users import ok, run_as


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every path under root with its owner, mode and (for files) content."""
    out = {}
    for p in sorted(root.rglob("*")):
        if ".git" in p.relative_to(root).parts[:1] and p.name not in ("config", "HEAD"):
            continue
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_uid, st.st_mode, p.read_bytes() if p.is_file() else b"")
    return out


@pytest.fixture
def alice(ds01_home, unix_users):
    return unix_users["alice"]


def test_dir_create_makes_the_data_science_layout_owned_by_the_user_and_is_idempotent(ds01_home, alice):
    first = json.loads(ok(run_as(alice, "dir-create", "thesis", "--json")).stdout)
    ws = ds01_home / "ws" / alice.name / "thesis"
    assert first["workspace"] == str(ws) and first["changed"] is True
    for rel in ("data/raw", "data/processed", "notebooks", "src", "models", "results"):
        assert (ws / rel).is_dir() and (ws / rel / "README.md").read_text().startswith(f"# {rel}/")
    assert {p.stat().st_uid for p in [ws, *ws.rglob("*")]} == {alice.uid}

    (ws / "src" / "README.md").write_text("my own notes\n")
    before = snapshot(ws)
    second = json.loads(ok(run_as(alice, "dir-create", "thesis", "--json")).stdout)
    assert second["changed"] is False and second["created_files"] == []
    assert snapshot(ws) == before and (ws / "src" / "README.md").read_text() == "my own notes\n"

    blank = json.loads(ok(run_as(alice, "dir-create", "scratch", "--type", "blank", "--json")).stdout)
    assert blank["created_files"] == [] and list((ds01_home / "ws" / alice.name / "scratch").iterdir()) == []
    assert run_as(alice, "dir-create", "x", "--type", "fancy").returncode == 2


def test_git_init_sets_up_the_repository_as_the_user_and_changes_nothing_the_second_time(ds01_home, alice):
    ok(run_as(alice, "dir-create", "thesis"))
    result = json.loads(ok(run_as(alice, "git-init", "thesis", "--json")).stdout)
    ws = ds01_home / "ws" / alice.name / "thesis"
    assert (ws / ".git").is_dir() and (ws / ".git").stat().st_uid == alice.uid
    ignore = (ws / ".gitignore").read_text()
    for entry in ("data/", "models/", "checkpoints/", ".cache/"):
        assert entry in ignore.splitlines()
    assert any(n.startswith("set user.email = ds01t-alice@") for n in result["notes"])

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(ws), *args],
            capture_output=True,
            text=True,
            user=alice.uid,
            group=alice.gid,
            env={"HOME": str(alice.home)},
        ).stdout.strip()

    assert git("config", "user.name") == alice.name
    assert git("status", "--porcelain", "--untracked-files=all").count("data/") == 0  # data stays out of git
    assert {p.stat().st_uid for p in ws.joinpath(".git").rglob("*")} == {alice.uid}

    (ws / ".gitignore").write_text("# mine\n")
    ok(run_as(alice, "git-init", "thesis"))
    again = json.loads(ok(run_as(alice, "git-init", "thesis", "--json")).stdout)
    assert again["changed"] is False and (ws / ".gitignore").read_text() == "# mine\n"


def test_git_init_adds_lfs_attributes_only_when_asked_or_when_git_lfs_exists(tmp_path):
    import shutil

    from ds01.project.git import init_git

    (tmp_path / "plain").mkdir()
    without = init_git(tmp_path / "plain", lfs=False)
    assert not (without.workspace / ".gitattributes").exists()
    (tmp_path / "models").mkdir()
    if shutil.which("git-lfs"):
        with_lfs = init_git(tmp_path / "models", lfs=True)
        attributes = (with_lfs.workspace / ".gitattributes").read_text()
        assert "*.safetensors filter=lfs" in attributes and "enabled git-lfs" in with_lfs.notes
    else:
        with pytest.raises(Exception, match="lfs"):
            init_git(tmp_path / "models", lfs=True)


def test_the_workspace_tree_is_roots_and_the_project_folder_the_users(ds01_home, alice):
    ok(run_as(alice, "dir-create", "thesis", "--type", "blank"))
    user_root = ds01_home / "ws" / alice.name
    st = user_root.lstat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o755)  # alice cannot add or swap anything here
    project = (user_root / "thesis").lstat()
    assert project.st_uid == alice.uid and (project.st_mode & 0o777) == 0o750
    listed = json.loads(ok(run_as(alice, "dir-create", "notes", "--type", "blank", "--json")).stdout)
    assert listed["created_dirs"] == [str(user_root / "notes")]


def test_git_init_and_readme_create_take_the_contracts_type_data_science_or_blank(ds01_home, alice):
    """CONTRACT §4 lists --type data-science|blank for dir-create, git-init and readme-create alike."""
    ws = ds01_home / "ws" / alice.name / "scratch"
    ok(run_as(alice, "git-init", "scratch", "--type", "blank"))
    ignore = (ws / ".gitignore").read_text().splitlines()
    assert "__pycache__/" in ignore and "data/" not in ignore and "models/" not in ignore
    ok(run_as(alice, "readme-create", "scratch", "--type", "blank"))
    text = (ws / "README.md").read_text()
    assert text.startswith("# scratch\n") and "## Layout" not in text and "blank" not in text

    ok(run_as(alice, "git-init", "thesis", "--type", "data-science"))
    assert "data/" in (ds01_home / "ws" / alice.name / "thesis" / ".gitignore").read_text().splitlines()
    ok(run_as(alice, "readme-create", "thesis", "--type", "data-science"))
    text = (ds01_home / "ws" / alice.name / "thesis" / "README.md").read_text()
    assert text.startswith("# thesis\n") and "## Layout" in text
    bad = run_as(alice, "git-init", "other", "--type", "fancy")
    assert bad.returncode == 2 and "--type data-science or blank" in bad.stderr
    assert not (ds01_home / "ws" / alice.name / "other").exists()


def test_readme_create_writes_once_and_never_replaces_the_users_readme(ds01_home, alice):
    first = json.loads(ok(run_as(alice, "readme-create", "thesis", "--type", "nlp", "-d", "Court rulings.",
                                 "--json")).stdout)  # fmt: skip
    readme = ds01_home / "ws" / alice.name / "thesis" / "README.md"
    assert first["created_files"] == [str(readme)]
    text = readme.read_text()
    assert (
        text.startswith("# thesis (nlp project)")
        and "Court rulings." in text
        and "project-launch thesis" in text
    )
    assert readme.stat().st_uid == alice.uid
    readme.write_text("mine\n")
    second = json.loads(ok(run_as(alice, "readme-create", "thesis", "--json")).stdout)
    assert second["changed"] is False and readme.read_text() == "mine\n"


def test_the_root_app_mounts_the_three_commands_and_there_is_no_shadowing_dispatcher():
    import sys

    from typer.testing import CliRunner

    from ds01.cli.main import app

    runner = CliRunner()
    for argv in (["dir", "create", "--help"], ["git", "init", "--help"], ["readme", "create", "--help"]):
        assert runner.invoke(app, argv).exit_code == 0
    bindir = Path(sys.executable).parent
    assert (
        not (bindir / "dir").exists() and not (bindir / "git").exists() and not (bindir / "readme").exists()
    )
