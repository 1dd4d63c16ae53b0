"""More time than the limits give: runtime extensions within a budget, and exemptions granted by admins.

- `container-extend NAME --hours H --reason "..."` adds H hours to one container's `max_runtime_h`, within
  the owner's `extension_budget_h` per rolling 7 days (layered like every key; 0 = none, null = no cap).
- `ds01 admin exempt USER --until DATE --reason "..."` exempts a user from the runtime and idle stops until
  DATE; `check-limits` shows it, the lifecycle loop honours it, and it ends by itself at DATE.

Both are kept by ds01d in `<state_dir>/grants/` (root-only), written whole; every grant is an event.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ds01.filelock import flock_within

SUBDIR = "grants"
EXTENSIONS = "extensions.json"
EXEMPTIONS = "exemptions.json"
WINDOW = timedelta(days=7)
MAX_HOURS = 24 * 14


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Extension:
    user: str
    container: str  # the Docker name
    container_id: str
    hours: float
    reason: str
    at: str

    @property
    def when(self) -> datetime:
        return _parse(self.at) or datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Exemption:
    user: str
    until: str
    reason: str
    by: str
    at: str

    def active(self, now: datetime) -> bool:
        until = _parse(self.until)
        return until is not None and now < until

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Grants:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / SUBDIR

    def _ensure(self) -> None:
        from ds01.events import ensure_private_dir

        ensure_private_dir(self.dir.parent)
        ensure_private_dir(self.dir)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One change at a time: two extends racing for the same budget see each other."""
        self._ensure()
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            flock_within(fd, 30.0, message="another grant is being recorded", hint="try again", poll_s=0.1)
            yield
        finally:
            os.close(fd)

    def _read(self, name: str) -> list[dict[str, Any]]:
        try:
            raw = json.loads((self.dir / name).read_text())
        except (OSError, ValueError):
            return []
        return [r for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []

    def _write(self, name: str, rows: list[dict[str, Any]]) -> None:
        self._ensure()
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
        try:
            os.write(fd, (json.dumps(rows, indent=1) + "\n").encode())
            os.fsync(fd)
            os.close(fd)
            os.replace(tmp, self.dir / name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # -- extensions ------------------------------------------------------------------------------------
    def extensions(self) -> list[Extension]:
        out = []
        for r in self._read(EXTENSIONS):
            with contextlib.suppress(TypeError, ValueError):
                out.append(Extension(**{**r, "hours": float(r.get("hours", 0))}))
        return out

    def used_h(self, user: str, now: datetime) -> float:
        return sum(e.hours for e in self.extensions() if e.user == user and now - e.when < WINDOW)

    def next_free(self, user: str, now: datetime) -> datetime | None:
        recent = [e.when for e in self.extensions() if e.user == user and now - e.when < WINDOW]
        return min(recent) + WINDOW if recent else None

    def extra_h(self, container_id: str) -> float:
        return sum(e.hours for e in self.extensions() if e.container_id == container_id)

    def add_extension(self, ext: Extension, live_ids: set[str] | None = None) -> None:
        """Record it; extensions of containers that are gone and out of every window are dropped."""
        now = ext.when
        keep = [
            e
            for e in self.extensions()
            if now - e.when < WINDOW or live_ids is None or e.container_id in live_ids
        ]
        self._write(EXTENSIONS, [asdict(e) for e in [*keep, ext]])

    # -- exemptions ------------------------------------------------------------------------------------
    def exemptions(self) -> list[Exemption]:
        out = []
        for r in self._read(EXEMPTIONS):
            with contextlib.suppress(TypeError, ValueError):
                out.append(Exemption(**r))
        return out

    def exemption(self, user: str, now: datetime) -> Exemption | None:
        """The user's exemption in force at `now` (an expired one counts for nothing)."""
        return next((e for e in self.exemptions() if e.user == user and e.active(now)), None)

    def set_exemption(self, ex: Exemption, now: datetime) -> None:
        keep = [e for e in self.exemptions() if e.user != ex.user and e.active(now)]
        self._write(EXEMPTIONS, [e.as_dict() for e in [*keep, ex]])

    def end_exemption(self, user: str, now: datetime) -> bool:
        before = self.exemptions()
        keep = [e for e in before if e.user != user and e.active(now)]
        self._write(EXEMPTIONS, [e.as_dict() for e in keep])
        return any(e.user == user and e.active(now) for e in before)


def iso(when: datetime) -> str:
    return _iso(when)


def parse_when(value: str) -> datetime | None:
    """A date (`2026-12-24`: the end of that day, UTC) or an ISO-8601 time."""
    text = value.strip()
    if len(text) == 10:
        day = _parse(text)
        return day + timedelta(days=1) if day is not None else None
    return _parse(text)
