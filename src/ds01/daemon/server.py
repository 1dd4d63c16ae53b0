"""ds01d's HTTP/1.1 server on its Unix socket: one thread per connection, one request per connection.

Every request is judged by the socket's peer credentials (`caller.caller_of`), its body by the route's
declared schema; then the handler runs with a `Context` for the caller, and its messages, events and the
result or error stream back as JSON lines (see `ds01.protocol`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from ds01 import protocol
from ds01.context import Context
from ds01.daemon import metrics, routes
from ds01.daemon.caller import Caller, caller_of
from ds01.daemon.schema import parse
from ds01.daemon.service import Daemon
from ds01.daemon.stream_output import StreamOutput
from ds01.errors import Ds01Error, NotFound, PermissionDenied, UsageError
from ds01.events import log_event

log = logging.getLogger("ds01d")


class _Stream:
    """The answer: headers on the first line out; afterwards each line is written and flushed."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self.handler = handler
        self.started = False
        self.closed = False
        self._lock = threading.Lock()

    def start(self, status: int = 200) -> None:
        if self.started:
            return
        self.started = True
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", "application/x-ndjson")
        h.send_header("Connection", "close")
        h.end_headers()

    def write(self, kind: str, value: Any, status: int = 200) -> None:
        with self._lock:
            if self.closed:
                return
            self.start(status)
            try:
                self.handler.wfile.write(protocol.line(kind, value))
                self.handler.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.closed = True  # the client went away; the operation still finishes in here


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def address_string(self) -> str:  # the stock one indexes a TCP address (IndexError on Unix sockets)
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s", format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a request line or header over 64 KiB, bad syntax, an unknown method,
        another HTTP version) as the protocol's error line, like every other answer: one line, exit 2."""
        self.close_connection = True
        err = UsageError(
            f"ds01d refused the request: {message or HTTPStatus(code).phrase}",
            hint="shorten the values given, or use ds01's own commands",
        )
        _Stream(self).write("error", protocol.error_payload(err), code)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        self.close_connection = True
        started = time.monotonic()
        stream = _Stream(self)
        caller: Caller | None = None
        route_name = "?"
        try:
            caller = caller_of(self.request)
            url = urlsplit(self.path)
            path = unquote(url.path)
            if not path.startswith(protocol.API + "/"):
                raise NotFound(f"no endpoint {path}", hint="the client and ds01d differ in version?")
            found = routes.match(self.command, path.removeprefix(protocol.API))
            if not found:
                raise NotFound(f"no endpoint {self.command} {path}")
            if found is True:
                raise UsageError(f"{self.command} is not allowed on {path}")
            assert not isinstance(found, bool)
            route, params = found
            route_name = route.name
            self._run(route, params, url.query, caller, stream)
        except Ds01Error as err:
            self._fail(err, stream, caller, route_name)
        except Exception as exc:  # a bug in ds01d: one line to the client, the traceback to the log
            log.exception("internal error in %s", route_name)
            self._fail(
                Ds01Error(f"ds01d internal error: {type(exc).__name__}: {exc}", hint="see ds01d's log"),
                stream,
                caller,
                route_name,
            )
        finally:
            took = time.monotonic() - started
            metrics.observe_request(route_name, took)
            log.debug("%s %s %.1f ms", route_name, caller and caller.uid, took * 1e3)

    def _body(self, route: routes.Route, query: str) -> Any:
        if self.command == "GET":
            return parse(route.body, dict(parse_qsl(query, keep_blank_values=True)), coerce=True)
        if route.upload:
            raw = self.headers.get(protocol.BODY_HEADER) or "{}"
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length > protocol.MAX_BODY:
                raise UsageError(f"the request body is over {protocol.MAX_BODY} bytes")
            raw = self.rfile.read(length).decode("utf-8", "replace") if length else "{}"
            self.body_read = True
        try:
            data = json.loads(raw)
        except ValueError:
            raise UsageError("the request body is not valid JSON") from None
        return parse(route.body, data)

    def _discard(self, length: int, most: int = 16 << 20) -> None:
        """Read and drop a refused body (bounded), so the client can read the answer instead of a reset."""
        left = min(length, most)
        while left > 0 and (chunk := self.rfile.read(min(left, 1 << 16))):
            left -= len(chunk)

    def _run(
        self, route: routes.Route, params: dict[str, str], query: str, caller: Caller, stream: _Stream
    ) -> None:
        daemon = self.server.daemon
        body = self._body(route, query)
        ctx = Context(
            config=daemon.config, user=caller.user, out=StreamOutput(stream.write),
            gateway_factory=daemon.gateway,
        )  # fmt: skip
        if route.admin and not ctx.is_admin:
            raise PermissionDenied(f"{route.pattern.strip('/').split('/')[0]}: only admins may do this")
        target = getattr(body, "user", None)
        if target:
            ctx.target_user(target)  # first, for every endpoint: admins only, never root or a system account
        length = int(self.headers.get("Content-Length") or 0) if route.upload else 0
        req = routes.Request(
            caller=caller, body=body, params=params, ctx=ctx, daemon=daemon, emit=stream.write,
            upload=cast("IO[bytes]", self.rfile) if route.upload else None, upload_length=length,
            connection=self.request,
        )  # fmt: skip
        if route.upload:
            self.body_read = True  # an upload handler reads its body itself (never drained a second time)
        result = route.handler(req)
        stream.write("result", result)

    def _fail(self, err: Ds01Error, stream: _Stream, caller: Caller | None, route_name: str) -> None:
        if not getattr(self, "body_read", False) and not stream.started:
            self._discard(int(self.headers.get("Content-Length") or 0))
        status = protocol.STATUS_FOR_EXIT.get(int(err.exit_code), 500)
        stream.write("error", protocol.error_payload(err), status)
        if isinstance(err, PermissionDenied) and caller is not None:
            with contextlib.suppress(Exception):
                log_event(
                    self.server.daemon.config.paths.log_dir, "denied", user=caller.name, container=None,
                    endpoint=route_name, uid=caller.uid, reason=err.message,
                )  # fmt: skip


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, daemon: Daemon, socket_path: Path) -> None:
        self.daemon = daemon
        socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if socket_path.is_socket() or socket_path.is_symlink():
                socket_path.unlink()
        super().__init__(str(socket_path), Handler, bind_and_activate=False)
        old = os.umask(0o111)
        try:
            self.server_bind()
        finally:
            os.umask(old)
        os.chmod(socket_path, 0o666)  # everyone may ask; SO_PEERCRED says who asks
        self.server_activate()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = self.socket.accept()
        return conn, addr
