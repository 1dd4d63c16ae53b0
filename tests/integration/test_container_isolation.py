"""Users are walled off from each other: same names without clash, no touching or seeing another's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ds01.events import read_events
from harness.users import ok, run_as

pytestmark = pytest.mark.docker

BIN = Path(sys.executable).parent


def names(user, *extra, env=None):
    result = ok(run_as(user, "container-list", "--json", *extra, env=env))
    return [e["container"] for e in json.loads(result.stdout)]


def as_root(*argv: str) -> subprocess.CompletedProcess[str]:
    """The admin at the console: root without SUDO_UID."""
    env = {k: v for k, v in os.environ.items() if k != "SUDO_UID"}
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture
def two_theses(ds01_home, engine_clean, unix_users, base_image_ref):
    alice, bob = unix_users["alice"], unix_users["bob"]
    for user in (alice, bob):
        ok(run_as(user, "container-create", "thesis", "--image", base_image_ref))
    ok(run_as(alice, "container-start", "thesis"))
    return alice, bob


def test_two_users_both_have_thesis_without_clash(two_theses, ds01_home):
    alice, bob = two_theses
    assert names(alice) == [f"thesis._.{alice.uid}"]
    assert names(bob) == [f"thesis._.{bob.uid}"]
    assert (ds01_home / "ws" / alice.name / "thesis").stat().st_uid == alice.uid
    assert (ds01_home / "ws" / bob.name / "thesis").stat().st_uid == bob.uid


def test_one_user_cannot_touch_or_see_anothers_container(two_theses, engine_clean):
    alice, bob = two_theses
    theirs = f"thesis._.{alice.uid}"
    container_id = engine_clean.api.inspect_container(theirs)["Id"]
    for verb, *extra in (["container-stop"], ["container-remove", "--force"], ["container-attach"],
                         ["container-logs"], ["container-start"], ["container-pause"], ["container-stats"],
                         ["container-run", "--", "true"]):  # fmt: skip
        for ref in (theirs, container_id[:12]):
            result = run_as(bob, verb, ref, *extra)
            assert result.returncode == 5, (verb, ref, result.stderr)
            assert "not yours" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert engine_clean.api.inspect_container(theirs)["State"]["Status"] == "running"
    assert theirs not in names(bob)
    assert run_as(bob, "container-list", "--all-users").returncode == 5
    assert run_as(bob, "container-list", "--user", alice.name).returncode == 5
    assert run_as(bob, "container-stop", "--user", alice.name, "thesis").returncode == 5


def test_admin_sees_everyone_and_may_act_for_a_user(two_theses, ds01_home):
    alice, bob = two_theses
    everyone = json.loads(ok(as_root("container-list", "--all-users", "--json")).stdout)
    assert {e["container"] for e in everyone} == {f"thesis._.{alice.uid}", f"thesis._.{bob.uid}"}
    ok(as_root("container-stop", "--user", alice.name, "thesis"))
    (stop,) = [e for e in read_events(ds01_home / "log") if e["event_type"] == "stop"]
    assert stop["user"] == alice.name and stop["details"]["by"] == "root"


def test_a_forged_environment_changes_nothing_about_who_asks(two_theses):
    alice, bob = two_theses
    for env in ({"SUDO_UID": "0"}, {"SUDO_UID": str(bob.uid)}, {"USER": bob.name, "LOGNAME": "root"}):
        assert names(alice, env=env) == [f"thesis._.{alice.uid}"]
        assert run_as(alice, "container-list", "--all-users", env=env).returncode == 5


@pytest.fixture
def shared_dirs(ds01_home, unix_users):
    """In the data root: one folder bob keeps to himself, one anyone may read; and one outside any root."""
    bob = unix_users["bob"]
    private, public = ds01_home / "data" / "bob-private", ds01_home / "data" / "public"
    private.mkdir(mode=0o700)
    os.chown(private, bob.uid, bob.gid)
    public.mkdir(mode=0o755)
    (public / "sample.csv").write_text("a,b\n")
    outside = Path(tempfile.mkdtemp(prefix="ds01d-", dir="/tmp"))
    outside.chmod(0o755)
    yield private, public, outside
    subprocess.run(["rm", "-rf", str(outside)], check=False)


def test_data_and_workspace_must_be_the_users_own(ds01_home, engine_clean, unix_users, base_image_ref,
                                                   shared_dirs):  # fmt: skip
    alice, bob = unix_users["alice"], unix_users["bob"]
    private, public, outside = shared_dirs
    image = ["--image", base_image_ref]
    refused = run_as(alice, "container-create", "peek", *image, "--data", str(private))
    assert refused.returncode == 5 and "--data" in refused.stderr
    assert run_as(alice, "container-create", "peek", *image, "--data", str(outside)).returncode == 5
    assert run_as(alice, "container-create", "peek", *image, "--data", str(public / "nope")).returncode == 3
    ok(run_as(bob, "container-create", "mine", *image))
    theirs = ds01_home / "ws" / bob.name / "mine"
    for ws in (str(theirs), str(private), str(outside), str(ds01_home / "ws" / alice.name)):
        result = run_as(alice, "container-create", "peek", *image, "--workspace", ws)
        assert result.returncode == 5, (ws, result.stderr)
    assert [c["Names"] for c in engine_clean.api.containers(all=True)] == [[f"/mine._.{bob.uid}"]]

    ok(run_as(alice, "container-create", "reader", *image, "--data", str(public)))
    result = run_as(alice, "container-run", "reader", "--", "sh", "-c", "cat /data/sample.csv; touch /data/x")
    assert result.returncode != 0 and result.stdout == "a,b\n" and "Read-only" in result.stderr


def test_workspace_by_project_name_and_by_path_in_the_users_root(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    alice = unix_users["alice"]
    image = ["--image", base_image_ref]
    ok(run_as(alice, "container-create", "one", *image, "--workspace", "shared"))
    root = ds01_home / "ws" / alice.name
    ok(run_as(alice, "container-create", "two", *image, "--workspace", str(root / "shared")))
    for name in ("one", "two"):
        labels = engine_clean.api.inspect_container(f"{name}._.{alice.uid}")["Config"]["Labels"]
        assert labels["ds01.workspace"] == str(root / "shared")
        ok(run_as(alice, "container-run", name, "--", "sh", "-c", f"echo {name} > /workspace/{name}"))
    assert (root / "shared" / "one").read_text() == "one\n" and (root / "shared" / "two").exists()
    assert (root / "shared").stat().st_uid == alice.uid
    assert root.stat().st_uid == 0 and root.stat().st_mode & 0o777 == 0o755
    deep = run_as(alice, "container-create", "three", *image, "--workspace", str(root / "shared" / "sub"))
    assert deep.returncode == 5 and "directly in" in deep.stderr


def test_bad_names_from_a_real_user_exit_2_with_one_line(ds01_home, engine_clean, unix_users):
    for name in ("a/b", "..", "   ", "thésis", "x" * 200, "a;rm -rf ~", "$(id)", "a._.b", f"x._.{0}"):
        result = run_as(unix_users["alice"], "container-create", "--", name)
        assert result.returncode == 2, (name, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "invalid name" in result.stderr
