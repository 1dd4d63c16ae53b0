"""The event log (CONTRACT §6): append-only JSON lines in `<log_dir>/events.jsonl`. The log dir is 0700 and
the file 0600, both root's; at `policies.events_max_mb` it is rotated (`events.jsonl.1`, ... up to
`policies.events_keep` files), under a writer lock so no line is lost or torn across a rotation. Users
read their own events through ds01d (`GET /v1/events`), never the file.

A write that fails (disk full, read-only) never fails the command whose change already happened in the
engine (the engine's labels, not the log, say who holds a GPU): it is counted, logged by ds01d, and shown by
doctor (`write_failures`). Operations that are about to change something check first that the log can be
written (`check_writable`) and refuse with exit 1 when it cannot, so that nothing starts that could not be
recorded (docs/operations.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ds01.naming import utc_now_iso

EVENT_TYPES = (
    "create", "start", "stop", "remove", "pause", "unpause", "allocate", "release", "reject",
    "idle_warning", "idle_stop", "runtime_warning", "runtime_stop", "cleanup", "reclaim",
    "image_build", "image_delete", "commit", "denied",
    "gpu_outside", "image_prune", "image_rollback", "extend", "exempt",
)  # fmt: skip
EVENTS_FILE = "events.jsonl"
MAX_READ_BYTES = 64 << 20  # the tail of the log that a query reads
MIN_FREE_BYTES = 256 << 10  # below this, state-changing operations are refused before they start

LOCK_FILE = ".events.lock"
_rotation = (64 << 20, 5)  # (policies.events_max_mb in bytes, policies.events_keep): set by load_config

log = logging.getLogger("ds01d")
_failures_lock = threading.Lock()
_failure_count = 0
_failure_last = ""


def write_failures() -> tuple[int, str]:
    """How many event lines this process could not write, and the last error."""
    with _failures_lock:
        return _failure_count, _failure_last


def _failed(log_dir: Path, exc: OSError) -> None:
    global _failure_count, _failure_last
    with _failures_lock:
        _failure_count += 1
        _failure_last = f"{log_dir}: {exc.strerror or exc}"
        count = _failure_count
    if count & (count - 1) == 0:  # the 1st, 2nd, 4th, 8th... failure: loud but bounded
        log.error("event log write failed (%d so far): %s", count, exc)


def check_writable(path: Path, what: str) -> None:
    """Refuse (exit 1) before a change when `path` is read-only or (nearly) full."""
    from ds01.errors import OperationFailed

    try:
        st = os.statvfs(path)
    except OSError as exc:
        raise OperationFailed(
            f"the {what} directory cannot be read: {exc.strerror or exc}",
            hint="ask an admin to run `ds01 doctor`; nothing was changed",
        ) from exc
    problem = None
    if st.f_flag & os.ST_RDONLY:
        problem = "is read-only"
    elif st.f_bavail * st.f_frsize < MIN_FREE_BYTES or (st.f_files and st.f_favail == 0):
        problem = "is full"
    if problem:
        raise OperationFailed(
            f"the {what} directory {problem}: ds01 does not start changes it could not record",
            hint="ask an admin to free space there (ds01 doctor); nothing was changed",
        )


def crash_point(name: str) -> None:
    """A test hook: with DS01D_TEST_HOOKS=1 and `name` in DS01D_CRASH_AT (comma-separated), this process
    dies at once by SIGKILL, as on a power cut. Without DS01D_TEST_HOOKS it does nothing."""
    if os.environ.get("DS01D_TEST_HOOKS") == "1" and name in os.environ.get("DS01D_CRASH_AT", "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)


def ensure_private_dir(path: Path) -> None:
    """Make `path` (mode 0700) if missing; one of ours with looser bits (an older install) is tightened."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)


def set_rotation(max_bytes: int, keep: int) -> None:
    """`events.jsonl` is rotated when a line would take it past `max_bytes`; `keep` rotated files stay."""
    global _rotation
    _rotation = (max(1, max_bytes), max(1, keep))


