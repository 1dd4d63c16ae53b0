"""The ways in (SSH, Jupyter, ports) as real users against the real ds01d and engine: another user's project
is refused (exit 5) with nothing changed; admins act for the owner (never root); no link a user plants in
their run folder is followed; a key file is only ever keys."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from harness.users import bin_dir, ok, run_as

pytestmark = pytest.mark.docker


@pytest.fixture
def thesis(ds01_home, engine_clean, unix_users, base_image_ref):
    alice = unix_users["alice"]
    ok(run_as(alice, "container-deploy", "thesis", "--image", base_image_ref, "--background"))
    return alice


def cmd(name: str) -> str:
    return str(bin_dir() / name)


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under `root` with its owner, mode and inode."""
    out = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p)] = (st.st_uid, st.st_mode, st.st_ino)
    return out


def test_another_users_project_is_refused_everywhere_and_nothing_changes(ds01_home, thesis, unix_users,
                                                                         engine_clean):  # fmt: skip
    alice, bob = thesis, unix_users["bob"]
    (bob.home / ".ssh").mkdir(exist_ok=True)
    keys = bob.home / ".ssh" / "authorized_keys"
    keys.write_text(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBobBobBobBobBobBobBobBobBobBobBobBobBobBobBob bob\n"
    )
    os.chown(keys, bob.uid, bob.gid)
    before_state = snapshot(ds01_home / "state" / "access")
    before_container = engine_clean.api.inspect_container(f"thesis._.{alice.uid}")["State"]
    foreign = f"thesis._.{alice.uid}"
    for argv in (
        ("container-ssh", foreign),
        ("container-ssh", "--user", alice.name, "thesis"),
        ("container-port", foreign, "8000"),
        ("container-port", "--user", alice.name, "thesis", "8000"),
        ("container-port", foreign, "--list"),
        ("container-port", foreign, "8000", "--remove"),
        ("container-jupyter", foreign),
        ("container-jupyter", "--user", alice.name, "thesis"),
        ("container-jupyter", foreign, "--stop"),
    ):
        r = run_as(bob, *argv, input="")
        assert r.returncode == 5, (argv, r.stderr)
    # no socket and no project folder anywhere in the run folders; no host key made, no record
    assert [p for p in snapshot(ds01_home / "users") if p.endswith(".sock") or "/thesis" in p] == []
    assert snapshot(ds01_home / "state" / "access") == before_state
    after = engine_clean.api.inspect_container(f"thesis._.{alice.uid}")["State"]
    assert (after["Status"], after["StartedAt"]) == (
        before_container["Status"],
        before_container["StartedAt"],
    )
    assert json.loads(ok(run_as(alice, "container-port", "thesis", "--list", "--json")).stdout) == []
    keys.unlink()


def test_admin_acts_for_the_owner_but_never_for_root(ds01_home, thesis):
    alice = thesis
    # root is an admin: the relay is alice's, in alice's folder
    r = subprocess.run(
        [cmd("container-port"), "--user", alice.name, "thesis", "8000", "--json"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    sock = Path(json.loads(r.stdout)["socket"])
    assert sock == ds01_home / "users" / str(alice.uid) / "thesis" / "port-8000.sock"
    assert sock.lstat().st_uid == alice.uid and stat.S_IMODE(sock.lstat().st_mode) == 0o600
    listed = json.loads(ok(run_as(alice, "container-port", "thesis", "--list", "--json")).stdout)
    assert [x["port"] for x in listed] == [8000]
    for target in ("root", "daemon"):
        r = subprocess.run(
            [cmd("container-port"), "--user", target, "thesis", "8000"], capture_output=True, text=True
        )
        assert r.returncode == 5, r.stderr
        r = subprocess.run(
            [cmd("container-jupyter"), "--user", target, "thesis"], capture_output=True, text=True
        )
        assert r.returncode == 5, r.stderr
    assert not (ds01_home / "users" / "0").exists()


def test_a_link_planted_in_the_run_folder_is_never_followed(ds01_home, thesis, tmp_path):
    alice = thesis
    ok(run_as(alice, "container-port", "thesis", "8000"))
    project = ds01_home / "users" / str(alice.uid) / "thesis"
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    victim_file = tmp_path / "victim.txt"
    victim_file.write_text("root's\n")
    before = (
        snapshot(victim_dir),
        victim_file.read_text(),
        victim_file.stat().st_uid,
        victim_file.stat().st_mode,
    )

    # the socket's own name as a link to a file: the link is replaced, the file untouched
    link = project / "port-9000.sock"
    ok(subprocess.run(["runuser", "-u", alice.name, "--", "ln", "-s", str(victim_file), str(link)],
                      capture_output=True, text=True))  # fmt: skip
    ok(run_as(alice, "container-port", "thesis", "9000"))
    assert stat.S_ISSOCK(link.lstat().st_mode)

    # the project folder swapped for a link to a root folder: refused, nothing made there
    ok(subprocess.run(["runuser", "-u", alice.name, "--", "sh", "-c",
                       f"mv {project} {project}.old && ln -s {victim_dir} {project}"],
                      capture_output=True, text=True))  # fmt: skip
    r = run_as(alice, "container-port", "thesis", "7000")
    assert r.returncode == 5 and "not a folder" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2
    after = (
        snapshot(victim_dir),
        victim_file.read_text(),
        victim_file.stat().st_uid,
        victim_file.stat().st_mode,
    )
    assert after == before
    assert os.listdir(victim_dir) == []


def test_the_key_file_is_only_keys(ds01_home, thesis):
    alice = thesis
    ssh_dir = alice.home / ".ssh"
    ssh_dir.mkdir(exist_ok=True)
    os.chown(ssh_dir, alice.uid, alice.gid)
    keys = ssh_dir / "authorized_keys"
    try:
        for text in ("PermitRootLogin yes\n", "ssh-ed25519\n", "", "# only a comment\n", "x" * 70000):
            keys.write_text(text)
            os.chown(keys, alice.uid, alice.gid)
            r = run_as(alice, "container-ssh", "thesis", input="")
            assert r.returncode == 2, (text[:30], r.stderr)
            assert "authorized_keys" in r.stderr
    finally:
        keys.unlink()
    assert not (ds01_home / "state" / "access" / "hostkeys" / str(alice.uid) / "thesis").exists()
