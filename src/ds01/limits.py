"""Resolve a user's limits key by key: defaults -> group -> user override (CONTRACT §3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from ds01.config import Config, Group, Limits
from ds01.identity import User


@dataclass(frozen=True)
class ResolvedLimits:
    user: str
    uid: int
    group: str
    limits: Limits
    source: Mapping[str, str]
    admin: bool


def group_of(config: Config, user: User) -> Group | None:
    """The first group in file order that names the user (raw or sanitised) or one of their Unix groups."""
    names = {user.name, user.safe_name}
    for group in config.groups:
        if names & set(group.members) or set(user.unix_groups) & set(group.os_groups):
            return group
    return config.group(config.default_group)


def is_admin(config: Config, user: User) -> bool:
    if user.is_root:
        return True
    group = group_of(config, user)
    return bool(group and group.admin)


def resolve_limits(config: Config, user: User) -> ResolvedLimits:
    group = group_of(config, user)
    override = config.user_overrides.get(user.name) or config.user_overrides.get(user.safe_name) or {}
    values: dict[str, object] = {}
    source: dict[str, str] = {}
    builtin = Limits()
    for f in fields(Limits):
        key = f.name
        if key in override:
            values[key], source[key] = override[key], "override"
        elif group and key in group.values:
            values[key], source[key] = group.values[key], "group"
        elif key in config.defaults:
            values[key], source[key] = config.defaults[key], "defaults"
        else:
            values[key], source[key] = getattr(builtin, key), "defaults"
    return ResolvedLimits(
        user=user.name,
        uid=user.uid,
        group=group.name if group else "",
        limits=Limits(**values),  # type: ignore[arg-type]
        source=source,
        admin=is_admin(config, user),
    )
