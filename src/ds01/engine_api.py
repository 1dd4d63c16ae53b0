"""The Engine API as ds01d uses it: the request shape (JSON in and out, API version pinned), the mapping of
engine answers to ds01 errors (CONTRACT §5), and the plain data the gateway returns. The bytes go through
docker-py (`docker_gateway.DockerPyTransport`): ds01d is long-running, so its import cost is paid once.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ds01.errors import Ds01Error, EngineUnavailable, NotFound, OperationFailed

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
# Engine API 1.41 = Docker 20.10, the oldest engine we support; pinning it skips a version round trip.
API_VERSION = os.environ.get("DS01_DOCKER_API_VERSION", "1.41")
ENGINE_HINT = "is the Docker engine running? An admin starts it with `systemctl start docker`"
PERMISSION_HINT = "ds01d must run as root to use the Docker socket; ask an admin"
TOOLKIT_HINT = (
    "the NVIDIA container toolkit is missing or not configured on this host; ask an admin to install "
    "nvidia-container-toolkit, or use --cpu-only"
)


@dataclass(frozen=True)
class ContainerSummary:
    """One entry of the engine's container list."""

    id: str
    name: str
    image: str
    state: str
    status: str
    labels: Mapping[str, str]
    created: int


def container_summary(raw: Mapping[str, Any]) -> ContainerSummary:
    names = raw.get("Names") or ["/"]
    return ContainerSummary(
        id=raw["Id"],
        name=names[0].lstrip("/"),
        image=raw.get("Image", ""),
        state=raw.get("State", ""),
        status=raw.get("Status", ""),
        labels=raw.get("Labels") or {},
        created=int(raw.get("Created", 0)),
    )


def engine_address() -> str:
    """$DOCKER_HOST, or the system socket; Docker CLI contexts are ignored."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def api_error(status: int, message: str, what: str) -> Ds01Error:
    """The ds01 error for an engine answer with an error status and its message."""
    if status == 404:
        return NotFound(message or f"{what} not found")
    if "could not select device driver" in message:
        return OperationFailed("the engine cannot give this container a GPU", hint=TOOLKIT_HINT)
    prefix = f"{what}: " if what else ""
    return OperationFailed(f"{prefix}{message or f'the engine answered {status}'}")


def unreachable(address: str, *, permission: bool) -> EngineUnavailable:
    """The ds01 error when the engine cannot be reached at all."""
    if permission:
        return EngineUnavailable(f"permission denied on the Docker socket {address}", hint=PERMISSION_HINT)
    return EngineUnavailable(f"cannot reach the Docker engine at {address}", hint=ENGINE_HINT)


def demux(data: bytes) -> bytes:
    """stdout and stderr of a non-TTY stream: the payloads of its 8-byte-header frames, in order."""
    out, pos = bytearray(), 0
    while pos + 8 <= len(data):
        (size,) = struct.unpack(">L", data[pos + 4 : pos + 8])
        out += data[pos + 8 : pos + 8 + size]
        pos += 8 + size
    return bytes(out)


@dataclass(frozen=True)
class Request:
    """One request as sent: `url` from the version prefix on, `timeout` the whole wait."""

    method: str
    url: str
    data: bytes | None
    headers: dict[str, str]
    timeout: float | None
    what: str


class Transport:
    """One Engine API request: JSON (or raw bytes) back, failures as ds01 errors. Subclasses send it."""

    address: str
    timeout: float | None

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        what: str = "",
        timeout: float | None = None,
        raw: bool = False,
    ) -> Any:
        """`path` is below the version prefix and already quoted; `timeout` adds to the client's."""
        url = f"/v{API_VERSION}{path}"
        if query:
            url += "?" + urlencode(query)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        data = json.dumps(body).encode() if body is not None else None
        total = None if self.timeout is None else self.timeout + (timeout or 0)
        status, content = self._send(Request(method, url, data, headers, total, what or f"{method} {path}"))
        if status >= 400:
            raise api_error(status, _message(content), what)
        if raw:
            return content
        return json.loads(content) if content.strip() else None

    def _send(self, req: Request) -> tuple[int, bytes]:
        raise NotImplementedError


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message", "")) or body.decode(errors="replace").strip()
    except (ValueError, AttributeError):
        return body.decode(errors="replace").strip()


def unix_socket_path(address: str | None = None) -> str | None:
    """The socket path when the engine address is a Unix socket, else None."""
    host = address or engine_address()
    return host[len("unix://") :] if host.startswith("unix://") else None
