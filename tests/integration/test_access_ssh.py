"""SSH into a project's container with real OpenSSH: a test sshd stands in for the lab server, and each user's
`ssh` uses exactly the ~/.ssh/config block that ds01 printed (`ssh thesis.ds01`)."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from harness import access_lab
from harness.access_lab import SERVER, free_port, stop, wait_port
from harness.users import ok, run_as

# the first test also makes the image (debootstrap from the Debian mirror, about two minutes, once)
pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

# the shared fixtures: the image with sshd and Jupyter, and the lab server with the users' laptops
access_image = access_lab.access_image
lab = access_lab.lab


def deploy(user, name, image, *args):
    out = ok(run_as(user, "container-deploy", name, "--image", image, "--background", "--json", *args)).stdout
    return json.loads(out)


def printed_block(user):
    return ok(run_as(user, "container-ssh", "--config", "--server", SERVER)).stdout


def test_ssh_lands_in_the_container_as_the_user(lab):
    alice = lab.users["alice"]
    entry = deploy(alice, "thesis", lab.image, "--gpus", "1")
    (gpu,) = entry["gpus"]
    block = printed_block(alice)
    assert "Host *.ds01" in block and f"{alice.name}@{SERVER} container-ssh %n" in block
    laptop = lab.laptop("alice", block)
    r = ok(laptop.ssh("thesis.ds01", "id -u; pwd; echo $NVIDIA_VISIBLE_DEVICES; hostname"))
    assert r.stdout.split() == [str(alice.uid), "/workspace", gpu["uuid"], "thesis"], r.stderr
    # tmux is there (the seeds tell users to work inside it)
    ok(laptop.ssh("thesis.ds01", "command -v tmux"))

    # scp puts a file into the workspace (relative paths are relative to /workspace)
    src = alice.home / "note.txt"
    src.write_text("hello from the laptop\n")
    ok(laptop.scp(str(src), "thesis.ds01:note.txt"))
    ws = lab.home / "ws" / alice.name / "thesis" / "note.txt"
    assert ws.read_text() == "hello from the laptop\n"
    assert ws.stat().st_uid == alice.uid

    # ssh -L reaches a server on the container's own loopback
    port = free_port()
    server = laptop.popen_ssh(
        "-L", f"{port}:127.0.0.1:8765", "thesis.ds01", "exec python3 -m http.server 8765 --bind 127.0.0.1"
    )
    try:
        wait_port(port)
        body = b""
        for _ in range(50):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                break
            except OSError:
                import time

                time.sleep(0.2)
        assert b"note.txt" in body
    finally:
        stop(server)


def test_only_the_users_own_keys_log_in(lab):
    alice, bob = lab.users["alice"], lab.users["bob"]
    deploy(alice, "thesis", lab.image)
    laptop = lab.laptop("alice", printed_block(alice))
    bob_laptop = lab.laptop("bob", printed_block(bob))
    # the outer hop logs in as alice with her key; the inner login offers only bob's key: refused
    stolen = alice.home / "bob_key"  # bob's key in alice's hands
    stolen.write_bytes(bob_laptop.key.read_bytes())
    os.chown(stolen, alice.uid, alice.gid)
    stolen.chmod(0o600)
    refused = laptop.ssh("-i", str(stolen), "thesis.ds01", "true")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stderr
    ok(laptop.ssh("thesis.ds01", "true"))


def test_another_users_project_is_refused(lab):
    alice, bob = lab.users["alice"], lab.users["bob"]
    deploy(alice, "thesis", lab.image)
    bob_laptop = lab.laptop("bob", printed_block(bob))
    bob_laptop._write("authorized_keys", bob_laptop.key.with_suffix(".pub").read_text())
    other = run_as(bob, "container-ssh", f"thesis._.{alice.uid}", input="")
    assert other.returncode == 5, other.stderr
    assert run_as(bob, "container-ssh", "--user", alice.name, "thesis", input="").returncode == 5
    assert run_as(bob, "container-ssh", "thesis", input="").returncode == 3  # bob has none of that name
    # through the real route: bob's ssh gets nothing of alice's container
    r = bob_laptop.ssh(f"thesis._.{alice.uid}.ds01", "id -u")
    assert r.returncode == 255 and str(alice.uid) not in r.stdout


def test_host_key_is_stable_across_deploys(lab):
    alice = lab.users["alice"]
    deploy(alice, "thesis", lab.image)
    laptop = lab.laptop("alice", printed_block(alice))
    ok(laptop.ssh("thesis.ds01", "true"))
    known = (laptop.ssh_dir / "known_hosts").read_text()
    kept = (lab.home / "state" / "access" / "hostkeys" / str(alice.uid) / "thesis.pub").read_text().split()[1]
    assert kept in known  # the project's key, kept root-only by ds01d
    key_file = lab.home / "state" / "access" / "hostkeys" / str(alice.uid) / "thesis"
    assert key_file.stat().st_uid == 0 and key_file.stat().st_mode & 0o077 == 0
    ok(run_as(alice, "container-retire", "thesis", "--yes"))
    deploy(alice, "thesis", lab.image)
    ok(laptop.ssh("-o", "StrictHostKeyChecking=yes", "thesis.ds01", "true"))
    # a stopped container is started by the login
    ok(run_as(alice, "container-stop", "thesis"))
    assert ok(laptop.ssh("-o", "StrictHostKeyChecking=yes", "thesis.ds01", "echo up")).stdout.strip() == "up"


def test_an_image_without_sshd_gets_the_command_that_adds_it(lab, base_image_ref):
    alice = lab.users["alice"]
    deploy(alice, "plain", base_image_ref)
    laptop = lab.laptop("alice", printed_block(alice))
    r = run_as(alice, "container-ssh", "plain", input="")
    assert r.returncode != 0
    assert "image-update plain --add-system openssh-server" in r.stderr
    assert len([line for line in r.stderr.splitlines() if line.strip()]) == 1, r.stderr
    via_ssh = laptop.ssh("plain.ds01", "true")
    assert via_ssh.returncode == 255
    assert "image-update plain --add-system openssh-server" in via_ssh.stderr


def test_missing_authorized_keys_is_one_line(lab):
    alice = lab.users["alice"]
    deploy(alice, "thesis", lab.image)
    keys = alice.home / ".ssh" / "authorized_keys"
    if keys.exists():
        keys.unlink()
    r = run_as(alice, "container-ssh", "thesis", input="")
    assert r.returncode == 2 and "authorized_keys" in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2
