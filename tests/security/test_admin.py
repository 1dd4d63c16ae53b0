"""Owner / other user / admin / root target for deploy, retire, gpus, limits, doctor, reaper and events.

Each refusal is checked by its exit code AND by what stayed the same on the host (containers, events)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.raw import request
from harness.users import run_as

pytestmark = pytest.mark.docker
BIN = Path(sys.executable).parent
SYSTEM_TARGETS = ("root", "daemon")


def as_root(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120)


def containers(client, uid: int) -> list[str]:
    return sorted(c.name for c in client.containers.list(all=True, filters={"label": [f"ds01.uid={uid}"]}))


def events(world) -> list[dict]:
    path = world / "log" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def changes(world) -> list[dict]:
    return [e for e in events(world) if e["event_type"] != "denied"]


@pytest.fixture
def admin_world(ds01_home, unix_users):
    """carol is a ds01 admin (a group with admin: true); alice and bob are ordinary users."""
    ds01_home.reconfigure(groups={"admin": {"members": [unix_users["carol"].name], "admin": True}})
    return ds01_home


def deploy(user, name: str, image: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_as(
        user, "container-deploy", name, "--cpu-only", "--image", image, "--background", "--json", *extra
    )


# -- deploy -------------------------------------------------------------------------------------------
def test_deploy_for_another_user_is_refused_for_users_and_done_for_admins(
    admin_world, engine_clean, base_image_ref, unix_users
):
    alice, bob, carol = unix_users["alice"], unix_users["bob"], unix_users["carol"]
    refused = deploy(alice, "x", base_image_ref, "--user", bob.name)
    assert refused.returncode == 5 and json.loads(refused.stdout)["error"]["code"]
    assert containers(engine_clean, bob.uid) == [] and containers(engine_clean, alice.uid) == []
    assert changes(admin_world) == []
    done = deploy(carol, "x", base_image_ref, "--user", bob.name)
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stdout)
    assert entry["user"] == bob.name and entry["uid"] == bob.uid
    assert (
        containers(engine_clean, bob.uid) == [f"x._.{bob.uid}"] and containers(engine_clean, carol.uid) == []
    )


@pytest.mark.parametrize("target", SYSTEM_TARGETS)
def test_deploy_for_root_or_a_system_account_is_refused_for_everyone(
    admin_world, engine_clean, base_image_ref, unix_users, target
):
    for who in (unix_users["alice"], unix_users["carol"]):
        result = deploy(who, "sys", base_image_ref, "--user", target)
        assert result.returncode == 5, (who.name, result.stdout)
    result = as_root("container-deploy", "sys", "--cpu-only", "--image", base_image_ref, "--user", "daemon")
    assert result.returncode == 5, result.stderr
    assert engine_clean.containers.list(all=True) == [] and changes(admin_world) == []


# -- retire -------------------------------------------------------------------------------------------
def test_retire_of_another_users_container_is_refused_and_it_stays(
    admin_world, engine_clean, base_image_ref, unix_users
):
    alice, bob, carol = unix_users["alice"], unix_users["bob"], unix_users["carol"]
    assert deploy(bob, "mine", base_image_ref).returncode == 0
    before = changes(admin_world)
    by_name = run_as(alice, "container-retire", "mine", "--yes")  # alice's own `mine`: none
    assert by_name.returncode == 3
    by_docker_name = run_as(alice, "container-retire", f"mine._.{bob.uid}", "--yes")
    assert by_docker_name.returncode == 5 and "not yours" in by_docker_name.stderr
    as_user = run_as(alice, "container-retire", "mine", "--user", bob.name, "--yes")
    assert as_user.returncode == 5
    raw = request(alice, admin_world.socket, "POST", "/v1/retire", {"name": f"mine._.{bob.uid}"})
    assert raw.exit_code == 5 and raw.status == 403
    assert containers(engine_clean, bob.uid) == [f"mine._.{bob.uid}"]
    [c] = engine_clean.containers.list(all=True)
    assert c.status == "running" and changes(admin_world) == before
    done = run_as(carol, "container-retire", "mine", "--user", bob.name, "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["user"] == bob.name and containers(engine_clean, bob.uid) == []
    removed = [e for e in events(admin_world) if e["event_type"] == "remove"]
    assert removed[-1]["user"] == bob.name and removed[-1]["details"]["by"] == carol.name


def test_retire_all_touches_only_the_callers_containers(
    admin_world, engine_clean, base_image_ref, unix_users
):
    alice, bob = unix_users["alice"], unix_users["bob"]
    assert deploy(alice, "a", base_image_ref).returncode == 0
    assert deploy(bob, "b", base_image_ref).returncode == 0
    result = run_as(alice, "container-retire", "--all", "--yes", "--json")
    assert result.returncode == 0 and [r["name"] for r in json.loads(result.stdout)] == ["a"]
    assert containers(engine_clean, alice.uid) == [] and containers(engine_clean, bob.uid) == [
        f"b._.{bob.uid}"
    ]
    refused = run_as(alice, "container-retire", "--all", "--yes", "--user", bob.name)
    assert refused.returncode == 5 and containers(engine_clean, bob.uid) == [f"b._.{bob.uid}"]


@pytest.mark.parametrize("target", SYSTEM_TARGETS)
def test_retire_for_root_or_a_system_account_is_refused_for_everyone(
    admin_world, engine_clean, unix_users, target
):
    for who in (unix_users["alice"], unix_users["carol"]):
        result = run_as(who, "container-retire", "--all", "--yes", "--user", target)
        assert result.returncode == 5, (who.name, result.stderr)


# -- gpus, limits, doctor ---------------------------------------------------------------------------------
def test_gpu_status_and_doctor_answer_everyone(admin_world, engine_clean, unix_users):
    for who in (unix_users["alice"], unix_users["carol"]):
        assert run_as(who, "gpu-status", "--json").returncode == 0
        doctor = run_as(who, "ds01", "doctor", "--json")
        assert doctor.returncode in (0, 1) and json.loads(doctor.stdout)["checks"]
    assert as_root("gpu-status", "--json").returncode == 0


def test_limits_of_another_user_for_admins_only(admin_world, engine_clean, unix_users):
    alice, bob, carol = unix_users["alice"], unix_users["bob"], unix_users["carol"]
    assert run_as(alice, "check-limits", "--user", bob.name).returncode == 5
    seen = run_as(carol, "check-limits", "--user", bob.name, "--json")
    assert seen.returncode == 0 and json.loads(seen.stdout)["user"] == bob.name
    for target in SYSTEM_TARGETS:
        for who in (alice, carol):
            assert run_as(who, "check-limits", "--user", target).returncode == 5
    assert as_root("check-limits", "--user", "daemon").returncode == 5


# -- reaper -------------------------------------------------------------------------------------------
def test_reaper_is_for_admins_only(admin_world, engine_clean, base_image_ref, unix_users):
    alice, carol = unix_users["alice"], unix_users["carol"]
    engine_clean.containers.create(
        base_image_ref, ["true"], name=f"old._.{alice.uid}",
        labels={"ds01.managed": "true", "ds01.uid": str(alice.uid), "ds01.user": alice.name},
    )  # fmt: skip
    admin_world.reconfigure(
        groups={"admin": {"members": [carol.name], "admin": True}},
        policies={"created_container_timeout_m": 0},
    )
    refused = run_as(alice, "ds01-reaper", "--once")
    assert refused.returncode == 5 and "only admins" in refused.stderr
    raw = request(alice, admin_world.socket, "POST", "/v1/reaper", {"dry_run": False})
    assert raw.exit_code == 5
    assert containers(engine_clean, alice.uid) == [f"old._.{alice.uid}"] and changes(admin_world) == []
    dry = run_as(carol, "ds01-reaper", "--once", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert [a["action"] for a in json.loads(dry.stdout)["actions"]] == ["cleanup"]
    assert containers(engine_clean, alice.uid) == [f"old._.{alice.uid}"]
    real = as_root("ds01-reaper", "--once", "--json")
    assert real.returncode == 0 and containers(engine_clean, alice.uid) == []


# -- events -------------------------------------------------------------------------------------------
def test_events_a_user_sees_only_their_own(admin_world, engine_clean, base_image_ref, unix_users):
    alice, bob, carol = unix_users["alice"], unix_users["bob"], unix_users["carol"]
    assert deploy(alice, "a", base_image_ref).returncode == 0
    assert deploy(bob, "b", base_image_ref).returncode == 0
    mine = json.loads(run_as(alice, "ds01", "events", "--json").stdout)
    assert mine and {e["user"] for e in mine} == {alice.name}
    assert {"create", "start"} <= {e["event_type"] for e in mine}
    raw = request(alice, admin_world.socket, "GET", "/v1/events")
    assert {e["user"] for e in raw.result} == {alice.name}
    other = run_as(alice, "ds01", "events", "--user", bob.name, "--json")
    assert other.returncode == 5 and "event_type" not in other.stdout
    assert request(alice, admin_world.socket, "GET", f"/v1/events?user={bob.name}").exit_code == 5
    by_container = json.loads(run_as(alice, "ds01", "events", "--container", "b", "--json").stdout)
    assert by_container == []  # bob's container name gives alice nothing of his
    everyone = json.loads(run_as(carol, "ds01", "events", "--json").stdout)
    assert {alice.name, bob.name} <= {e["user"] for e in everyone}
    bobs = json.loads(
        run_as(carol, "ds01", "events", "--user", bob.name, "--type", "create", "--json").stdout
    )
    assert [(e["user"], e["event_type"]) for e in bobs] == [(bob.name, "create")]
    for target in SYSTEM_TARGETS:
        for who in (alice, carol):
            assert run_as(who, "ds01", "events", "--user", target).returncode == 5
    human = run_as(alice, "ds01", "events", "--type", "create")
    assert human.returncode == 0 and "create" in human.stdout and bob.name not in human.stdout


def test_events_bad_filters_are_usage_errors(admin_world, unix_users):
    alice = unix_users["alice"]
    assert run_as(alice, "ds01", "events", "--type", "nonsense").returncode == 2
    assert run_as(alice, "ds01", "events", "--since", "yesterday").returncode == 2
    assert run_as(alice, "ds01", "events", "--limit", "0").returncode == 2
