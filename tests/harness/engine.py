"""A private dockerd with its own data root, exec root, socket and network namespace, and a fake NVIDIA
hook on its PATH.

The namespace matters: a `--bridge=none` dockerd in the host's namespace deletes an existing `docker0`,
which breaks the system engine of a lab server that runs the tests. `ip netns exec` does not work on a
cgroup-v1 host (it remounts /sys), so dockerd is started under `nsenter --net=`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HOOK = """#!/bin/sh
# Fake nvidia-container-runtime-hook: dockerd registers its `nvidia` device driver when this is on PATH,
# and runc runs it as an OCI prestart hook for GPU device requests. It records the call and succeeds.
state=$(cat)
echo "$* $state" >> {log}
exit 0
"""


@dataclass
class Engine:
    root: Path
    socket: Path
    pid: int
    hook_log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    netns: str | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def hook_calls(self) -> list[str]:
        return self.hook_log.read_text().splitlines() if self.hook_log.exists() else []


def start_engine(timeout: float = 30.0) -> Engine:
    dockerd = shutil.which("dockerd")
    if not dockerd:
        raise RuntimeError("dockerd is not installed (apt-get install docker.io)")
    # short path: unix socket paths are limited to 108 bytes
    root = Path(tempfile.mkdtemp(prefix="ds01e-", dir="/tmp"))
    os.chmod(root, 0o755)
    bindir = root / "bin"
    bindir.mkdir()
    hook_log = root / "hook-calls.log"
    hook = bindir / "nvidia-container-runtime-hook"
    hook.write_text(HOOK.format(log=hook_log))
    hook.chmod(0o755)
    socket = root / "docker.sock"
    env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}")
    env.pop("DOCKER_HOST", None)
    netns = f"ds01t-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", netns], capture_output=True, text=True)
    if made.returncode != 0:
        raise RuntimeError(f"cannot make a network namespace for the test engine: {made.stderr.strip()}")
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], capture_output=True)
    log = open(root / "dockerd.log", "wb")  # noqa: SIM115 - kept open for the daemon's lifetime
    proc = subprocess.Popen(
        [
            "nsenter", f"--net=/var/run/netns/{netns}", dockerd,
            "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "dockerd.pid"), "-H", f"unix://{socket}",
            "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false",
            "--userland-proxy=false", "--storage-driver=overlay2",
        ],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
            tail = (root / "dockerd.log").read_text()[-2000:]
            raise RuntimeError(f"dockerd exited with {proc.returncode}:\n{tail}")
        if socket.exists() and _answers(socket):
            return Engine(
                root=root, socket=socket, pid=proc.pid, hook_log=hook_log, process=proc, netns=netns
            )
        time.sleep(0.1)
    proc.kill()
    subprocess.run(["ip", "netns", "del", netns], capture_output=True)
    raise RuntimeError("dockerd did not answer within 30 s")


def _answers(socket: Path) -> bool:
    import http.client
    import socket as sock

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = sock.socket(sock.AF_UNIX, sock.SOCK_STREAM)
            self.sock.connect(str(socket))

    try:
        conn = Conn("localhost", timeout=2)
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False


def stop_engine(engine: Engine) -> None:
    """SIGTERM, then SIGKILL after 15 s; waited for (and so reaped) when this process started it."""
    try:
        os.kill(engine.pid, signal.SIGTERM)
        if engine.process is not None:
            try:
                engine.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                engine.process.kill()
                engine.process.wait()
        else:
            for _ in range(150):
                os.kill(engine.pid, 0)
                time.sleep(0.1)
            os.kill(engine.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    subprocess.run(["umount", "-R", str(engine.root / "exec")], capture_output=True)
    subprocess.run(
        ["bash", "-c", f"grep -o ' {engine.root}[^ ]*' /proc/mounts | sort -r | xargs -r umount -l"],
        capture_output=True,
    )
    shutil.rmtree(engine.root, ignore_errors=True)
    if engine.netns:
        subprocess.run(["ip", "netns", "del", engine.netns], capture_output=True)
