"""Jupyter in a project's container on a Unix socket in the owner's run folder: a real browser (Debian's
headless Chromium) renders it through an `ssh -L` tunnel, a cell runs through the REST API and the kernel's
websocket, and another user cannot connect."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import stat
import struct
import subprocess
import time
import urllib.request
import uuid

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

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
)  # fmt: skip


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail("Debian's chromium is needed for this test: apt-get install chromium")


# -- a minimal websocket client (RFC 6455), enough for Jupyter's kernel channels --------------------------
class WebSocket:
    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            assert chunk, "the websocket handshake was cut off"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "the websocket closed"
            data += chunk
        return data

    def send(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x81]) + (
            bytes([0x80 | n])
            if n < 126
            else bytes([0x80 | 126]) + struct.pack(">H", n)
            if n < 65536
            else bytes([0x80 | 127]) + struct.pack(">Q", n)
        )
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self) -> str:
        message = b""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            payload = self._exact(n)
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise AssertionError("the websocket was closed by the server")
            if opcode in (0x9, 0xA):
                continue
            message += payload
            if b0 & 0x80:
                return message.decode()

    def close(self) -> None:
        self.sock.close()


def run_cell(port: int, token: str, code: str) -> str:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/kernels?token={token}", data=b"{}", method="POST"
    )
    kernel = json.loads(urllib.request.urlopen(req, timeout=60).read())
    ws = WebSocket(port, f"/api/kernels/{kernel['id']}/channels?token={token}")
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "execute_result":
                return str(msg["content"]["data"]["text/plain"])
            if msg["msg_type"] == "error":
                raise AssertionError(f"the cell failed: {msg['content']}")
        raise AssertionError("no result from the kernel")
    finally:
        ws.close()


def test_jupyter_through_a_tunnel_in_a_real_browser(lab, tmp_path):
    alice, bob = lab.users["alice"], lab.users["bob"]
    ok(run_as(alice, "container-deploy", "nb", "--image", lab.image, "--background"))
    ok(run_as(alice, "container-run", "nb", "--", "sh", "-c", "echo '{}' > /workspace/analysis.ipynb"))
    out = ok(run_as(alice, "container-jupyter", "nb", "--server", SERVER, timeout=180)).stdout
    sock = lab.home / "users" / str(alice.uid) / "nb" / "jupyter.sock"
    line = f"ssh -N -L 8888:{sock} {alice.name}@{SERVER}"
    assert line in out, out
    token = re.search(r"http://localhost:8888/\?token=([0-9a-f]+)", out).group(1)
    st = os.stat(sock, follow_symlinks=False)
    assert stat.S_ISSOCK(st.st_mode) and st.st_uid == alice.uid and stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700

    laptop = lab.laptop("alice", ok(run_as(alice, "container-ssh", "--config", "--server", SERVER)).stdout)
    local = free_port()
    tunnel = laptop.tunnel(local, str(sock))  # the printed line, with a free local port
    try:
        url = f"http://127.0.0.1:{local}/tree?token={token}"
        assert urllib.request.urlopen(url, timeout=30).status == 200
        # no token, no notebook
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"http://127.0.0.1:{local}/api/contents", timeout=30)
        assert denied.value.code == 403

        profile = tmp_path / "chromium-profile"
        shot = tmp_path / "jupyter.png"
        browser = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        # the budget lets the page's scripts finish before the picture is taken (else it can be blank)
        ok(subprocess.run([*browser, "--virtual-time-budget=5000", f"--screenshot={shot}",
                           "--window-size=1280,800", url],
                          capture_output=True, text=True, timeout=120))  # fmt: skip
        assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        print(f"\nJupyter screenshot: {shot}")
        dom = ok(subprocess.run([*browser, "--virtual-time-budget=5000", "--dump-dom", url],
                                capture_output=True, text=True, timeout=120)).stdout  # fmt: skip
        assert re.search(r"<title>\s*Home Page - Select or create a notebook\s*</title>", dom), dom[:500]
        assert 'id="notebook_list"' in dom and "analysis.ipynb" in dom  # the listing came through
        specs = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{local}/api/kernelspecs?token={token}").read()
        )
        assert (
            specs["default"] == "nb" and "nb" in specs["kernelspecs"]
        )  # the kernel is named after the project

        assert run_cell(local, token, "1+1") == "2"
        assert run_cell(local, token, "import os; os.getuid(), os.getcwd()") == f"({alice.uid}, '/workspace')"
    finally:
        stop(tunnel)

    # another user cannot connect to the socket
    direct = subprocess.run(
        ["runuser", "-u", bob.name, "--", "python3", "-c",
         f"import socket; s = socket.socket(socket.AF_UNIX); s.connect({str(sock)!r})"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert direct.returncode != 0 and "PermissionError" in direct.stderr
    assert run_as(bob, "container-jupyter", f"nb._.{alice.uid}").returncode == 5
    assert run_as(bob, "container-jupyter", f"nb._.{alice.uid}", "--stop").returncode == 5

    # shown again with the same token; --stop ends it
    again = ok(run_as(alice, "container-jupyter", "nb", "--json")).stdout
    assert json.loads(again)["token"] == token and json.loads(again)["started"] is False
    ok(run_as(alice, "container-jupyter", "nb", "--stop"))
    assert not sock.exists()
    gone = run_as(alice, "container-run", "nb", "--", "python3", "-c",
                  "import socket; socket.create_connection(('127.0.0.1', 8888), timeout=2)")  # fmt: skip
    assert gone.returncode != 0


def test_jupyter_in_an_image_without_it_is_one_line(lab, base_image_ref):
    alice = lab.users["alice"]
    ok(run_as(alice, "container-deploy", "plain", "--image", base_image_ref, "--background"))
    r = run_as(alice, "container-jupyter", "plain", timeout=120)
    assert r.returncode == 3, r.stderr
    assert "has no Jupyter server" in r.stderr and "image-update plain" in r.stderr
    assert not (lab.home / "users" / str(alice.uid) / "plain" / "jupyter.sock").exists()


def test_deploy_with_jupyter(lab):
    alice = lab.users["alice"]
    out = ok(run_as(alice, "container-deploy", "nb2", "--image", lab.image, "--background", "--jupyter",
                    timeout=180)).stdout  # fmt: skip
    sock = lab.home / "users" / str(alice.uid) / "nb2" / "jupyter.sock"
    assert f"8888:{sock}" in out and "token=" in out and sock.exists()
    token = re.search(r"token=([0-9a-f]+)", out).group(1)
    # ds01d restarts: the server still runs, the same token is shown again, and the socket answers again
    lab.home.restart()
    shown = json.loads(ok(run_as(alice, "container-jupyter", "nb2", "--json")).stdout)
    assert shown["token"] == token and shown["started"] is False and shown["socket"] == str(sock)

    ask = f"GET /api/status?token={token} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode()
    answer = until(lambda: ask_unix(sock, ask), 30, 0.2)  # the restarted ds01d's relay may not be up yet
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
