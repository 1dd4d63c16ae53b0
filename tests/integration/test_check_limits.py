"""check-limits and identity as real Unix users on the private engine."""

from __future__ import annotations

import json

import pytest

from harness.users import run_as

pytestmark = pytest.mark.docker


def test_check_limits_json_matches_the_contract_for_a_real_user(ds01_home, engine_clean, unix_users):
    alice = unix_users["alice"]
    result = run_as(alice, "check-limits", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"user", "uid", "group", "limits", "source", "usage"} <= set(report)
    assert report["user"] == alice.name and report["uid"] == alice.uid and report["group"] == "student"
    assert set(report["source"]) == set(report["limits"])
    assert set(report["source"].values()) <= {"defaults", "group", "override"}
    assert report["usage"] == {"gpu_equivalents": 0.0, "gpu_slots": 0, "containers": 0}


def test_usage_counts_the_users_labelled_containers_and_gpus(
    ds01_home, engine_clean, base_image_ref, unix_users
):
    bob = unix_users["bob"]
    labels = {
        "ds01.managed": "true",
        "ds01.user": bob.name,
        "ds01.uid": str(bob.uid),
        "ds01.project": "p",
        "ds01.gpu.slots": "2.1",
        "ds01.gpu.uuids": "MIG-x",
        "ds01.gpu.gpueq": "0.2857",
    }
    engine_clean.containers.create(base_image_ref, ["true"], name=f"p._.{bob.uid}", labels=labels)
    result = run_as(bob, "check-limits", "--json")
    assert result.returncode == 0, result.stderr
    usage = json.loads(result.stdout)["usage"]
    assert usage["containers"] == 1 and usage["gpu_slots"] == 1
    assert usage["gpu_equivalents"] == pytest.approx(0.2857, abs=1e-3)


def test_a_user_cannot_read_another_users_limits(ds01_home, engine_clean, unix_users):
    result = run_as(unix_users["alice"], "check-limits", "--user", unix_users["bob"].name)
    assert result.returncode == 5 and "only admins" in result.stderr


def test_root_is_admin_and_may_ask_for_any_user(ds01_home, engine_clean, unix_users):
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "check-limits"
    result = subprocess.run(
        [str(exe), "--user", unix_users["bob"].name, "--json"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["user"] == unix_users["bob"].name


def test_forged_sudo_uid_is_ignored_the_caller_is_who_the_socket_says(ds01_home, engine_clean, unix_users):
    alice = unix_users["alice"]
    result = run_as(alice, "check-limits", "--json", env={"SUDO_UID": "0", "SUDO_USER": "root"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["user"] == alice.name


def test_an_admin_group_member_may_ask_for_another_user(ds01_home, engine_clean, unix_users):
    alice, bob = unix_users["alice"], unix_users["bob"]
    ds01_home.reconfigure(groups={"admin": {"members": [alice.name], "admin": True}})
    result = run_as(alice, "check-limits", "--user", bob.name, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["user"] == bob.name
    for target in ("root", "daemon"):
        refused = run_as(alice, "check-limits", "--user", target, "--json")
        assert refused.returncode == 5, refused.stdout
        assert json.loads(refused.stdout)["error"]["code"]


def test_without_ds01d_the_command_says_so_with_exit_6(ds01_home, unix_users):
    result = run_as(unix_users["alice"], "check-limits", env={"DS01_SOCKET": str(ds01_home / "nope.sock")})
    assert result.returncode == 6 and "ds01d is not running" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_acting_user_is_the_caller(ds01_home, engine_clean, unix_users):
    result = run_as(unix_users["carol"], "check-limits", "--json")
    assert json.loads(result.stdout)["user"] == unix_users["carol"].name
