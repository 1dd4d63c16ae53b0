"""An interactive session in a container, on the client's side: ds01d hands over the exec's stream (see
`Client.exec_stream`) and this module pumps it to and from the terminal.

With a terminal: raw mode, the window size sent at the start and at every SIGWINCH, bytes both ways until
the stream closes, then the terminal as it was. A terminal that goes away (a closed window, a dropped ssh)
ends the client at once (exit 129); what runs in the container stays (nohup, tmux).
Without one: stdin is piped in (then the write side is shut so the command sees its end), and the stream's
8-byte-header frames are split back into stdout and stderr. The exit code is then asked of ds01d. No engine
library is imported here.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ds01.client import Client

CHUNK = 1 << 16
MAX_PENDING = 1 << 20  # stop reading stdin while this much waits for the command to take it
STDOUT, STDERR = 1, 2


class _HungUp(Exception):
    """The terminal went away: raw mode never gives an end of file, and writes fail with EIO."""


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def open_session(
    client: Client,
    name: str,
    cmd: Sequence[str] | None = None,
    *,
    user: str | None = None,
    start: bool = False,
) -> int:
    """A shell (no `cmd`) or `cmd` in container `name` as its user, on this terminal or these pipes (a shell
    then reads its commands from stdin); `start` starts a stopped container first. Returns the exit code."""
    from ds01.client import path_of

    tty = stdio_is_terminal()
    body: dict[str, Any] = {"cmd": list(cmd or []), "tty": tty, "stdin": True, "start": start, "user": user}
    stream, result = client.exec_stream(path_of("containers", name, "exec"), body)
    return pump_session(client, str(result["exec_id"]), stream, tty=tty)


def stdio_is_terminal() -> bool:
    """Whether a session gets a terminal: stdin and stdout both are one."""
    return _isatty(_fileno(sys.stdin, 0)) and _isatty(_fileno(sys.stdout, 1))


def pump_session(client: Client, exec_id: str, stream: socket.socket, *, tty: bool) -> int:
    """Pump a session's stream (from `Client.exec_stream`) to and from this terminal (`tty`) or these pipes
    until it closes, then close it; returns the session's exit code."""
    stdin_fd, stdout_fd = _fileno(sys.stdin, 0), _fileno(sys.stdout, 1)
    with contextlib.closing(stream):
        try:
            if tty:
                _pump_terminal(client, exec_id, stream, stdin_fd, stdout_fd)
            else:
                _pump_pipes(stream, stdin_fd, stdout_fd, _fileno(sys.stderr, 2))
        except BrokenPipeError:  # our stdout was closed (`| head`): stop as a piped command would
            return 128 + signal.SIGPIPE
        except _HungUp:  # nobody to tell: leave, as a hung-up terminal's programs do
            return 128 + signal.SIGHUP
    return exit_code(client, exec_id)