def rotated(log_dir: Path) -> list[Path]:
    """The log's files, oldest first: `events.jsonl.N` ... `events.jsonl.1`, `events.jsonl`."""
    found = sorted(
        (p for p in log_dir.glob(f"{EVENTS_FILE}.*") if p.suffix[1:].isdigit()),
        key=lambda p: -int(p.suffix[1:]),
    )
    return [*found, log_dir / EVENTS_FILE]


@contextlib.contextmanager
def _writer_lock(log_dir: Path) -> Iterator[None]:
    """One writer at a time, across processes: a line is never written to a file being rotated away."""
    fd = os.open(log_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _rotate(log_dir: Path, keep: int) -> None:
    """events.jsonl -> .1 -> .2 ... ; the oldest past `keep` goes. Under the writer lock."""
    base = log_dir / EVENTS_FILE
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"{base}.{keep}")
    for i in range(keep - 1, 0, -1):
        with contextlib.suppress(FileNotFoundError):
            os.rename(f"{base}.{i}", f"{base}.{i + 1}")
    os.rename(base, f"{base}.1")


def _open_log(log_dir: Path) -> int:
    return os.open(
        log_dir / EVENTS_FILE,
        os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
    )


def log_event(log_dir: Path, event_type: str, *, user: str, container: str | None, **details: Any) -> bool:
    """Append one event; False (counted, logged) when it could not be written."""
    record = {
        "timestamp": utc_now_iso(),
        "event_type": event_type,
        "user": user,
        "container": container,
        "details": details,
    }
    line = (json.dumps(record, default=str, separators=(",", ":")) + "\n").encode()
    try:
        ensure_private_dir(log_dir)
        with _writer_lock(log_dir):
            return _append(log_dir, line)
    except OSError as exc:
        _failed(log_dir, exc)
        return False


def _append(log_dir: Path, line: bytes) -> bool:
    max_bytes, keep = _rotation
    fd = _open_log(log_dir)
    size = os.fstat(fd).st_size
    if size and size + len(line) > max_bytes:
        os.close(fd)
        _rotate(log_dir, keep)
        fd = _open_log(log_dir)
    try:
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
        if _failure_count and st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
            line = b"\n" + line  # after a short write on a full disk: start on a line of its own
        written = os.write(fd, line)  # one write per line, under the writer lock: lines stay whole
        if written != len(line):
            raise OSError(28, "No space left on device (a short write)")
    finally:
        os.close(fd)
    return True


def _lines(log_dir: Path) -> Iterator[str]:
    """The last MAX_READ_BYTES of the log, across its rotated files, oldest line first."""
    files = []
    for path in rotated(log_dir):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        files.append(os.fdopen(fd, "rb"))
    budget = MAX_READ_BYTES
    start = len(files)
    while start > 0 and budget > 0:  # newest first, until the budget is spent
        start -= 1
        budget -= os.fstat(files[start].fileno()).st_size
    for i, f in enumerate(files):
        with f:
            if i < start:
                continue
            if i == start and budget < 0:
                f.seek(-budget)
                f.readline()  # a partial line
            for raw in f:
                yield raw.decode("utf-8", "replace")


def read_events(log_dir: Path) -> list[dict[str, Any]]:
    out = []
    for line in _lines(log_dir):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def query_events(
    log_dir: Path,
    *,
    user: str | None = None,
    event_type: str | None = None,
    container: str | None = None,
    since: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The last `limit` events matching every given filter, oldest first. `container` matches the project
    name or the Docker name; `since` is an ISO-8601 UTC time (compared as text: both are `...Z`)."""
    found = []
    for record in read_events(log_dir):
        if user is not None and record.get("user") != user:
            continue
        if event_type is not None and record.get("event_type") != event_type:
            continue
        if container is not None:
            name = str(record.get("container") or "")
            if name != container and name.split("._.")[0] != container:
                continue
        if since is not None and str(record.get("timestamp", "")) < since:
            continue
        found.append(record)
    return found[-limit:] if limit else found
