"""Exports: `ds01 admin export-quotas` is for admins only (and `--apply` runs nothing for anyone else);
`project-export` exports the caller's own projects (admins: anyone's with --user). Each refusal is checked
by its exit code AND by what did not happen: no sacctmgr run, no file written, no event but the denial."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness.raw import request
from harness.users import run_as

BIN = Path(sys.executable).parent


@pytest.fixture
def world(ds01_home, unix_users):
    """carol is a ds01 admin; alice and bob are ordinary users."""
    ds01_home.reconfigure(groups={"admin": {"members": [unix_users["carol"].name], "admin": True}})
    return ds01_home


@pytest.fixture
def fake_sacctmgr():
    """A `sacctmgr` first on PATH that only records each call (so a test sees whether anything ran)."""
    folder = Path(tempfile.mkdtemp(prefix="ds01-sacct-", dir="/tmp"))
    folder.chmod(0o777)
    calls = folder / "calls"
    script = folder / "sacctmgr"
    script.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho " Adding Account(s)"\n')
    script.chmod(0o755)
    yield folder, calls
    shutil.rmtree(folder, ignore_errors=True)


def changes(world) -> list[dict]:
    path = world / "log" / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["event_type"] != "denied"]


def export_as(user, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{path}:{os.environ['PATH']}"} if path else None
    return run_as(user, "ds01", "admin", "export-quotas", *args, env=env)


def test_export_quotas_is_refused_to_a_user_and_nothing_runs(world, unix_users, fake_sacctmgr):
    folder, calls = fake_sacctmgr
    alice = unix_users["alice"]
    out = world / "ws" / "quotas.yaml"
    for args in (("--to", "slurm"), ("--to", "slurm", "--apply"), ("--to", "k8s", "-o", str(out))):
        refused = export_as(alice, *args, path=str(folder))
        assert refused.returncode == 5, refused.stderr
        assert "sacctmgr" not in refused.stdout and "apiVersion" not in refused.stdout
    as_json = export_as(alice, "--to", "slurm", "--json")
    assert as_json.returncode == 5 and json.loads(as_json.stdout)["error"]["code"] == "permission_denied"
    assert not calls.exists() and not out.exists()
    assert changes(world) == []


def test_export_quotas_works_for_an_admin_and_for_root(world, unix_users, fake_sacctmgr):
    folder, calls = fake_sacctmgr
    carol = unix_users["carol"]
    done = export_as(carol, "--to", "slurm", "--apply", path=str(folder))
    assert done.returncode == 0, done.stderr
    assert calls.exists() and "add account student" in calls.read_text()
    by_root = subprocess.run(
        [str(BIN / "ds01"), "admin", "export-quotas", "--to", "k8s"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert by_root.returncode == 0 and "kind: ResourceQuota" in by_root.stdout


def test_the_quota_endpoints_answer_only_what_the_caller_may_see(world, unix_users):
    alice, bob, carol = unix_users["alice"], unix_users["bob"], unix_users["carol"]
    assert request(alice, world.socket, "GET", "/v1/admin/quotas").exit_code == 5
    assert request(alice, world.socket, "GET", f"/v1/quotas?user={bob.name}").exit_code == 5
    own = request(alice, world.socket, "GET", "/v1/quotas")
    assert own.exit_code == 0 and own.result["user"]["name"] == alice.name
    assert bob.name not in json.dumps(own.result)
    theirs = request(carol, world.socket, "GET", f"/v1/quotas?user={bob.name}")
    assert theirs.exit_code == 0 and theirs.result["user"]["uid"] == bob.uid
    assert request(carol, world.socket, "GET", "/v1/quotas?user=root").exit_code == 5
    everyone = request(carol, world.socket, "GET", "/v1/admin/quotas").result
    assert {alice.name, bob.name} <= {u["name"] for u in everyone["users"]}
    assert "root" not in {u["name"] for u in everyone["users"]}


def test_project_export_of_another_users_project_is_refused(world, unix_users):
    alice, bob, carol = unix_users["alice"], unix_users["bob"], unix_users["carol"]
    assert run_as(bob, "dir-create", "secret", "--type", "blank").returncode == 0
    out = world / "ws" / alice.name / "stolen.yaml"
    assert run_as(alice, "dir-create", "mine", "--type", "blank").returncode == 0
    for args, code in (
        (("secret", "--user", bob.name), 5),  # names bob: only admins may
        (("secret",), 3),  # alice has no project of that name; bob's is not found for her
        (("../" + bob.name + "/secret",), 2),  # not a project name
        (("secret", "--user", "root"), 5),
    ):
        refused = run_as(alice, "project-export", *args, "--to", "k8s", "-o", str(out))
        assert refused.returncode == code, (args, refused.stderr)
        assert refused.stdout == "" and not out.exists()
    assert changes(world) == []
    # the admin may export bob's project; it runs as bob's uid, not the admin's
    done = run_as(carol, "project-export", "secret", "--user", bob.name, "--gpus", "0", "--json")
    assert done.returncode == 0, done.stderr
    pod = json.loads(done.stdout)["documents"][1]
    assert pod["spec"]["securityContext"]["runAsUser"] == bob.uid


def test_a_failing_apply_is_exit_1_with_each_command_reported(world, unix_users, fake_sacctmgr):
    folder, calls = fake_sacctmgr
    (folder / "sacctmgr").write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\necho " Unknown TRES gres/gpu" >&2\nexit 1\n'
    )
    done = export_as(unix_users["carol"], "--to", "slurm", "--apply", "--json", path=str(folder))
    assert done.returncode == 1 and "sacctmgr commands failed" in done.stderr
    doc = json.loads(done.stdout)  # one document: the commands, each result and the error
    assert doc["error"]["code"] == "operation_failed"
    assert doc["applied"] and not any(r["ok"] for r in doc["applied"])
    assert "Unknown TRES" in doc["applied"][0]["output"]
    assert len(calls.read_text().splitlines()) == len(doc["commands"])
