"""F1 (root via the workspace symlink) in all three forms, and who may ask ds01d for which workspace.

Each reproduction runs as a real user against the real ds01d and asserts that it is refused or harmless AND
that nothing changed where the attack aimed: ds01d makes folders only under `<workspace_root>/<user>`, which
the user cannot write, and everything inside a project is written by the client with the user's own rights.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.raw import request
from harness.users import TestUser as Account
from harness.users import ok, run_as


def sh_as(user: Account, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", user.name, "--", "sh", "-c", script], capture_output=True, text=True, timeout=60
    )


def tree(path: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every entry under `path` (and `path` itself) with mode, owner, mtime and file content."""
    out = {}
    for p in [path, *sorted(path.rglob("*"))]:
        st = p.lstat()
        data = p.read_bytes() if p.is_file() and not p.is_symlink() else b""
        out[str(p)] = (st.st_mode, st.st_uid, st.st_mtime_ns, data)
    return out


@pytest.fixture
def target(ds01_home) -> Path:
    """Stands in for /etc/ds01/groups: a root-owned folder the attacker wants a folder of theirs in."""
    groups = ds01_home / "etc-ds01" / "groups"
    groups.mkdir(parents=True)
    (groups / "admin.members").write_text("root\n")
    return groups


@contextlib.contextmanager
def home_workspace(user: Account) -> Iterator[Path]:
    """The user's ~/workspace, put back as it was afterwards (the accounts outlive a test)."""
    link = user.home / "workspace"
    saved = user.home / ".ws-saved-by-test"
    if os.path.lexists(link):
        os.rename(link, saved)
    try:
        yield link
    finally:
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.is_dir():
            shutil.rmtree(link)
        for leftover in (user.home / "ws-real",):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
        if os.path.lexists(saved):
            os.rename(saved, link)


# -- F1 (a): ~/workspace swapped for a link to a root-owned folder --------------------------------------


def test_f1a_a_workspace_link_to_etc_creates_nothing_there(ds01_home, unix_users, target):
    alice = unix_users["alice"]
    before = tree(target)
    with home_workspace(alice):
        ok(sh_as(alice, f"mkdir -p ~/workspace && mv ~/workspace ~/ws-real && ln -s {target} ~/workspace"))
        for kind in ("blank", "data-science"):
            ok(run_as(alice, "dir-create", f"x-{kind}", "--type", kind))
        ok(run_as(alice, "readme-create", "x-blank"))
        ok(run_as(alice, "git-init", "x-blank"))
        assert tree(target) == before  # nothing created or chowned in the "groups" folder
        assert (alice.home / "workspace").readlink() == target  # and the user's link is left alone
    made = ds01_home / "ws" / alice.name / "x-blank"
    assert made.is_dir() and made.stat().st_uid == alice.uid and (made / "README.md").exists()
    assert not (target / "x-blank").exists() and not (target / "admin.members").is_symlink()


def test_f1a_the_user_cannot_add_or_swap_anything_in_the_workspace_tree(ds01_home, unix_users, target):
    alice = unix_users["alice"]
    ok(run_as(alice, "dir-create", "thesis", "--type", "blank"))
    user_root = ds01_home / "ws" / alice.name
    before, target_before = tree(user_root), tree(target)
    swap = sh_as(alice, f"mv {user_root}/thesis {user_root}/t2; ln -s {target} {user_root}/planted")
    assert swap.returncode != 0 and "Permission denied" in swap.stderr
    assert tree(user_root) == before and tree(target) == target_before


def test_f1a_an_existing_link_or_file_in_place_of_a_project_is_refused_and_left_alone(
    ds01_home, unix_users, target
):
    alice = unix_users["alice"]
    ok(run_as(alice, "dir-create", "first", "--type", "blank"))  # ds01d made <root>/<alice>
    user_root = ds01_home / "ws" / alice.name
    (user_root / "linked").symlink_to(target)  # as if planted by an older ds01 or an admin's mistake
    (user_root / "afile").write_text("not a folder\n")
    before = tree(user_root) | tree(target)
    for name in ("linked", "afile"):
        result = run_as(alice, "dir-create", name)
        assert result.returncode == 5, result.stderr
        assert "Traceback" not in result.stderr
    answer = request(alice, ds01_home.socket, "POST", "/v1/workspaces", {"name": "linked"})
    assert answer.exit_code == 5
    assert tree(user_root) | tree(target) == before


def test_f1a_names_cannot_leave_the_users_folder(ds01_home, unix_users, target):
    alice = unix_users["alice"]
    before = tree(ds01_home / "ws") | tree(target)
    for name in ("../bob", "../../etc-ds01/groups/x", "/etc/x", ".", "..", "a/b"):
        answer = request(alice, ds01_home.socket, "POST", "/v1/workspaces", {"name": name})
        assert answer.exit_code == 2, (name, answer.lines)
    assert run_as(alice, "dir-create", "../x").returncode == 2
    assert tree(ds01_home / "ws") | tree(target) == before


