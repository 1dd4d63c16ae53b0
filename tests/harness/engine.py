"""A private dockerd with its own data root, exec root, socket and network namespace, a fake NVIDIA hook on
its PATH, and a fake `nvidia` runtime as its DEFAULT runtime (as on a GPU server set up the common way).

The fake runtime is runc itself (exec'd with the same arguments, so every container behaves exactly as under
runc); it only records, for each container it creates, the NVIDIA_VISIBLE_DEVICES the real
nvidia-container-runtime would act on (`runtime_calls()`): `void` means no GPU reaches the container.

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


RUNTIME = """#!/bin/sh
# Fake `nvidia` runtime: runc with the same arguments. On `create` it records the container id and the
# NVIDIA_VISIBLE_DEVICES of its OCI spec (what nvidia-container-runtime would expose; unset: `-`).
bundle=""
prev=""
for arg in "$@"; do
    [ "$prev" = "--bundle" ] && bundle="$arg"
    case "$arg" in --bundle=*) bundle="${{arg#--bundle=}}";; esac
    prev="$arg"
done
case " $* " in
    *" create "*)
        if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
            visible=$(grep -o '"NVIDIA_VISIBLE_DEVICES=[^"]*"' "$bundle/config.json" | tail -n 1 | tr -d '"')
            echo "$(basename "$bundle") ${{visible#NVIDIA_VISIBLE_DEVICES=}}" >> {log}
        fi;;
esac
exec {runc} "$@"
"""


@dataclass
class Engine:
    root: Path
    socket: Path
    pid: int
    hook_log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    netns: str | None = None
    argv: list[str] = field(default_factory=list, repr=False)
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def runtime_log(self) -> Path:
        return self.root / "runtime-calls.log"

    def hook_calls(self) -> list[str]:
        return self.hook_log.read_text().splitlines() if self.hook_log.exists() else []

    def runtime_calls(self) -> dict[str, str]:
        """container id -> the NVIDIA_VISIBLE_DEVICES the fake runtime saw when it created it (`-`: unset)."""
        if not self.runtime_log.exists():
            return {}
        out = {}
        for line in self.runtime_log.read_text().splitlines():
            cid, _, visible = line.partition(" ")
            out[cid] = visible or "-"
        return out


def start_engine(timeout: float = 30.0, *, iptables: bool = False) -> Engine:
    """`iptables=True`: dockerd keeps its bridge networks apart with iptables rules, as on a lab server; they
    live in the engine's own network namespace (netfilter tables are per namespace), never the host's."""
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
    runc = shutil.which("runc") or "/usr/sbin/runc"
    runtime = bindir / "nvidia-runtime"
    runtime.write_text(RUNTIME.format(log=root / "runtime-calls.log", runc=runc))
    runtime.chmod(0o755)
    socket = root / "docker.sock"
    env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}")
    env.pop("DOCKER_HOST", None)
    netns = f"ds01t-{os.getpid()}" + ("-ipt" if iptables else "")
    made = subprocess.run(["ip", "netns", "add", netns], capture_output=True, text=True)
    if made.returncode != 0:
        raise RuntimeError(f"cannot make a network namespace for the test engine: {made.stderr.strip()}")
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], capture_output=True)
    argv = [
        "nsenter", f"--net=/var/run/netns/{netns}", dockerd,
        "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
        "--pidfile", str(root / "dockerd.pid"), "-H", f"unix://{socket}",
        "--bridge=none", f"--iptables={str(iptables).lower()}", "--ip-masq=false", "--ip6tables=false",
        "--userland-proxy=false", "--storage-driver=overlay2",
        "--add-runtime", f"nvidia={runtime}", "--default-runtime", "nvidia",
    ]  # fmt: skip
    engine = Engine(root=root, socket=socket, pid=0, hook_log=hook_log, netns=netns, argv=argv, env=env)
    try:
        _launch(engine, timeout)
    except RuntimeError:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        raise
    return engine


def _launch(engine: Engine, timeout: float) -> None:
    """Start dockerd with the engine's argv and wait until it answers on its socket."""
    with open(engine.root / "dockerd.log", "ab") as log:
        proc = subprocess.Popen(
            engine.argv, stdout=log, stderr=subprocess.STDOUT, env=engine.env, start_new_session=True
        )
    engine.process, engine.pid = proc, proc.pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (engine.root / "dockerd.log").read_text()[-2000:]
            raise RuntimeError(f"dockerd exited with {proc.returncode}:\n{tail}")
        if engine.socket.exists() and _answers(engine.socket):
            return
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"dockerd did not answer within {timeout:g} s")


def _terminate(engine: Engine) -> None:
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


def restart_engine(engine: Engine, *, down_s: float = 0.0, timeout: float = 30.0) -> None:
    """Stop and start the SAME private engine (data root, exec root, socket, network namespace): containers
    it ran are stopped by the restart, as on a host whose dockerd restarts without live-restore."""
    _terminate(engine)
    subprocess.run(["umount", "-R", str(engine.root / "exec")], capture_output=True)
    time.sleep(down_s)
    _launch(engine, timeout)


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
    """Stop the engine for good and remove everything it had."""
    _terminate(engine)
    subprocess.run(["umount", "-R", str(engine.root / "exec")], capture_output=True)
    subprocess.run(
        ["bash", "-c", f"grep -o ' {engine.root}[^ ]*' /proc/mounts | sort -r | xargs -r umount -l"],
        capture_output=True,
    )
    shutil.rmtree(engine.root, ignore_errors=True)
    if engine.netns:
        subprocess.run(["ip", "netns", "del", engine.netns], capture_output=True)