def _fileno(stream: Any, default: int) -> int:
    try:
        return int(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return default


def exit_code(client: Client, exec_id: str, wait: float = 5.0) -> int:
    """The exit code of a finished session (the engine may take a moment to record it)."""
    from ds01.client import path_of

    deadline = time.monotonic() + wait
    while True:
        state = client.call("GET", path_of("exec", exec_id))
        if not state.get("running") and isinstance(state.get("exit_code"), int):
            return int(state["exit_code"])
        if time.monotonic() > deadline:
            return 1
        time.sleep(0.05)


# -- with a terminal --------------------------------------------------------------------------------------
def _window(fd: int) -> tuple[int, int] | None:
    import fcntl
    import termios

    try:
        raw = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None
    rows, cols = struct.unpack("HHHH", raw)[:2]
    return (rows, cols) if rows and cols else None


def _resize(client: Client, exec_id: str, fd: int) -> None:
    from ds01.client import path_of
    from ds01.errors import Ds01Error

    size = _window(fd)
    if size is None:
        return
    with contextlib.suppress(Ds01Error):  # the session may just have ended: nothing to size
        client.call("POST", path_of("exec", exec_id, "resize"), {"height": size[0], "width": size[1]})


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        with contextlib.suppress(termios.error):  # a terminal that hung up has no settings to restore
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _on_winch() -> Iterator[int]:
    """A descriptor that becomes readable at every window change."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)

    def note(_signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            os.write(write_end, b"w")

    old = signal.signal(signal.SIGWINCH, note)
    try:
        yield read_end
    finally:
        signal.signal(signal.SIGWINCH, old)
        os.close(read_end)
        os.close(write_end)


def _pump_terminal(
    client: Client, exec_id: str, stream: socket.socket, stdin_fd: int, stdout_fd: int
) -> None:
    with _on_winch() as winch, _raw(stdin_fd):
        _resize(client, exec_id, stdout_fd)
        sel = selectors.DefaultSelector()
        sel.register(stream, selectors.EVENT_READ)
        sel.register(stdin_fd, selectors.EVENT_READ)
        sel.register(winch, selectors.EVENT_READ)
        try:
            while True:
                for key, _ in sel.select():
                    if key.fileobj is stream:
                        data = _recv(stream)
                        if not data:
                            return
                        try:
                            _write_all(stdout_fd, data)
                        except OSError as exc:
                            if exc.errno == errno.EIO:
                                raise _HungUp from None
                            raise
                    elif key.fileobj == stdin_fd:
                        try:
                            data = os.read(stdin_fd, CHUNK)
                        except OSError:
                            data = b""
                        if not data:
                            raise _HungUp
                        stream.sendall(data)
                    else:
                        with contextlib.suppress(BlockingIOError):
                            os.read(winch, 512)
                        _resize(client, exec_id, stdout_fd)
        finally:
            sel.close()


# -- without a terminal ----------------------------------------------------------------------------------
class Demux:
    """The frames of a non-TTY stream (`[kind, 0, 0, 0, size:u32be] payload`) back into stdout and stderr."""

    def __init__(self, stdout_fd: int, stderr_fd: int) -> None:
        self.fds = {STDOUT: stdout_fd, STDERR: stderr_fd}
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 8:
            kind = self.buffer[0]
            (size,) = struct.unpack(">L", self.buffer[4:8])
            if len(self.buffer) < 8 + size:
                return
            payload = bytes(self.buffer[8 : 8 + size])
            del self.buffer[: 8 + size]
            _write_all(self.fds.get(kind, self.fds[STDOUT]), payload)


def _pump_pipes(stream: socket.socket, stdin_fd: int, stdout_fd: int, stderr_fd: int) -> None:
    demux = Demux(stdout_fd, stderr_fd)
    pending = bytearray()
    stdin_open, watching = True, False
    stream.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    try:
        while True:
            # stdin is watched while open and the command keeps up with it (back-pressure).
            want_stdin = stdin_open and len(pending) < MAX_PENDING
            if want_stdin and not watching:
                try:
                    sel.register(stdin_fd, selectors.EVENT_READ)
                    watching = True
                except (ValueError, OSError):  # unwatchable (a regular file, /dev/null): read it now
                    pending += _read_whole(stdin_fd)
                    stdin_open = False
            elif watching and not want_stdin:
                sel.unregister(stdin_fd)
                watching = False
            if not stdin_open and not pending:
                _shut_write(stream)
            sel.modify(stream, selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0))
            for key, events in sel.select():
                if key.fileobj is not stream:
                    data = os.read(stdin_fd, CHUNK)
                    pending += data
                    stdin_open = bool(data)
                    continue
                if events & selectors.EVENT_WRITE and pending:
                    try:
                        del pending[: stream.send(pending)]
                    except BlockingIOError:
                        pass
                    except OSError:  # the command closed its input: the rest has no taker
                        pending.clear()
                        stdin_open = False
                if events & selectors.EVENT_READ:
                    try:
                        data = stream.recv(CHUNK)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        data = b""
                    if not data:
                        return
                    demux.feed(data)
    finally:
        sel.close()


def _read_whole(fd: int) -> bytes:
    out = bytearray()
    with contextlib.suppress(OSError):
        while data := os.read(fd, CHUNK):
            out += data
    return bytes(out)


def _shut_write(stream: socket.socket) -> None:
    with contextlib.suppress(OSError):
        stream.shutdown(socket.SHUT_WR)


def _recv(stream: socket.socket) -> bytes:
    try:
        return stream.recv(CHUNK)
    except ConnectionResetError:
        return b""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            import select

            select.select([], [fd], [])
            continue
        view = view[n:]