# -- F1 (b): planting into another user's 0700 home -------------------------------------------------------


@pytest.fixture
def victim(unix_users) -> Iterator[Account]:
    bob = unix_users["bob"]
    mode = bob.home.stat().st_mode & 0o777
    bob.home.chmod(0o700)
    local = bob.home / ".local"
    existed = local.exists()
    local.mkdir(exist_ok=True)
    os.chown(local, bob.uid, bob.gid)
    yield bob
    if not existed:
        shutil.rmtree(local, ignore_errors=True)
    bob.home.chmod(mode)


def test_f1b_a_link_into_another_users_home_plants_nothing(ds01_home, unix_users, victim):
    alice = unix_users["alice"]
    before = tree(victim.home / ".local")
    with home_workspace(alice):
        ok(sh_as(alice, f"ln -s {victim.home}/.local ~/workspace"))
        ok(run_as(alice, "dir-create", "bin"))
    # inside her own project a link to the victim's folder gets her nothing either: the client is alice
    ws = ds01_home / "ws" / alice.name / "tools"
    ok(run_as(alice, "dir-create", "tools", "--type", "blank"))
    ok(sh_as(alice, f"ln -s {victim.home}/.local {ws}/notebooks"))
    planted = run_as(alice, "dir-create", "tools")
    assert planted.returncode == 5 and "Permission denied" in planted.stderr, planted.stderr
    assert tree(victim.home / ".local") == before
    assert not (victim.home / ".local" / "bin").exists()


def test_f1b_root_acting_for_a_user_writes_with_that_users_rights_only(ds01_home, unix_users, victim):
    """An admin at a root shell runs `dir-create tools --user alice`: alice's planted link must not turn
    root's client into a writer in bob's home."""
    alice = unix_users["alice"]
    ok(run_as(alice, "dir-create", "tools", "--type", "blank"))
    ws = ds01_home / "ws" / alice.name / "tools"
    ok(sh_as(alice, f"ln -s {victim.home}/.local {ws}/notebooks"))
    before = tree(victim.home / ".local")
    env = {**os.environ, "DS01_SOCKET": str(ds01_home.socket)}
    exe = str(Path(sys.executable).parent / "dir-create")
    result = subprocess.run([exe, "tools", "--user", alice.name], capture_output=True, text=True, env=env)
    assert result.returncode == 5, result.stdout + result.stderr
    assert tree(victim.home / ".local") == before
    # the parts it could write are alice's, not root's
    assert {p.lstat().st_uid for p in ws.rglob("*")} == {alice.uid}


# -- F1 (c): the race while a create waits for the reservation lock -------------------------------------


