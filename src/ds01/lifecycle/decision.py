"""What the reaper decided about one container, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NONE = "none"
POSTPONED = "postponed"
IDLE_WARNING = "idle_warning"
IDLE_STOP = "idle_stop"
RUNTIME_WARNING = "runtime_warning"
RUNTIME_STOP = "runtime_stop"
CLEANUP = "cleanup"
ERROR = "error"

STOPS = (IDLE_STOP, RUNTIME_STOP)
WARNINGS = (IDLE_WARNING, RUNTIME_WARNING)


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str
    values: dict[str, Any] = field(default_factory=dict)
    level: int | None = None  # the warning's percent of the limit

    @property
    def acts(self) -> bool:
        return self.action not in (NONE, POSTPONED)


def minutes(seconds: float) -> str:
    """`1h 05m`, `24 min`, `40 s`: for reasons people read."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    total = round(seconds / 60)
    if total < 60:
        return f"{total} min"
    return f"{total // 60} h {total % 60:02d} min" if total % 60 else f"{total // 60} h"
