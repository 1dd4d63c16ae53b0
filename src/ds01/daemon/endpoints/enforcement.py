"""Endpoints: more time than the limits give. `container-extend` (the owner, within the owner's
`extension_budget_h` per rolling 7 days) and exemptions (admins grant and end them; a user sees their own
through `check-limits`). See `atomic/grants.py` and docs/lifecycle.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ds01.daemon.routes import Request, route
from ds01.daemon.schema import Empty, limit
from ds01.errors import QuotaExceeded, UsageError

USER = limit(max_len=64)
REASON = limit(max_len=300)


def _reason(text: str) -> str:
    reason = " ".join(text.split())
    if len(reason) < 3:
        raise UsageError("--reason is required: say why, in a few words", hint='e.g. --reason "3-day run"')
    return reason


@dataclass(frozen=True)
class ExtendBody:
    hours: float | None = field(
        default=None, metadata=limit(min=0.1, max=336)
    )  # required (checked after --user)
    reason: str | None = field(default=None, metadata=REASON)
    user: str | None = field(default=None, metadata=USER)


@route("POST", "/containers/{name}/extend", ExtendBody)
def extend(req: Request[ExtendBody]) -> dict[str, Any]:
    """Add hours to one container's max_runtime_h, within the owner's budget (an event either way)."""
    from ds01.atomic.containers import find_container
    from ds01.atomic.grants import Extension, Grants, iso

    ctx, b = req.ctx, req.body
    if b.hours is None:
        raise UsageError("--hours is required", hint='e.g. container-extend NAME --hours 24 --reason "..."')
    hours = float(b.hours)
    reason = _reason(b.reason or "")
    view = find_container(ctx, req.params["name"], user=b.user)
    owner = ctx.target_user(b.user)
    budget = ctx.limits_for(owner).limits.extension_budget_h
    now = datetime.now(UTC)
    grants = Grants(ctx.config.paths.state_dir)
    with grants.locked():
        used = grants.used_h(owner.name, now)
        if budget is not None and used + hours > budget + 1e-9:
            nxt = grants.next_free(owner.name, now)
            left = max(budget - used, 0.0)
            err = QuotaExceeded(
                f"{owner.name} has {left:g} of extension_budget_h {budget:g} h left this week "
                f"(used {used:g} h in the last 7 days); asked for {hours:g} h",
                hint=(f"hours free up from {iso(nxt)}; " if nxt else "")
                + "ask an admin for an exemption (ds01 admin exempt)",
            )
            ctx.log("reject", view.name, user=owner.name, code=err.code, reason=err.message, hours=hours)
            raise err
        ext = Extension(owner.name, view.name, view.id, float(hours), reason, iso(now))
        grants.add_extension(ext)
        extra = grants.extra_h(view.id)
    base = ctx.limits_for(owner).limits.max_runtime_h
    ctx.log("extend", view.name, user=owner.name, hours=hours, reason=ext.reason, total_extra_h=extra,
            budget_h=budget, used_h=round(used + hours, 2),
            **({"by": ctx.user.name} if ctx.user.uid != owner.uid else {}))  # fmt: skip
    return {
        "container": view.name,
        "hours": hours,
        "extra_h": extra,
        "max_runtime_h": None if base is None else base + extra,
        "budget_h": budget,
        "used_h": round(used + hours, 2),
    }


@dataclass(frozen=True)
class ExemptBody:
    user: str = field(metadata=USER)
    until: str = field(metadata=limit(max_len=40))
    reason: str = field(metadata=REASON)


@route("POST", "/exemptions", ExemptBody, admin=True)
def exempt(req: Request[ExemptBody]) -> dict[str, Any]:
    """An admin exempts a user from runtime and idle stops until a date; it ends by itself then."""
    from ds01.atomic.grants import Exemption, Grants, iso, parse_when

    ctx, b = req.ctx, req.body
    reason = _reason(b.reason)
    target = ctx.target_user(b.user)
    until = parse_when(b.until)
    now = datetime.now(UTC)
    if until is None:
        raise UsageError(
            f"--until: {b.until!r} is not a date", hint="e.g. 2026-12-24 or 2026-12-24T18:00:00Z"
        )
    if until <= now:
        raise UsageError(f"--until {b.until} is in the past", hint="give a date to come")
    ex = Exemption(target.name, iso(until), reason, ctx.user.name, iso(now))
    grants = Grants(ctx.config.paths.state_dir)
    with grants.locked():
        grants.set_exemption(ex, now)
    ctx.log("exempt", None, user=target.name, until=ex.until, reason=ex.reason, by=ctx.user.name)
    return ex.as_dict()


@dataclass(frozen=True)
class ExemptionsBody:
    user: str | None = field(default=None, metadata=USER)


@route("GET", "/exemptions", ExemptionsBody)
def exemptions(req: Request[ExemptionsBody]) -> list[dict[str, Any]]:
    """Exemptions in force: a user's own; admins everyone's (or `user`'s)."""
    from ds01.atomic.grants import Grants

    ctx, now = req.ctx, datetime.now(UTC)
    rows = [e for e in Grants(ctx.config.paths.state_dir).exemptions() if e.active(now)]
    if req.body.user or not ctx.is_admin:
        who = ctx.target_user(req.body.user).name
        rows = [e for e in rows if e.user == who]
    return [e.as_dict() for e in rows]


@route("DELETE", "/exemptions/{user}", Empty, admin=True)
def end_exemption(req: Request[Empty]) -> dict[str, Any]:
    from ds01.atomic.grants import Grants

    ctx = req.ctx
    target = ctx.target_user(req.params["user"])
    grants = Grants(ctx.config.paths.state_dir)
    with grants.locked():
        ended = grants.end_exemption(target.name, datetime.now(UTC))
    if ended:
        ctx.log("exempt", None, user=target.name, ended=True, by=ctx.user.name)
    return {"user": target.name, "ended": ended}
