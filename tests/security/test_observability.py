"""Usage, summary (greeting) and top: each as the owner, another user and an admin, against the real ds01d.
Another user's figures, containers and greeting never show; refusals are exit 5 and change nothing."""

from __future__ import annotations

import json
import subprocess

import pytest

from harness.raw import request
from harness.users import run_as

pytestmark = pytest.mark.docker


def _event(ts: str, kind: str, user: str, container: str, **details: object) -> str:
    return json.dumps(
        {"timestamp": ts, "event_type": kind, "user": user, "container": container, "details": details}
    )


@pytest.fixture
def world(ds01_home, engine_clean, base_image_ref, unix_users):
    alice, bob, carol = unix_users["alice"], unix_users["bob"], unix_users["carol"]
    ds01_home.reconfigure(groups={"admin": {"members": [carol.name], "admin": True}})
    with open(ds01_home / "log" / "events.jsonl", "a") as f:
        for who, name in ((alice, "alpha-secret"), (bob, "bravo-secret")):
            f.write(
                _event("2026-10-02T10:00:00Z", "allocate", who.name, f"{name}._.{who.uid}", gpueq=1.0) + "\n"
            )
            f.write(
                _event("2026-10-02T12:00:00Z", "release", who.name, f"{name}._.{who.uid}", gpueq=1.0) + "\n"
            )
    r = run_as(
        alice, "container-deploy", "alpha-live", "--image", base_image_ref, "--cpu-only", "--background"
    )
    assert r.returncode == 0, r.stderr
    return ds01_home, alice, bob, carol


def _snapshot(engine_clean) -> list[tuple[str, str]]:
    return sorted((c.name, c.status) for c in engine_clean.containers.list(all=True))


def test_usage_owner_other_admin(world, engine_clean):
    _, alice, bob, carol = world
    before = _snapshot(engine_clean)
    own = json.loads(run_as(alice, "ds01", "usage", "--month", "2026-10", "--json").stdout)
    assert [r["project"] for r in own["rows"]] == ["alpha-secret"]
    other = run_as(bob, "ds01", "usage", "--month", "2026-10", "--user", alice.name, "--json")
    assert other.returncode == 5 and "alpha-secret" not in other.stdout + other.stderr
    bobs = run_as(bob, "ds01", "usage", "--month", "2026-10", "--json")
    assert "alpha-secret" not in bobs.stdout and "bravo-secret" in bobs.stdout
    admin = json.loads(run_as(carol, "ds01", "usage", "--month", "2026-10", "--json").stdout)
    assert {r["project"] for r in admin["rows"]} == {"alpha-secret", "bravo-secret"}
    one = json.loads(
        run_as(carol, "ds01", "usage", "--month", "2026-10", "--user", bob.name, "--json").stdout
    )
    assert [r["project"] for r in one["rows"]] == ["bravo-secret"]
    assert _snapshot(engine_clean) == before


def test_summary_owner_other_admin(world, engine_clean):
    home, alice, bob, carol = world
    before = _snapshot(engine_clean)
    own = request(alice, home.socket, "GET", "/v1/summary")
    assert own.exit_code == 0 and [c["name"] for c in own.result["containers"]] == ["alpha-live"]
    other = request(bob, home.socket, "GET", f"/v1/summary?user={alice.name}")
    assert other.exit_code == 5 and "alpha-live" not in json.dumps(other.lines)
    bobs = request(bob, home.socket, "GET", "/v1/summary")
    assert bobs.exit_code == 0 and bobs.result["containers"] == []
    admin = request(carol, home.socket, "GET", f"/v1/summary?user={alice.name}")
    assert admin.exit_code == 0 and admin.result["user"] == alice.name
    assert "alpha-live" in admin.result["text"]
    assert _snapshot(engine_clean) == before


def test_top_owner_other_admin(world, engine_clean):
    home, alice, bob, carol = world
    own = request(alice, home.socket, "GET", "/v1/top")
    assert own.exit_code == 0 and [u["user"] for u in own.result["users"]] == [alice.name]
    other = request(bob, home.socket, "GET", "/v1/top")
    assert other.exit_code == 0 and "alpha-live" not in json.dumps(other.result)
    refused = request(bob, home.socket, "GET", f"/v1/top?user={alice.name}")
    assert refused.exit_code == 2  # top takes no body: an unknown field, not a way in
    admin = request(carol, home.socket, "GET", "/v1/top")
    assert admin.exit_code == 0 and "alpha-live" in json.dumps(admin.result)


def test_another_user_cannot_read_the_greeting(world):
    home, alice, bob, _ = world
    greeting = home / "users" / str(alice.uid) / "greeting"
    import time

    deadline = time.monotonic() + 15
    while not greeting.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "alpha-live" in greeting.read_text()
    r = subprocess.run(
        ["runuser", "-u", bob.name, "--", "cat", str(greeting)], capture_output=True, text=True
    )
    assert r.returncode != 0 and "alpha-live" not in r.stdout
    r = subprocess.run(
        ["runuser", "-u", bob.name, "--", "sh", "-c", f"echo x > {greeting}"], capture_output=True
    )
    assert r.returncode != 0 and "alpha-live" in greeting.read_text()
