"""A stand-in for the lab server and the users' laptops, for the SSH, Jupyter and port tests.

- `LabServer`: Debian's own sshd, run as root on 127.0.0.1 at a free port with its own config and host key
  (`UsePAM no`, key-only logins), whose sessions find ds01's commands and the test's ds01d socket.
- `Laptop`: a test user's ~/.ssh (a key pair, authorized_keys, known_hosts) and ~/.ssh/config made of the
  entry for the lab server plus exactly the block ds01 printed; `ssh()` runs OpenSSH's client as that user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.users import TestUser, bin_dir

SERVER = "labserver"  # the name the laptops use for the lab server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class LabServer:
    port: int
    folder: Path
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self.proc.poll() is None:
            self.proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self) -> str:
        return (self.folder / "sshd.log").read_text(errors="replace")


def ask_unix(path: Path, request: bytes) -> bytes | None:
    """One request through a Unix socket (a port's or Jupyter's relay): the whole answer, or None when the
    socket is not there yet, or the connection was refused, reset or closed before the request went (the
    relay, or the server behind it, may still be starting)."""
    answer = b""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
            s.sendall(request)
            while chunk := s.recv(65536):
                answer += chunk
    except (ConnectionError, FileNotFoundError):
        return None
    return answer or None


def start_lab_server(ds01_socket: Path, users: Sequence[TestUser]) -> LabServer:
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd):
        raise RuntimeError("OpenSSH's server is needed: apt-get install openssh-server")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    for u in users:  # key-only login: `!` (locked) would refuse them with UsePAM no
        subprocess.run(["usermod", "-p", "*", u.name], check=True, capture_output=True)
    folder = Path(tempfile.mkdtemp(prefix="ds01-lab-sshd-"))
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "host_key")], check=True
    )
    port = free_port()
    path = f"{bin_dir()}:/usr/local/bin:/usr/bin:/bin"
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder}/host_key\nPidFile {folder}/sshd.pid\n"
        "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin no\nAllowTcpForwarding yes\nAllowStreamLocalForwarding yes\nPrintMotd no\n"
        f"AllowUsers {' '.join(u.name for u in users)}\n"
        f'SetEnv "DS01_SOCKET={ds01_socket}" "PATH={path}"\n'
        "MaxStartups 100\n"
    )
    log = open(folder / "sshd.log", "wb")  # noqa: SIM115 - kept by the process
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(folder / "sshd_config")], stdout=log, stderr=log)
    wait_port(port)
    return LabServer(port, folder, proc)


def _as(user: TestUser, argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
    env = [f"HOME={user.home}", f"USER={user.name}", "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"]
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        ["runuser", "-u", user.name, "--", "env", "-i", *env, *argv], capture_output=True, text=True, **kw
    )


@dataclass
class Laptop:
    user: TestUser
    lab: LabServer

    @property
    def ssh_dir(self) -> Path:
        return self.user.home / ".ssh"

    @property
    def key(self) -> Path:
        return self.ssh_dir / "id_ed25519"  # the default identity: the printed block names none

    def setup(self, printed_block: str) -> None:
        """Keys, authorized_keys and ~/.ssh/config: the lab server's entry, then ds01's block verbatim."""
        d = self.ssh_dir
        d.mkdir(mode=0o700, exist_ok=True)
        os.chown(d, self.user.uid, self.user.gid)
        for f in d.glob("id_ed25519*"):
            f.unlink()
        r = _as(
            self.user,
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.user.name, "-f", str(self.key)],
        )
        assert r.returncode == 0, r.stderr
        self._write("authorized_keys", self.key.with_suffix(".pub").read_text())
        self._write("known_hosts", "")
        self._write(
            "config",
            printed_block + f"\nHost {SERVER}\n    HostName 127.0.0.1\n    Port {self.lab.port}\n"
            f"    IdentityFile {self.key}\n"
            f"\nHost *\n    IdentitiesOnly yes\n    StrictHostKeyChecking accept-new\n"
            f"    UserKnownHostsFile {d}/known_hosts\n"
            "    BatchMode yes\n    ConnectTimeout 20\n",
        )

    def _write(self, name: str, text: str) -> None:
        path = self.ssh_dir / name
        path.write_text(text)
        os.chown(path, self.user.uid, self.user.gid)
        path.chmod(0o600)

    def ssh(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return _as(self.user, ["ssh", *args], timeout=timeout)

    def scp(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return _as(self.user, ["scp", *args], timeout=timeout)

    def popen_ssh(self, *args: str) -> subprocess.Popen[str]:
        env = [f"HOME={self.user.home}", f"USER={self.user.name}", "PATH=/usr/local/bin:/usr/bin:/bin"]
        return subprocess.Popen(
            ["runuser", "-u", self.user.name, "--", "env", "-i", *env, "ssh", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def tunnel(self, local_port: int, target: str) -> subprocess.Popen[str]:
        """`ssh -N -L local_port:target labserver`, up when the local port answers."""
        proc = self.popen_ssh("-N", "-o", "ExitOnForwardFailure=yes", "-L", f"{local_port}:{target}", SERVER)
        try:
            wait_port(local_port)
        except TimeoutError:
            proc.kill()
            raise AssertionError(f"the tunnel did not come up: {proc.communicate()[1]}") from None
        return proc

    def cleanup(self) -> None:
        for name in ("config", "authorized_keys", "known_hosts", "id_ed25519", "id_ed25519.pub"):
            with contextlib.suppress(OSError):
                (self.ssh_dir / name).unlink()


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


# -- fixtures (imported by the access tests) --------------------------------------------------------------
import pytest  # noqa: E402


@dataclass
class LabWorld:
    server: LabServer
    home: Path  # the test's ds01 world (ds01_home)
    users: dict[str, TestUser]
    image: str
    laptops: dict[str, Laptop]

    def laptop(self, name: str, block: str) -> Laptop:
        laptop = Laptop(self.users[name], self.server)
        laptop.setup(block)
        self.laptops[name] = laptop
        return laptop


@pytest.fixture(scope="session")
def access_image(docker_engine: object, unix_users: dict[str, TestUser]) -> str:
    from harness.access_image import import_access_image

    return import_access_image(docker_engine.host, unix_users.values())  # type: ignore[attr-defined]


@pytest.fixture
def lab(ds01_home: Path, unix_users: dict[str, TestUser], engine_client: object, access_image: str):  # type: ignore[no-untyped-def]
    server = start_lab_server(ds01_home / "ds01.sock", list(unix_users.values()))
    world = LabWorld(server, ds01_home, unix_users, access_image, {})
    yield world
    for laptop in world.laptops.values():
        laptop.cleanup()
    server.stop()
    api = engine_client.api  # type: ignore[attr-defined]
    for c in api.containers(all=True):
        api.remove_container(c["Id"], force=True)
