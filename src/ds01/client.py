"""The commands' one way to ds01d: JSON over HTTP/1.1 on its Unix socket (`$DS01_SOCKET`, else the default).

`Client.call` sends one request and follows the answer's JSON lines: messages are shown through the
command's `Output` as they arrive, events go to `on_event`, and the last line is the result (returned) or an
error (raised as the same `Ds01Error` class with its exit code). `Client.exec_stream` also receives the
descriptor of an exec session's stream, passed by ds01d with SCM_RIGHTS; `Client.download` receives a byte
stream (an image's tarball) the same way, through a pipe. No engine, YAML or GPU library is imported here.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any
from urllib.parse import quote, urlencode

from ds01 import protocol
from ds01.errors import Ds01Error, EngineUnavailable, UsageError
from ds01.output import Output


def _http_client() -> Any:
    """`http.client` without its optional `ssl` import (~17 ms a command): ds01d is a Unix socket."""
    if "http.client" not in sys.modules and "ssl" not in sys.modules:
        sys.modules["ssl"] = None  # type: ignore[assignment]  # makes `import ssl` fail: http.client skips TLS
        try:
            import http.client
        finally:
            del sys.modules["ssl"]
    import http.client

    return http.client


http_client = _http_client()

START_HINT = "ask an admin to start it (systemctl start ds01d), or check $DS01_SOCKET"
EventHandler = Callable[[Any], None]


def socket_path() -> str:
    return os.environ.get(protocol.SOCKET_ENV) or protocol.DEFAULT_SOCKET


class _UnixConnection(http_client.HTTPConnection):  # type: ignore[misc,name-defined]
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("ds01d", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def unreachable(path: str, exc: OSError) -> EngineUnavailable:
    if isinstance(exc, FileNotFoundError):
        why = f"ds01d is not running: no socket at {path}"
    elif isinstance(exc, ConnectionRefusedError):
        why = f"ds01d is not running: nothing listens on {path}"
    elif isinstance(exc, PermissionError):
        why = f"permission denied on ds01d's socket {path}"
    else:
        why = f"cannot reach ds01d at {path}: {exc.strerror or exc}"
    return EngineUnavailable(why, hint=START_HINT)


DOWNLOAD_CHUNK = 1 << 20
MAX_TARGET = 60_000  # ds01d (http.server) reads a request line of at most 64 KiB


def path_of(*parts: str) -> str:
    """`/v1/containers/<name>/start` with every part quoted."""
    return protocol.API + "/" + "/".join(quote(p, safe="") for p in parts)


class Client:
    def __init__(self, out: Output | None = None, *, timeout: float | None = None) -> None:
        self.out = out or Output()
        self.path = socket_path()
        self.timeout = timeout

    def _connect(self) -> _UnixConnection:
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.connect()
        except OSError as exc:
            raise unreachable(self.path, exc) from None
        return conn

    def _send(
        self,
        conn: _UnixConnection,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        upload: Iterable[bytes] | None,
        upload_length: int | None,
    ) -> None:
        clean = {k: v for k, v in (body or {}).items() if v is not None}
        headers = {"Connection": "close"}
        if method == "GET":
            query = {k: (json.dumps(v) if isinstance(v, bool) else str(v)) for k, v in clean.items()}
            if query:
                path += "?" + urlencode(query)
        if len(path) > MAX_TARGET:
            raise UsageError(
                f"a value given is too long (the request would be {len(path)} characters)",
                hint="shorten the names and values given",
            )
        if method == "GET":
            conn.request(method, path, headers=headers)
        elif upload is not None:
            headers[protocol.BODY_HEADER] = json.dumps(clean, ensure_ascii=True)
            headers["Content-Type"] = "application/x-tar"
            if upload_length is not None:
                headers["Content-Length"] = str(upload_length)
            conn.request(method, path, body=upload, headers=headers, encode_chunked=upload_length is None)
        else:
            headers["Content-Type"] = "application/json"
            conn.request(method, path, body=json.dumps(clean).encode(), headers=headers)

    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        on_event: EventHandler | None = None,
        upload: Iterable[bytes] | None = None,
        upload_length: int | None = None,
    ) -> Any:
        conn = self._connect()
        try:
            try:
                self._send(conn, method, path, body, upload, upload_length)
                response = conn.getresponse()
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise unreachable(self.path, exc) from None
            return self.follow(response, on_event)
        finally:
            conn.close()

    def follow(self, response: Any, on_event: EventHandler | None = None) -> Any:
        """Show messages, pass events on, and return the result (or raise the error) of one answer."""
        while True:
            raw = response.readline()
            if not raw:
                raise Ds01Error("ds01d closed the connection before answering", hint="see ds01d's log")
            try:
                item = json.loads(raw)
                (kind, value), *_ = item.items()
            except (ValueError, AttributeError):
                raise Ds01Error(f"ds01d sent something that is not JSON: {raw[:80]!r}") from None
            if kind == "result":
                return value
            if kind == "error":
                raise protocol.error_from_payload(value)
            if kind == "message":
                self.show(value)
            elif kind == "event" and on_event is not None:
                on_event(value)

    def show(self, message: Mapping[str, Any]) -> None:
        level = str(message.get("level"))
        text = str(message.get("text", ""))
        if level in protocol.MESSAGE_LEVELS:
            getattr(self.out, level)(text)

    def _handed(self, conn: _UnixConnection, path: str, body: Mapping[str, Any]) -> int | None:
        """Send a POST whose handler hands over a descriptor with SCM_RIGHTS before its JSON answer (one
        marker byte: `F` carrying it, or `E` when it failed); the descriptor, or None."""
        self._send(conn, "POST", path, body, None, None)
        assert conn.sock is not None
        # A request refused before its handler ran (schema, version) gets the HTTP answer alone: peek
        # first, and take the marker only when it is one.
        first = conn.sock.recv(1, socket.MSG_PEEK)
        if not first:
            raise Ds01Error("ds01d closed the connection before answering", hint="see ds01d's log")
        data, fds = b"", list[int]()
        if first in (b"F", b"E"):
            data, fds, _flags, _addr = socket.recv_fds(conn.sock, 1, 1)
        for extra in fds[1:]:
            os.close(extra)
        return fds[0] if data == b"F" and fds else None

    def exec_stream(self, path: str, body: Mapping[str, Any]) -> tuple[socket.socket, Any]:
        """Ask ds01d for an exec session; it passes the engine's stream of that session with SCM_RIGHTS
        (one marker byte `F` carrying the descriptor, or `E` when it failed) before its JSON answer."""
        conn = self._connect()
        try:
            fd = self._handed(conn, path, body)
            stream = socket.socket(fileno=fd) if fd is not None else None
            try:
                result = self.follow(conn.getresponse())
            except BaseException:
                if stream is not None:
                    stream.close()
                raise
            if stream is None:
                raise Ds01Error("ds01d answered without passing the session's stream")
            return stream, result
        finally:
            conn.close()

    def download(self, path: str, body: Mapping[str, Any], sink: Callable[[bytes], Any]) -> Any:
        """A streamed download (an image's tarball): ds01d passes the read end of a pipe with SCM_RIGHTS
        (as `exec_stream` does) and writes into it; every chunk goes to `sink` as it comes, until the pipe
        closes. Then the JSON answer: its result is returned; an error there means the bytes are not whole."""
        conn = self._connect()
        try:
            fd = self._handed(conn, path, body)
            if fd is not None:
                with os.fdopen(fd, "rb", buffering=0) as pipe:
                    while chunk := pipe.read(DOWNLOAD_CHUNK):
                        sink(chunk)
            result = self.follow(conn.getresponse())
            if fd is None:
                raise Ds01Error("ds01d answered without sending the data")
            return result
        finally:
            conn.close()


def upload_file(fileobj: IO[bytes], chunk: int = 1 << 16) -> Iterable[bytes]:
    while data := fileobj.read(chunk):
        yield data
