"""A real image registry for push tests: Debian's `docker-registry` with htpasswd (bcrypt) logins, listening
on 127.0.0.1 inside the private engine's network namespace (so its dockerd reaches it; 127.0.0.0/8 registries
are insecure-allowed by default). Never on the host's network."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PORT = 5000

CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
auth:
  htpasswd:
    realm: ds01-test
    path: {root}/htpasswd
"""


@dataclass
class Registry:
    address: str
    username: str
    password: str
    root: Path
    process: subprocess.Popen[bytes]
    netns: str


def _answers(netns: str, port: int) -> bool:
    probe = subprocess.run(
        ["nsenter", f"--net=/var/run/netns/{netns}", "python3", "-c",
         f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1).close()"],
        capture_output=True,
    )  # fmt: skip
    return probe.returncode == 0


@contextlib.contextmanager
def running(netns: str, username: str, password: str, port: int = PORT) -> Iterator[Registry]:
    binary = shutil.which("docker-registry")
    htpasswd = shutil.which("htpasswd")
    if not binary or not htpasswd:
        raise RuntimeError(
            "docker-registry and htpasswd are needed (apt-get install docker-registry apache2-utils)"
        )
    root = Path(tempfile.mkdtemp(prefix="ds01-registry-"))
    made = subprocess.run([htpasswd, "-Bbn", username, password], capture_output=True, text=True, check=True)
    (root / "htpasswd").write_text(made.stdout)
    (root / "config.yml").write_text(CONFIG.format(root=root, port=port))
    with open(root / "registry.log", "ab") as log:
        proc = subprocess.Popen(
            ["nsenter", f"--net=/var/run/netns/{netns}", binary, "serve", str(root / "config.yml")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not _answers(netns, port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the registry did not start: {(root / 'registry.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)
        yield Registry(f"127.0.0.1:{port}", username, password, root, proc, netns)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
