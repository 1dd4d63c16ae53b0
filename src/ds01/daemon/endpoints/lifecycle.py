"""Endpoints: limits, doctor, the reaper (one pass, admins) and the event log (a user's own events)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ds01.daemon.routes import Request, route
from ds01.daemon.schema import Empty, limit
from ds01.errors import UsageError

USER = limit(max_len=64)


@dataclass(frozen=True)
class LimitsBody:
    user: str | None = field(default=None, metadata=USER)


@route("GET", "/limits", LimitsBody)
def limits(req: Request[LimitsBody]) -> dict[str, Any]:
    from ds01.atomic.limits_report import limits_report

    return limits_report(req.ctx, req.ctx.target_user(req.body.user))


@route("GET", "/doctor", Empty)
def doctor(req: Request[Empty]) -> dict[str, Any]:
    from ds01.atomic.doctor import DaemonFacts, run_checks

    d = req.daemon
    facts = DaemonFacts(socket=d.socket_path, config_path=d.config_path, config_error=d.config_error)
    checks = run_checks(req.ctx.config, facts, admin=req.ctx.is_admin)
    return {"checks": [c.as_dict() for c in checks]}


@dataclass(frozen=True)
class ReaperBody:
    dry_run: bool = False
    now: str | None = field(default=None, metadata=limit(max_len=40))


@route("POST", "/reaper", ReaperBody, admin=True)
def reaper(req: Request[ReaperBody]) -> dict[str, Any]:
    from ds01.lifecycle.clock import ManualClock, SystemClock, parse_iso
    from ds01.lifecycle.reaper import ReaperOptions, locked_pass

    clock: SystemClock | ManualClock = SystemClock()
    if req.body.now:
        when = parse_iso(req.body.now)
        if when is None:
            raise UsageError(
                f"--now: {req.body.now!r} is not an ISO-8601 time", hint="e.g. 2026-11-23T14:05:00Z"
            )
        clock = ManualClock(when)
    report = locked_pass(req.ctx, clock, ReaperOptions(dry_run=req.body.dry_run))
    return report.as_dict()


@dataclass(frozen=True)
class EventsBody:
    user: str | None = field(default=None, metadata=USER)
    type: str | None = field(default=None, metadata=limit(max_len=32))
    container: str | None = field(default=None, metadata=limit(max_len=128))
    since: str | None = field(default=None, metadata=limit(max_len=40))
    until: str | None = field(default=None, metadata=limit(max_len=40))
    limit: int = field(default=100, metadata=limit(min=1, max=10000))


@route("GET", "/events", EventsBody)
def events(req: Request[EventsBody]) -> list[dict[str, Any]]:
    """A user gets their own events only; an admin anyone's (all of them without `user`)."""
    from ds01.events import EVENT_TYPES, query_events
    from ds01.lifecycle.clock import iso, parse_iso

    ctx, b = req.ctx, req.body
    if b.user or not ctx.is_admin:
        who: str | None = ctx.target_user(b.user).name
    else:
        who = None
    if b.type is not None and b.type not in EVENT_TYPES:
        raise UsageError(f"unknown event type {b.type!r}", hint=f"one of {', '.join(EVENT_TYPES)}")
    bounds: dict[str, str | None] = {"since": None, "until": None}
    for flag, value in (("since", b.since), ("until", b.until)):
        if value:
            when = parse_iso(value)
            if when is None:
                raise UsageError(
                    f"--{flag}: {value!r} is not an ISO-8601 time", hint="e.g. 2026-11-23T14:05:00Z"
                )
            bounds[flag] = iso(when)
    until = bounds["until"]
    found = query_events(
        ctx.config.paths.log_dir,
        user=who,
        event_type=b.type,
        container=b.container,
        since=bounds["since"],
        limit=0 if until else b.limit,
    )
    if until:  # before `until` (not at it), then the last `limit`
        found = [r for r in found if str(r.get("timestamp", "")) < until][-b.limit :]
    return found
