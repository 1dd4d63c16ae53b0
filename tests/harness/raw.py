"""Raw requests to ds01d as a real Unix user: what a hostile client could send, byte for byte."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.users import TestUser

_SCRIPT = r"""
import json, socket, sys
path, method, target, extra = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
body = sys.stdin.buffer.read()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(60)
s.connect(path)
head = f"{method} {target} HTTP/1.1\r\nHost: ds01d\r\nConnection: close\r\nContent-Type: application/json\r\n"
if extra:
    head += extra + "\r\n"
head += f"Content-Length: {len(body)}\r\n\r\n"
try:
    s.sendall(head.encode() + body)
except (BrokenPipeError, ConnectionResetError):
    pass  # ds01d answered before reading it all
data = b""
while chunk := s.recv(65536):
    data += chunk
sys.stdout.buffer.write(data)
"""


@dataclass(frozen=True)
class Answer:
    status: int
    lines: list[dict[str, Any]]

    @property
    def error(self) -> dict[str, Any] | None:
        last = self.lines[-1] if self.lines else {}
        return last.get("error")

    @property
    def result(self) -> Any:
        last = self.lines[-1] if self.lines else {}
        return last.get("result")

    @property
    def exit_code(self) -> int:
        err = self.error
        return int(err["exit_code"]) if err else 0


def request(
    user: TestUser | None,
    socket_path: Path,
    method: str,
    target: str,
    body: Any = None,
    *,
    upload: bytes | None = None,
) -> Answer:
    """Send one request as `user` (None: as root) and parse the JSON-lines answer. With `upload`, the body
    goes in the X-Ds01-Body header (as for a build) and `upload` is the HTTP body."""
    raw = body if isinstance(body, str) else json.dumps(body if body is not None else {})
    data, extra = raw.encode(), ""
    if upload is not None:
        data, extra = upload, f"X-Ds01-Body: {raw}"
    argv = [sys.executable, "-c", _SCRIPT, str(socket_path), method, target, extra]
    if user is not None:
        argv = ["runuser", "-u", user.name, "--", *argv]
    out = subprocess.run(argv, input=data, capture_output=True, timeout=120, check=True).stdout
    head, _, rest = out.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return Answer(status, [json.loads(line) for line in rest.splitlines() if line.strip()])


_SHUTTLE = r"""
import json, socket, sys
path = sys.argv[1]
for raw in sys.stdin:
    req = json.loads(raw)
    body = req["body"].encode("utf-8", "surrogatepass")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(120)
    s.connect(path)
    head = f"{req['method']} {req['target']} HTTP/1.1\r\nHost: ds01d\r\nConnection: close\r\n"
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    try:
        s.sendall(head.encode("utf-8", "surrogateescape") + body)
    except (BrokenPipeError, ConnectionResetError):
        pass
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    sys.stdout.write(json.dumps(data.decode("utf-8", "replace")) + "\n")
    sys.stdout.flush()
"""


class Shuttle:
    """One process running as `user` that sends many raw requests in turn (fast, for generated inputs)."""

    def __init__(self, user: TestUser, socket_path: Path) -> None:
        self.proc = subprocess.Popen(
            ["runuser", "-u", user.name, "--", sys.executable, "-c", _SHUTTLE, str(socket_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def send(self, method: str, target: str, body: str) -> Answer:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"method": method, "target": target, "body": body}) + "\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        head, _, rest = out.partition("\r\n\r\n")
        status = int(head.split(" ", 2)[1])
        return Answer(status, [json.loads(line) for line in rest.splitlines() if line.strip()])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)
