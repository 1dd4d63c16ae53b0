"""The endpoint table: each resource module declares its routes with `@route`, one operation each.

    @route("POST", "/containers/{name}/start", StartBody)
    def start(req: Request[StartBody]) -> dict[str, Any]: ...

The body is parsed by its declared schema before the handler runs; `admin=True` refuses non-admins first
(one check, never inline). The handler returns the `result` (any JSON value); `req.emit` streams events and
`req.ctx.out` messages to the client as they happen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Generic, TypeVar

from ds01.daemon.schema import Empty

if TYPE_CHECKING:
    from ds01.context import Context
    from ds01.daemon.caller import Caller
    from ds01.daemon.service import Daemon

B = TypeVar("B")


@dataclass
class Request(Generic[B]):
    caller: Caller
    body: B
    params: dict[str, str]
    ctx: Context
    daemon: Daemon
    emit: Callable[[str, Any], None]
    upload: IO[bytes] | None = None
    upload_length: int = 0
    connection: Any = field(default=None, repr=False)  # the client's socket (for passing descriptors)


Handler = Callable[[Request[Any]], Any]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    body: type[Any]
    handler: Handler
    admin: bool = False
    upload: bool = False  # the HTTP body is a stream (a build context); the JSON body is in a header
    regex: re.Pattern[str] = field(default=re.compile(""), compare=False)

    @property
    def name(self) -> str:
        return f"{self.method} {self.pattern}"


ROUTES: list[Route] = []
_PARAM = re.compile(r"\{(\w+)\}")


def route(
    method: str, pattern: str, body: type[Any] = Empty, *, admin: bool = False, upload: bool = False
) -> Callable[[Handler], Handler]:
    regex = re.compile("^" + _PARAM.sub(r"(?P<\1>[^/]+)", pattern) + "$")

    def register(fn: Handler) -> Handler:
        ROUTES.append(Route(method, pattern, body, fn, admin, upload, regex))
        return fn

    return register


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | bool | None:
    """(route, params); False when the path exists under another method; None when nothing matches."""
    other = False
    for r in ROUTES:
        m = r.regex.match(path)
        if m:
            if r.method == method:
                return r, m.groupdict()
            other = True
    return other or None


def all_routes() -> Iterator[Route]:
    load_endpoints()
    yield from ROUTES


ENDPOINT_MODULES = (
    "system", "containers", "exec", "images", "workspaces", "gpus", "lifecycle", "orchestration",
    "access", "observability", "enforcement", "queue", "quotas", "image_transfer", "run_once",
    "cluster",
)  # fmt: skip


def load_endpoints() -> None:
    import importlib

    for name in ENDPOINT_MODULES:
        importlib.import_module(f"ds01.daemon.endpoints.{name}")
