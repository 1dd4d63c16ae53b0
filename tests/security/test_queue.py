"""The wait queue's endpoints as owner, another user and admin: `GET /v1/queue`, `DELETE /v1/queue/{id}`,
and `POST /v1/deploy` with `wait`. Another user learns only counts by shape, cannot cancel (the answer is
the same as for a missing request), and cannot queue for someone else; nothing changes when refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness.raw import request
from harness.users import run_as

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from test_queue_wait import events_of, setup

pytestmark = pytest.mark.docker


@pytest.fixture
def waiting(ds01_home, engine_clean, base_image_ref, unix_users) -> str:
    """alice holds the one slot; bob waits (detached) with request id returned."""
    setup(ds01_home, 1)
    flags = ("--gpus", "1", "--image", base_image_ref, "--background")
    assert run_as(unix_users["alice"], "container-deploy", "holder", *flags).returncode == 0
    r = run_as(
        unix_users["bob"], "container-deploy", "secret-project", *flags, "--wait", "--detach", "--json"
    )
    assert r.returncode == 0, r.stderr
    return str(json.loads(r.stdout)["queued"]["id"])


def state_files(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "state" / "queue").glob("*.json"))


def test_listing_shows_others_only_as_counts(ds01_home, unix_users, waiting):
    sock = ds01_home.socket
    other = request(unix_users["carol"], sock, "GET", "/v1/queue")
    assert other.status == 200 and other.result["waiting"] == 1
    assert other.result["requests"] == [] and other.result["others"] == [{"shape": "1 GPU", "count": 1}]
    text = json.dumps(other.lines)
    assert waiting not in text and "secret-project" not in text and unix_users["bob"].name not in text
    owner = request(unix_users["bob"], sock, "GET", "/v1/queue")
    assert [r["id"] for r in owner.result["requests"]] == [waiting]
    assert owner.result["requests"][0]["name"] == "secret-project"
    admin = request(None, sock, "GET", "/v1/queue")
    assert [r["id"] for r in admin.result["requests"]] == [waiting]


def test_another_user_cannot_cancel_and_nothing_changes(ds01_home, unix_users, waiting):
    sock = ds01_home.socket
    before = state_files(ds01_home)
    assert before == [f"{waiting}.json"]
    for bad in (waiting, "nonexistent", "..", "%2e%2e%2fstate"):
        answer = request(unix_users["carol"], sock, "DELETE", f"/v1/queue/{bad}")
        assert answer.exit_code == 3 and answer.status == 404, answer.lines
    assert state_files(ds01_home) == before
    assert request(None, sock, "GET", "/v1/queue").result["waiting"] == 1
    assert not events_of(ds01_home, "queue_cancel")


def test_the_owner_cancels_their_own(ds01_home, unix_users, waiting):
    r = run_as(unix_users["bob"], "ds01", "queue", "cancel", waiting, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["cancelled"] == waiting
    assert state_files(ds01_home) == []
    assert request(None, ds01_home.socket, "GET", "/v1/queue").result["waiting"] == 0
    [event] = events_of(ds01_home, "queue_cancel")
    assert event["user"] == unix_users["bob"].name and "by" not in event["details"]


def test_an_admin_cancels_anyones(ds01_home, unix_users, waiting):
    answer = request(None, ds01_home.socket, "DELETE", f"/v1/queue/{waiting}")
    assert answer.exit_code == 0 and answer.result["user"] == unix_users["bob"].name
    assert state_files(ds01_home) == []
    [event] = events_of(ds01_home, "queue_cancel")
    assert event["details"]["by"] == "root"


def test_queueing_for_someone_else_is_for_admins_only(ds01_home, unix_users, waiting, base_image_ref):
    sock = ds01_home.socket
    body = {"name": "x", "gpus": 1, "image": base_image_ref, "wait": True, "detach": True}
    answer = request(
        unix_users["carol"], sock, "POST", "/v1/deploy", {**body, "user": unix_users["dave"].name}
    )
    assert answer.exit_code == 5
    for bad in ({"timeout_s": 0}, {"timeout_s": 10**9}, {"wait": "yes"}, {"wait": False, "detach": True}):
        answer = request(unix_users["carol"], sock, "POST", "/v1/deploy", {**body, **bad})
        assert answer.exit_code == 2, (bad, answer.lines)
    assert request(None, sock, "GET", "/v1/queue").result["waiting"] == 1  # bob's alone
    admin = request(None, sock, "POST", "/v1/deploy", {**body, "user": unix_users["dave"].name})
    assert admin.exit_code == 0 and admin.result["action"] == "queued"
    doc = request(None, sock, "GET", "/v1/queue").result
    assert [r["user"] for r in doc["requests"]] == [unix_users["bob"].name, unix_users["dave"].name]
