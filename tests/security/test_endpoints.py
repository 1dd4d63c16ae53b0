"""Every endpoint of ds01d, whatever module declares it: admin-only ones refuse users, and `user` (acting
for someone) is refused for non-admins and never reaches root or a system account, even for admins."""

from __future__ import annotations

import dataclasses
import re

import pytest

from ds01.daemon.routes import all_routes
from harness.raw import request

ROUTES = sorted(all_routes(), key=lambda r: r.name)


def _target(pattern: str) -> str:
    return "/v1" + re.sub(r"\{\w+\}", "nothing-here", pattern)


def _minimal(route) -> dict[str, object]:
    """The required fields of the route's body with harmless values, so the schema lets it through."""
    out: dict[str, object] = {}
    for f in dataclasses.fields(route.body):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            tp = str(f.type)
            out[f.name] = 1 if "int" in tp else [] if "tuple" in tp or "list" in tp else "nothing-here"
    return out


def _send(user, world, route, body):
    body = {**_minimal(route), **body}
    if route.method == "GET":
        query = "&".join(f"{k}={v}" for k, v in body.items())
        return request(user, world.socket, "GET", _target(route.pattern) + (f"?{query}" if query else ""))
    if route.upload:
        return request(user, world.socket, route.method, _target(route.pattern), body, upload=b"")
    return request(user, world.socket, route.method, _target(route.pattern), body)


def _has_user_field(route) -> bool:
    return any(f.name == "user" for f in dataclasses.fields(route.body))


def test_there_are_endpoints_to_check():
    assert len(ROUTES) >= 2


@pytest.mark.parametrize("route", [r for r in ROUTES if r.admin], ids=lambda r: r.name)
def test_admin_endpoints_refuse_ordinary_users(ds01_home, unix_users, route):
    answer = _send(unix_users["alice"], ds01_home, route, {})
    assert answer.exit_code == 5, answer.lines


@pytest.mark.parametrize("route", [r for r in ROUTES if _has_user_field(r)], ids=lambda r: r.name)
def test_acting_for_someone_else_is_for_admins_and_never_for_root_or_system_accounts(
    ds01_home, unix_users, route
):
    alice, bob = unix_users["alice"], unix_users["bob"]
    for who, target in (
        (alice, bob.name),
        (alice, "root"),
        (alice, "daemon"),
        (None, "root"),
        (None, "daemon"),
    ):
        answer = _send(who, ds01_home, route, {"user": target})
        assert answer.exit_code == 5, (who, target, answer.lines)
        assert answer.status == 403
