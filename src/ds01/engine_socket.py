"""Read-only Engine API calls over the Docker Unix socket, without docker-py.

Status commands (`gpu-status`) list every container on each run; importing docker-py alone costs about
70 ms, half of their time budget. This reader speaks the same API version as `docker_gateway` for the two
calls they need (list, inspect) and returns the same shapes. Anything that changes state goes through
`docker_gateway`.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from ds01.errors import EngineUnavailable, NotFound, OperationFailed

DEFAULT_SOCKET = "/var/run/docker.sock"
API_VERSION = os.environ.get("DS01_DOCKER_API_VERSION", "1.41")
ENGINE_HINT = "is the Docker daemon running? On a lab server run ds01 commands through the lab's sudo rule"


@dataclass(frozen=True)
class ContainerRow:
    """One entry of the engine's container list (the fields `docker_gateway.ContainerSummary` has)."""

    id: str
    name: str
    image: str
    state: str
    status: str
    labels: Mapping[str, str]
    created: int


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class SocketReader:
    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout

    def _get(self, url: str, what: str) -> Any:
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request("GET", f"/v{API_VERSION}{url}")
            response = conn.getresponse()
            body = response.read()
        except PermissionError as exc:
            raise EngineUnavailable(
                f"permission denied on the Docker socket {self.path}",
                hint="run ds01 through the lab's sudo rule (e.g. `sudo gpu-status`) or ask an admin",
            ) from exc
        except OSError as exc:
            raise EngineUnavailable(
                f"cannot reach the Docker engine at unix://{self.path}", hint=ENGINE_HINT
            ) from exc
        finally:
            conn.close()
        if response.status == 404:
            raise NotFound(f"{what} not found")
        if response.status >= 400:
            message = _message(body)
            raise OperationFailed(f"{what}: {message}")
        return json.loads(body)

    def containers(
        self, *, labels: list[str] | None = None, name: str | None = None, all: bool = True
    ) -> list[ContainerRow]:
        filters: dict[str, list[str]] = {}
        if labels:
            filters["label"] = labels
        if name:
            filters["name"] = [name]
        query = urlencode({"all": "1" if all else "0", "filters": json.dumps(filters)})
        return [_row(c) for c in self._get(f"/containers/json?{query}", "container list")]

    def inspect(self, ref: str) -> dict[str, Any]:
        return dict(self._get(f"/containers/{quote(ref, safe='')}/json", f"container {ref}"))


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message", "")) or body.decode(errors="replace")
    except (ValueError, AttributeError):
        return body.decode(errors="replace").strip()


def _row(raw: Mapping[str, Any]) -> ContainerRow:
    names = raw.get("Names") or ["/"]
    return ContainerRow(
        id=raw["Id"],
        name=names[0].lstrip("/"),
        image=raw.get("Image", ""),
        state=raw.get("State", ""),
        status=raw.get("Status", ""),
        labels=raw.get("Labels") or {},
        created=int(raw.get("Created", 0)),
    )


def unix_socket_path() -> str | None:
    """The engine's socket path when DOCKER_HOST is a Unix socket (or unset), else None."""
    host = os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    return host[len("unix://") :] if host.startswith("unix://") else None