@pytest.mark.docker
def test_f1c_swapping_while_a_create_waits_changes_nothing_elsewhere(
    ds01_home, unix_users, target, engine_clean, base_image_ref
):
    alice = unix_users["alice"]
    lock = ds01_home / "state" / "gpu-reservation.lock"
    before = tree(target)
    user_root = ds01_home / "ws" / alice.name
    ok(run_as(alice, "dir-create", "race", "--type", "blank"))  # the project exists, as in the attack
    with home_workspace(alice), open(os.open(lock, os.O_RDWR | os.O_CREAT, 0o600), "r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the create now waits inside ds01d (it waits up to 10 s)
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG")}
        env["DS01_SOCKET"] = str(ds01_home.socket)
        create = subprocess.Popen(
            ["runuser", "-u", alice.name, "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()],
             str(Path(sys.executable).parent / "container-create"), "race", "--cpu-only",
             "--image", base_image_ref, "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1.5)
        assert create.poll() is None, create.communicate()  # still waiting for the lock
        ok(sh_as(alice, f"ln -sfn {target} ~/workspace"))  # harmless: ds01d never looks at it
        for swap in (f"mv {user_root}/race {user_root}/race.real", f"rmdir {user_root}/race",
                     f"ln -sfn {target} {user_root}/race2"):  # fmt: skip
            tried = sh_as(alice, swap)
            assert tried.returncode != 0 and "Permission denied" in tried.stderr, swap
        time.sleep(0.5)
        fcntl.flock(held, fcntl.LOCK_UN)
        out, err = create.communicate(timeout=60)
    assert tree(target) == before
    assert (user_root / "race").is_dir() and not (user_root / "race").is_symlink()
    assert create.returncode == 0, err
    entry = json.loads(out)
    container = engine_clean.containers.get(entry["container"])
    assert container.labels["ds01.workspace"] == str(user_root / "race")
    ok(sh_as(alice, f"echo mine > {user_root}/race/marker"))
    ok(run_as(alice, "container-start", "race"))
    code, seen = container.exec_run(["sh", "-c", "cat /workspace/marker; ls /workspace"])
    assert code == 0 and seen.decode().split() == ["mine", "marker"]  # the workspace, not the target
    assert tree(target) == before


def test_f1c_flipping_the_home_link_during_dir_create_changes_nothing_elsewhere(
    ds01_home, unix_users, target
):
    alice = unix_users["alice"]
    before = tree(target)
    with home_workspace(alice):
        flipper = subprocess.Popen(
            ["runuser", "-u", alice.name, "--", "sh", "-c",
             f"for i in $(seq 400); do rm -rf ~/workspace; mkdir ~/workspace; rmdir ~/workspace; "
             f"ln -s {target} ~/workspace; done"],
        )  # fmt: skip
        for i in range(4):
            ok(run_as(alice, "dir-create", f"p{i}"))
        flipper.wait(timeout=60)
    assert tree(target) == before


# -- who may ask for which workspace ----------------------------------------------------------------------


def test_owner_makes_and_lists_their_own_workspaces(ds01_home, unix_users):
    alice = unix_users["alice"]
    empty = request(alice, ds01_home.socket, "GET", "/v1/workspaces")
    assert empty.result == {"root": str(ds01_home / "ws" / alice.name), "projects": []}
    assert not (ds01_home / "ws" / alice.name).exists()  # listing makes nothing
    made = request(alice, ds01_home.socket, "POST", "/v1/workspaces", {"name": "Thesis"})
    path = ds01_home / "ws" / alice.name / "thesis"
    assert made.result == {"path": str(path), "created": True}
    st = path.lstat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (alice.uid, alice.gid, 0o750)
    again = request(alice, ds01_home.socket, "POST", "/v1/workspaces", {"name": "thesis"})
    assert again.result == {"path": str(path), "created": False}
    (ds01_home / "ws" / alice.name / "link").symlink_to(path)
    listed = request(alice, ds01_home.socket, "GET", "/v1/workspaces")
    assert listed.result["projects"] == ["thesis"]  # the link is not a project


def test_another_user_is_refused_and_nothing_is_made(ds01_home, unix_users):
    alice, bob = unix_users["alice"], unix_users["bob"]
    for method, body in (("GET", None), ("POST", {"name": "x", "user": bob.name})):
        target = "/v1/workspaces" + (f"?user={bob.name}" if method == "GET" else "")
        answer = request(alice, ds01_home.socket, method, target, body)
        assert answer.exit_code == 5, answer.lines
    result = run_as(alice, "dir-create", "x", "--user", bob.name)
    assert result.returncode == 5 and "only admins" in result.stderr
    assert not (ds01_home / "ws" / bob.name).exists()


def test_an_admin_makes_a_workspace_owned_by_the_user_but_never_for_root(ds01_home, unix_users):
    carol, dave = unix_users["carol"], unix_users["dave"]
    ds01_home.reconfigure(groups={"admin": {"members": [carol.name], "admin": True}})
    made = request(carol, ds01_home.socket, "POST", "/v1/workspaces", {"name": "exp", "user": dave.name})
    path = ds01_home / "ws" / dave.name / "exp"
    assert made.result == {"path": str(path), "created": True}
    assert path.stat().st_uid == dave.uid and (ds01_home / "ws" / dave.name).stat().st_uid == 0
    listed = request(carol, ds01_home.socket, "GET", f"/v1/workspaces?user={dave.name}")
    assert listed.result["projects"] == ["exp"]
    for who in ("root", "daemon", "0"):
        answer = request(carol, ds01_home.socket, "POST", "/v1/workspaces", {"name": "x", "user": who})
        assert answer.exit_code == 5, (who, answer.lines)
        assert run_as(carol, "dir-create", "x", "--user", who).returncode == 5
    assert sorted(p.name for p in (ds01_home / "ws").iterdir()) == [dave.name]
    # a non-root admin cannot write into dave's folder: the folder is made, no file is written by carol
    result = run_as(carol, "dir-create", "exp2", "--user", dave.name)
    assert result.returncode == 5 and "owner" in result.stderr
    assert list((ds01_home / "ws" / dave.name / "exp2").iterdir()) == []
    ok(run_as(carol, "dir-create", "exp3", "--type", "blank", "--user", dave.name))  # nothing to write
    assert (ds01_home / "ws" / dave.name / "exp3").stat().st_uid == dave.uid


def test_root_acts_for_a_user_and_the_files_are_the_users(ds01_home, unix_users):
    dave = unix_users["dave"]
    env = {**os.environ, "DS01_SOCKET": str(ds01_home.socket)}
    bindir = Path(sys.executable).parent
    done = subprocess.run(
        [str(bindir / "dir-create"), "thesis", "--user", dave.name, "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    ws = ds01_home / "ws" / dave.name / "thesis"
    assert json.loads(done.stdout)["workspace"] == str(ws)
    assert {p.lstat().st_uid for p in [ws, *ws.rglob("*")]} == {dave.uid}
    for argv in (["thesis"], ["thesis", "--user", "root"]):
        refused = subprocess.run([str(bindir / "dir-create"), *argv], capture_output=True, text=True, env=env)
        assert refused.returncode == 5, refused.stderr
    assert sorted(p.name for p in (ds01_home / "ws").iterdir()) == [dave.name]
