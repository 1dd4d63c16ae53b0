"""The event log (CONTRACT §6): append-only JSON lines in `<log_dir>/events.jsonl`; writing never fails a
command. The log dir is 0700 and the file 0600, both root's: users read their own events through ds01d
(`GET /v1/events`), never the file."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ds01.naming import utc_now_iso

EVENT_TYPES = (
    "create", "start", "stop", "remove", "pause", "unpause", "allocate", "release", "reject",
    "idle_warning", "idle_stop", "runtime_warning", "runtime_stop", "cleanup", "reclaim",
    "image_build", "image_delete", "commit", "denied",
)  # fmt: skip
EVENTS_FILE = "events.jsonl"
MAX_READ_BYTES = 64 << 20  # the tail of the log that a query reads


def ensure_private_dir(path: Path) -> None:
    """Make `path` (mode 0700) if missing; one of ours with looser bits (an older install) is tightened."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)


def log_event(log_dir: Path, event_type: str, *, user: str, container: str | None, **details: Any) -> None:
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
        fd = os.open(
            log_dir / EVENTS_FILE,
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
        )
        try:
            st = os.fstat(fd)
            if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != 0o600:
                os.fchmod(fd, 0o600)
            os.write(fd, line)  # one write per line: O_APPEND keeps concurrent writers whole
        finally:
            os.close(fd)
    except OSError:
        pass


def _lines(log_dir: Path) -> Iterator[str]:
    try:
        fd = os.open(log_dir / EVENTS_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_READ_BYTES:
            f.seek(size - MAX_READ_BYTES)
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
