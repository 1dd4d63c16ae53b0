"""The event log (CONTRACT §6): append-only JSON lines; writing never fails a command."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ds01.naming import utc_now_iso

EVENT_TYPES = (
    "create", "start", "stop", "remove", "pause", "unpause", "allocate", "release", "reject",
    "idle_warning", "idle_stop", "runtime_warning", "runtime_stop", "cleanup", "reclaim",
    "image_build", "image_delete", "commit",
)  # fmt: skip


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
        log_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_dir / "events.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write per line: O_APPEND keeps concurrent writers whole
        finally:
            os.close(fd)
    except OSError:
        pass


def read_events(log_dir: Path) -> list[dict[str, Any]]:
    path = log_dir / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
