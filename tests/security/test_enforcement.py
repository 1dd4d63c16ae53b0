"""Owner / other user / admin / root target for the endpoints of enforcement: container extend, exemptions
(grant, list, end) and image rollback. Each refusal is checked by its exit code AND by what stayed the same
(the grants ds01d keeps, the event log, the image tags)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.raw import request
from harness.users import run_as

pytestmark = pytest.mark.docker
V1 = "/v1"


def grants(home: Path) -> dict[str, str]:
    d = home / "state" / "grants"
    return {p.name: p.read_text() for p in d.glob("*.json")} if d.is_dir() else {}


def changes(home: Path) -> list[dict[str, Any]]:
    path = home / "log" / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["event_type"] not in ("denied", "create")]


@pytest.fixture
def admin_world(ds01_home: Any, unix_users: Any, engine_clean: Any, base_image_ref: str) -> Any:
    """carol is a ds01 admin; alice owns the container `job`; everyone has an extension budget."""
    ds01_home.reconfigure(
        groups={"admin": {"members": [unix_users["carol"].name], "admin": True}},
        defaults={"extension_budget_h": 10},
    )
    made = run_as(unix_users["alice"], "container-create", "job", "--image", base_image_ref, "--cpu-only")
    assert made.returncode == 0, made.stderr
    return ds01_home


def test_extend_owner_yes_other_user_no_admin_for_the_owner(admin_world: Any, unix_users: Any):
    alice, bob, carol = unix_users["alice"], unix_users["bob"], unix_users["carol"]
    sock, target = admin_world.socket, f"{V1}/containers/job._.{alice.uid}/extend"
    body = {"hours": 2, "reason": "a long run"}
    for attempt in (
        request(bob, sock, "POST", target, body),
        request(bob, sock, "POST", f"{V1}/containers/job/extend", {**body, "user": alice.name}),
    ):
        assert attempt.exit_code == 5, attempt.lines
    assert request(bob, sock, "POST", f"{V1}/containers/job/extend", body).exit_code == 3  # bob has none
    assert grants(admin_world) == {} and changes(admin_world) == []
    for who in ("root", "daemon"):
        refused = request(carol, sock, "POST", f"{V1}/containers/job/extend", {**body, "user": who})
        assert refused.exit_code == 5
    assert request(alice, sock, "POST", f"{V1}/containers/job/extend", body).exit_code == 0
    by_admin = request(carol, sock, "POST", f"{V1}/containers/job/extend", {**body, "user": alice.name})
    assert by_admin.exit_code == 0 and by_admin.result["used_h"] == 4
    assert [e["user"] for e in changes(admin_world)] == [alice.name, alice.name]
    bad = request(alice, sock, "POST", f"{V1}/containers/job/extend", {"hours": -1, "reason": "x y z"})
    assert bad.exit_code == 2


def test_exemptions_are_granted_and_ended_by_admins_only(admin_world: Any, unix_users: Any):
    alice, bob, carol = unix_users["alice"], unix_users["bob"], unix_users["carol"]
    sock = admin_world.socket
    grant = {"user": alice.name, "until": "2099-01-01", "reason": "deadline"}
    for user in (alice, bob):
        assert request(user, sock, "POST", f"{V1}/exemptions", grant).exit_code == 5
        assert request(user, sock, "POST", f"{V1}/exemptions", {**grant, "user": user.name}).exit_code == 5
    assert grants(admin_world) == {} and changes(admin_world) == []
    for who in ("root", "daemon"):
        assert request(carol, sock, "POST", f"{V1}/exemptions", {**grant, "user": who}).exit_code == 5
    assert request(carol, sock, "POST", f"{V1}/exemptions", grant).exit_code == 0
    assert request(None, sock, "POST", f"{V1}/exemptions", {**grant, "user": bob.name}).exit_code == 0

    own = request(alice, sock, "GET", f"{V1}/exemptions")
    assert [r["user"] for r in own.result] == [alice.name], "a user sees their own only"
    assert request(alice, sock, "GET", f"{V1}/exemptions?user={bob.name}").exit_code == 5
    everyone = request(carol, sock, "GET", f"{V1}/exemptions")
    assert sorted(r["user"] for r in everyone.result) == sorted([alice.name, bob.name])

    before = grants(admin_world)
    assert request(alice, sock, "DELETE", f"{V1}/exemptions/{alice.name}").exit_code == 5
    assert request(bob, sock, "DELETE", f"{V1}/exemptions/{alice.name}").exit_code == 5
    assert grants(admin_world) == before
    ended = request(carol, sock, "DELETE", f"{V1}/exemptions/{alice.name}")
    assert ended.exit_code == 0 and ended.result == {"user": alice.name, "ended": True}


def test_rollback_of_another_users_image_is_refused(admin_world: Any, unix_users: Any):
    alice, bob, carol = unix_users["alice"], unix_users["bob"], unix_users["carol"]
    sock = admin_world.socket
    theirs = request(bob, sock, "POST", f"{V1}/images/ds01-{alice.uid}/job/rollback")
    assert theirs.exit_code == 5
    assert request(bob, sock, "POST", f"{V1}/images/job/rollback", {"user": alice.name}).exit_code == 5
    assert changes(admin_world) == []
    # an admin reaches the owner's image (it has none: not found, not refused)
    assert request(carol, sock, "POST", f"{V1}/images/job/rollback", {"user": alice.name}).exit_code == 3
    assert request(alice, sock, "POST", f"{V1}/images/job/rollback").exit_code == 3
