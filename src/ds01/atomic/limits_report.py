"""`check-limits`: a user's resolved limits, where each came from, and what they use now."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ds01 import units
from ds01.atomic.holdings import gpu_holdings, managed_containers, user_usage
from ds01.context import Context
from ds01.identity import User

SIZE_KEYS = {"memory", "memory_swap", "shm_size", "memory_total"}


def limits_report(ctx: Context, user: User) -> dict[str, Any]:
    resolved = ctx.limits_for(user)
    gateway = ctx.gateway
    containers = managed_containers(gateway)
    usage = user_usage(gpu_holdings(gateway, ctx.config, containers=containers), containers, user.uid)
    limits = {
        k: (units.format_size(v) if k in SIZE_KEYS and v is not None else v)
        for k, v in asdict(resolved.limits).items()
    }
    return {
        "user": resolved.user,
        "uid": resolved.uid,
        "group": resolved.group,
        "admin": resolved.admin,
        "limits": limits,
        "source": dict(resolved.source),
        "usage": asdict(usage),
        "config": str(ctx.config.source),
        **_grants(ctx, user),
    }


def _grants(ctx: Context, user: User) -> dict[str, Any]:
    """The user's exemption in force (admins grant it) and the extension hours used this rolling week."""
    from datetime import UTC, datetime

    from ds01.atomic.grants import Grants

    now = datetime.now(UTC)
    grants = Grants(ctx.config.paths.state_dir)
    ex = grants.exemption(user.name, now)
    return {
        "exemption": None if ex is None else {"until": ex.until, "reason": ex.reason, "by": ex.by},
        "extensions": {"used_h": round(grants.used_h(user.name, now), 2), "window_days": 7},
    }
