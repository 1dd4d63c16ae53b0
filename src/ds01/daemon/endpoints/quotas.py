"""Endpoints: the resolved quotas, for exports to a cluster scheduler (`ds01 admin export-quotas`,
`project-export`). ds01d only resolves (defaults -> group -> user override) and hands back plain values;
the translation to `sacctmgr` commands or Kubernetes objects runs in the client (`ds01.export`)."""

from __future__ import annotations

import pwd
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ds01.config import Config, Group, Limits
from ds01.daemon.routes import Request, route
from ds01.daemon.schema import Empty, limit
from ds01.errors import NotFound
from ds01.identity import User, lookup_user, uid_min
from ds01.limits import resolve_limits

USER = limit(max_len=64)
NOBODY_UIDS = frozenset({65534, 65535, 2**32 - 2, 2**32 - 1})


@dataclass(frozen=True)
class QuotaBody:
    user: str | None = field(default=None, metadata=USER)


def _group_limits(config: Config, group: Group) -> dict[str, Any]:
    """What a member of `group` without an override gets."""
    builtin = Limits()
    return {
        f.name: group.values.get(f.name, config.defaults.get(f.name, getattr(builtin, f.name)))
        for f in fields(Limits)
    }


def _user_row(config: Config, user: User) -> dict[str, Any]:
    resolved = resolve_limits(config, user)
    return {
        "name": user.name,
        "uid": user.uid,
        "gid": user.gid,
        "group": resolved.group,
        "admin": resolved.admin,
        "limits": asdict(resolved.limits),
        "overrides": sorted(k for k, src in resolved.source.items() if src == "override"),
    }


def _lab_member(user: User) -> bool:
    return user.uid >= uid_min() and user.uid not in NOBODY_UIDS


def lab_users(config: Config) -> list[User]:
    """Every account a quota applies to: the host's lab accounts (uid at or over UID_MIN) and the names the
    config gives (members, overrides) that exist, once each, by name."""
    found: dict[str, User] = {}
    least = uid_min()
    for entry in pwd.getpwall():
        if entry.pw_uid >= least and entry.pw_uid not in NOBODY_UIDS:
            found.setdefault(entry.pw_name, lookup_user(entry.pw_name))
    named = {m for g in config.groups for m in g.members} | set(config.user_overrides)
    for name in sorted(named - set(found)):
        try:
            user = lookup_user(name)
        except NotFound:  # a member without an account on this host: nothing to export for it
            continue
        if _lab_member(user):
            found.setdefault(user.name, user)
    return sorted(found.values(), key=lambda u: u.name)


def _cluster(config: Config) -> dict[str, Any]:
    cluster = config.cluster
    return {"backend": cluster.backend, "partition": cluster.partition, "registry": cluster.registry}


@route("GET", "/admin/quotas", Empty, admin=True)
def all_quotas(req: Request[Empty]) -> dict[str, Any]:
    """Every group's limits and every lab account's resolved limits (admins)."""
    config = req.ctx.config
    return {
        "config": str(config.source),
        "default_group": config.default_group,
        "groups": [
            {
                "name": g.name,
                "admin": g.admin,
                "members": list(g.members),
                "os_groups": list(g.os_groups),
                "limits": _group_limits(config, g),
            }
            for g in config.groups
        ],
        "users": [_user_row(config, u) for u in lab_users(config)],
        "cluster": _cluster(config),
    }


@route("GET", "/quotas", QuotaBody)
def own_quota(req: Request[QuotaBody]) -> dict[str, Any]:
    """The caller's resolved limits (admins: `user`'s), for `project-export`."""
    ctx = req.ctx
    owner = ctx.target_user(req.body.user)
    return {"user": _user_row(ctx.config, owner), "cluster": _cluster(ctx.config)}
