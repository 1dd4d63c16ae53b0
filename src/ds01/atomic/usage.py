"""Usage accounting (`ds01 usage`): GPU-hours, container-hours and CPU-hours by user, group and project,
computed from the event log.

- GPU-hours: gpueq × the time from a container's `allocate` to its `release` (the GPU is held while the
  container exists, running or within its hold after a stop).
- Container-hours: the time a container ran, from `start` (or `unpause`) to `stop`, `pause`, `remove`, or a
  lifecycle stop (`idle_stop`, `runtime_stop`, `cleanup`, `reclaim`).
- CPU-hours: container-hours × the container's CPU limit (`cpus` of its `create` event when recorded, else
  its owner's `max_cpus` as resolved now).

Intervals still open count up to `now`; every interval is clipped to the period asked for. The log is the
only record, and ds01d restarts must neither lose nor double an interval: an `allocate` (or `start`) for a
container whose interval is already open (a line written twice, a reconcile after a restart) does not open
a second one, a `release` (or `stop`) with nothing open closes nothing, and the `release`/`remove` lines that
ds01d's reconcile writes for containers that went while it was down close the intervals at that moment.
Rotated logs (`events.jsonl.1`, `events.jsonl.2.gz`, ...) are read too, oldest first.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

OPENS_RUN = ("start", "unpause")
CLOSES_RUN = ("stop", "pause", "remove", "idle_stop", "runtime_stop", "cleanup", "reclaim")
_ROTATED = re.compile(r"^events\.jsonl\.(\d+)(\.gz)?$")
MAX_FILES = 400


@dataclass
class Figures:
    gpu_hours: float = 0.0
    container_hours: float = 0.0
    cpu_hours: float = 0.0

    def add(self, other: Figures) -> None:
        self.gpu_hours += other.gpu_hours
        self.container_hours += other.container_hours
        self.cpu_hours += other.cpu_hours

    def as_dict(self) -> dict[str, float]:
        return {
            "gpu_hours": round(self.gpu_hours, 4),
            "container_hours": round(self.container_hours, 4),
            "cpu_hours": round(self.cpu_hours, 4),
        }


@dataclass
class _Open:
    user: str
    since: datetime
    weight: float  # gpueq, or CPUs


@dataclass
class Report:
    since: datetime
    until: datetime
    now: datetime
    rows: dict[tuple[str, str, str], Figures] = field(default_factory=dict)

    def _row(self, user: str, group: str, project: str) -> Figures:
        return self.rows.setdefault((user, group, project), Figures())

    def as_dict(self) -> dict[str, Any]:
        by_user: dict[str, Figures] = {}
        by_group: dict[str, Figures] = {}
        total = Figures()
        for (user, group, _), fig in self.rows.items():
            by_user.setdefault(user, Figures()).add(fig)
            by_group.setdefault(group, Figures()).add(fig)
            total.add(fig)
        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "now": _iso(self.now),
            "rows": [
                {"user": u, "group": g, "project": p, **f.as_dict()}
                for (u, g, p), f in sorted(self.rows.items())
            ],
            "users": [{"user": u, **f.as_dict()} for u, f in sorted(by_user.items())],
            "groups": [{"group": g, **f.as_dict()} for g, f in sorted(by_group.items())],
            "total": total.as_dict(),
        }


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(value: object) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _number(value: object) -> float | None:
    try:
        n = float(str(value))
    except ValueError:
        return None
    return n if n == n and 0 <= n < 1e6 else None  # finite, not negative


def project_of(container: str) -> str:
    return container.split("._.")[0]


def usage_report(
    events: Iterable[dict[str, Any]],
    *,
    since: datetime,
    until: datetime,
    now: datetime,
    group_of: Callable[[str], str],
    cpus_of: Callable[[str], float | None],
    user: str | None = None,
) -> Report:
    """The figures for [since, until); `user` limits them to one user's containers."""
    report = Report(since, until, now)
    gpus: dict[str, _Open] = {}
    runs: dict[str, _Open] = {}
    cpus: dict[str, float] = {}
    groups: dict[str, str] = {}

    def close(opened: dict[str, _Open], key: str, at: datetime, what: str) -> None:
        o = opened.pop(key, None)
        if o is None:
            return
        start, end = max(o.since, since), min(at, until, now)
        hours = max(0.0, (end - start).total_seconds() / 3600)
        if hours <= 0:
            return
        if o.user not in groups:
            groups[o.user] = group_of(o.user)
        row = report._row(o.user, groups[o.user], project_of(key))
        if what == "gpu":
            row.gpu_hours += o.weight * hours
        else:
            row.container_hours += hours
            row.cpu_hours += o.weight * hours

    for e in events:
        kind, key, who = e.get("event_type"), e.get("container"), e.get("user")
        at = _time(e.get("timestamp"))
        if not isinstance(key, str) or not key or not isinstance(who, str) or at is None:
            continue
        if user is not None and who != user:
            continue
        details = e.get("details") if isinstance(e.get("details"), dict) else {}
        assert isinstance(details, dict)
        if kind == "create":
            n = _number(details.get("cpus"))
            if n is not None:
                cpus[key] = n
        elif kind == "allocate":
            gpueq = _number(details.get("gpueq"))
            if key not in gpus and gpueq:
                gpus[key] = _Open(who, at, gpueq)
        elif kind == "release":
            close(gpus, key, at, "gpu")
        elif kind in OPENS_RUN:
            if key not in runs:
                weight = cpus.get(key)
                runs[key] = _Open(who, at, weight if weight is not None else (cpus_of(who) or 0.0))
        elif kind in CLOSES_RUN:
            close(runs, key, at, "run")
            if kind == "remove":
                close(gpus, key, at, "gpu")  # a release cut off by a crash: the GPU went with the container
                cpus.pop(key, None)
    for key in list(gpus):
        close(gpus, key, now, "gpu")
    for key in list(runs):
        close(runs, key, now, "run")
    return report


def _open_log(path: Path) -> Iterator[bytes]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    with os.fdopen(fd, "rb") as raw:
        if path.name.endswith(".gz"):
            with gzip.open(raw, "rb") as f:
                yield from f
        else:
            yield from raw


def log_files(log_dir: Path) -> list[Path]:
    """The rotated logs oldest first (highest number first), then the current one."""
    rotated: list[tuple[int, Path]] = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(log_dir):
            m = _ROTATED.match(entry.name)
            if m and entry.is_file(follow_symlinks=False):
                rotated.append((int(m.group(1)), Path(entry.path)))
    rotated.sort(reverse=True)
    return [p for _, p in rotated[:MAX_FILES]] + [log_dir / "events.jsonl"]


def all_events(log_dir: Path, *, not_before: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Every event in the log and its rotations, oldest first."""
    for path in log_files(log_dir):
        for line in _open_log(path):
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                record = json.loads(line)
                if isinstance(record, dict):
                    yield record


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """`2026-11` -> (2026-11-01T00:00Z, 2026-12-01T00:00Z); ValueError when it is not YYYY-MM."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"{month!r} is not a month (YYYY-MM)")
    year, mon = int(m.group(1)), int(m.group(2))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return start, end
