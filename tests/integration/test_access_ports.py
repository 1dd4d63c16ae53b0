"""A port of a container made reachable as a Unix socket in the owner's run folder, through a real `ssh -L`
from the user's laptop to the lab server; nobody else can connect."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import subprocess
import time

import pytest

from harness import access_lab
from harness.access_lab import SERVER, ask_unix, free_port, stop
from harness.poll import until
from harness.users import ok, run_as

# the first test also makes the image (debootstrap from the Debian mirror, about two minutes, once)
pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

# the shared fixtures: the image with sshd and Jupyter, and the lab server with the users' laptops
access_image = access_lab.access_image
lab = access_lab.lab


def serve(user, name, port):
    """A web server on the container's own loopback, left running (its own session)."""
    ok(run_as(user, "container-run", name, "--", "sh", "-c",
              f"echo served-from-{name} > /workspace/index.html; "
              f"setsid python3 -m http.server {port} --bind 127.0.0.1 --directory /workspace "
              ">/dev/null 2>&1 </dev/null &"))  # fmt: skip


def curl(port, path="/", tries=50):
    last = None
    for _ in range(tries):
        r = subprocess.run(["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{port}{path}"],
                           capture_output=True, text=True)  # fmt: skip
        if r.returncode == 0 and r.stdout:
            return r.stdout
        last = r
        time.sleep(0.2)
    raise AssertionError(f"curl failed: {last.stderr if last else ''}")


def fetch_unix(path, url, timeout=10):
    """GET `url` through the relay's socket (the server in the container may still be starting)."""
    return until(lambda: ask_unix(path, f"GET {url} HTTP/1.0\r\n\r\n".encode()), timeout, 0.2)


def test_a_port_reaches_the_laptop_and_nobody_else(lab):
    alice, bob = lab.users["alice"], lab.users["bob"]
    ok(run_as(alice, "container-deploy", "web", "--image", lab.image, "--background"))
    serve(alice, "web", 8000)
    out = ok(run_as(alice, "container-port", "web", "8000", "--server", SERVER)).stdout
    sock = lab.home / "users" / str(alice.uid) / "web" / "port-8000.sock"
    assert str(sock) in out and f"ssh -N -L 8000:{sock} {alice.name}@{SERVER}" in out

    st = os.stat(sock, follow_symlinks=False)
    assert stat.S_ISSOCK(st.st_mode) and st.st_uid == alice.uid and stat.S_IMODE(st.st_mode) == 0o600
    for folder in (sock.parent, sock.parent.parent):
        fst = folder.stat()
        assert fst.st_uid == alice.uid and stat.S_IMODE(fst.st_mode) == 0o700
    assert (lab.home / "users").stat().st_uid == 0

    laptop = lab.laptop("alice", ok(run_as(alice, "container-ssh", "--config", "--server", SERVER)).stdout)
    local = free_port()
    tunnel = laptop.tunnel(local, str(sock))
    try:
        assert "served-from-web" in curl(local, "/index.html")
    finally:
        stop(tunnel)

    # bob: the socket is out of reach directly, through his own ssh -L, and through ds01
    probe = run_as(bob, "ds01-doctor", "--help")  # bob exists and can run commands
    assert probe.returncode == 0
    direct = subprocess.run(
        ["runuser", "-u", bob.name, "--", "python3", "-c",
         f"import socket; s = socket.socket(socket.AF_UNIX); s.connect({str(sock)!r})"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert direct.returncode != 0 and "PermissionError" in direct.stderr
    bob_laptop = lab.laptop("bob", ok(run_as(bob, "container-ssh", "--config", "--server", SERVER)).stdout)
    bob_local = free_port()
    bob_tunnel = bob_laptop.popen_ssh("-N", "-L", f"{bob_local}:{sock}", SERVER)
    try:
        time.sleep(1.5)
        r = subprocess.run(["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{bob_local}/index.html"],
                           capture_output=True, text=True)  # fmt: skip
        assert "served-from-web" not in r.stdout and r.returncode != 0
    finally:
        stop(bob_tunnel)
    assert run_as(bob, "container-port", f"web._.{alice.uid}", "9000").returncode == 5
    assert run_as(bob, "container-port", f"web._.{alice.uid}", "--list").returncode == 5
    assert run_as(bob, "container-port", f"web._.{alice.uid}", "8000", "--remove").returncode == 5
    assert sock.exists()

    listed = json.loads(ok(run_as(alice, "container-port", "web", "--list", "--json")).stdout)
    assert [(r["port"], r["socket"]) for r in listed] == [(8000, str(sock))]
    ok(run_as(alice, "container-port", "web", "8000", "--remove"))
    assert not sock.exists()
    assert json.loads(ok(run_as(alice, "container-port", "web", "--list", "--json")).stdout) == []
    again = run_as(alice, "container-port", "web", "8000", "--remove")
    assert again.returncode == 3


def test_deploy_with_port_and_bad_ports(lab):
    alice = lab.users["alice"]
    out = ok(run_as(alice, "container-deploy", "api", "--image", lab.image, "--background", "--port", "8080",
                    "--port", "6006")).stdout  # fmt: skip
    sock = lab.home / "users" / str(alice.uid) / "api" / "port-8080.sock"
    assert str(sock) in out and sock.exists()
    assert (sock.parent / "port-6006.sock").exists()
    serve(alice, "api", 8080)
    # the relay connects at each connection: a server started after the relay is reached
    assert b"served-from-api" in fetch_unix(sock, "/index.html")
    for bad in ("0", "65536", "http", "80x"):
        r = run_as(alice, "container-port", "api", bad)
        assert r.returncode == 2, (bad, r.stderr)
        assert len(r.stderr.strip().splitlines()) <= 3
    # nothing listens on 6006: the connection is closed, the relay stays for later
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock.parent / "port-6006.sock"))
        s.settimeout(10)
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(1) == b""
    assert (sock.parent / "port-6006.sock").exists()

    # ds01d restarts: the relays are opened again by themselves, before any request, and work
    lab.home.restart()
    # the old socket file may still be there until the restored relay binds it anew: fetch_unix retries
    assert b"served-from-api" in fetch_unix(sock, "/index.html")
    listed = json.loads(ok(run_as(alice, "container-port", "api", "--list", "--json")).stdout)
    assert sorted(r["port"] for r in listed) == [6006, 8080]
    assert b"served-from-api" in fetch_unix(sock, "/index.html")
    assert sock.lstat().st_uid == alice.uid
