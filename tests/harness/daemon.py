"""A private ds01d for a test: its own config, socket, state and log dirs, talking to the private engine."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Ds01d:
    config: Path
    socket: Path
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def ds01d_program() -> str:
    return str(Path(sys.executable).parent / "ds01d")


def answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(path))
            s.sendall(b"GET /v1/version HTTP/1.1\r\nHost: ds01d\r\nConnection: close\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


def start_ds01d(
    config: Path, socket_path: Path, *, env: dict[str, str] | None = None, reaper: bool = False,
    timeout: float = 20.0,
) -> Ds01d:  # fmt: skip
    log = socket_path.with_suffix(".log")
    argv = [ds01d_program(), "--config", str(config), "--socket", str(socket_path), "--log-level", "DEBUG"]
    if not reaper:
        argv.append("--no-reaper")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DS01_")}
    full_env.update(env or {})
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
        )
    d = Ds01d(config, socket_path, log, proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ds01d exited with {proc.returncode}:\n{d.log_text()[-3000:]}")
        if socket_path.exists() and answers(socket_path):
            return d
        time.sleep(0.03)
    stop_ds01d(d)
    raise RuntimeError(f"ds01d did not answer within {timeout:g} s:\n{d.log_text()[-3000:]}")


def stop_ds01d(d: Ds01d, sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        d.process.send_signal(sig)
    try:
        d.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        d.process.kill()
        d.process.wait()
