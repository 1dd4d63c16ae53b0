"""Containers: F2 (labels from an image), F3 (another user's image, run form), F4 (mount sources swapped
after create), F7 (uid 0), F11 (what a path check reveals), and owner / other user / admin for every
container endpoint.

Each reproduction runs as a real user against the real ds01d and engine and asserts the refusal (exit code)
AND that nothing changed on the host: no container started or created, no folder made, no secret read.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.raw import request
from harness.users import TestUser as Account
from harness.users import ok, run_as

pytestmark = pytest.mark.docker

BIN = Path(sys.executable).parent
SECRET = "the-diary-says-ds01-secret-42"


def sh_as(user: Account, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", user.name, "--", "sh", "-c", script], capture_output=True, text=True, timeout=60
    )


def as_root(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )


def state(engine, name: str) -> dict:
    raw = engine.api.inspect_container(name)
    return raw["State"]


def never_started(engine, name: str) -> bool:
    s = state(engine, name)
    return s["Status"] == "created" and s["StartedAt"].startswith("0001-")


@pytest.fixture
def victim_notes(unix_users) -> Iterator[Path]:
    """bob's notes behind his 0700 home: the folder and the diary are world-readable, so only the closed
    home keeps others out (what a bind mount of the folder itself would bypass)."""
    bob = unix_users["bob"]
    top = Path(tempfile.mkdtemp(prefix="ds01-bob-", dir="/tmp"))
    os.chown(top, bob.uid, bob.gid)
    top.chmod(0o700)
    notes = top / "notes"
    notes.mkdir(mode=0o755)
    (notes / "diary.txt").write_text(SECRET + "\n")
    for p in (notes, notes / "diary.txt"):
        os.chown(p, bob.uid, bob.gid)
    (notes / "diary.txt").chmod(0o644)
    yield notes
    shutil.rmtree(top, ignore_errors=True)


# -- F4: mount sources swapped after create ---------------------------------------------------------------
def test_f4_data_swapped_for_a_link_after_create_is_refused_at_start(
    ds01_home, engine_clean, unix_users, base_image_ref, victim_notes
):
    alice = unix_users["alice"]
    image = ["--image", base_image_ref]
    ok(run_as(alice, "container-create", "thesis", *image))
    ws = ds01_home / "ws" / alice.name / "thesis"
    ok(sh_as(alice, f"mkdir {ws}/d"))
    ok(run_as(alice, "container-create", "peek", *image, "--data", f"{ws}/d"))
    # the swap: the folder becomes a link to bob's notes (alice owns the project folder, so she can)
    ok(sh_as(alice, f"rmdir {ws}/d && ln -s {victim_notes} {ws}/d"))
    before = (victim_notes / "diary.txt").stat()

    refused = run_as(alice, "container-start", "peek")
    assert refused.returncode == 5 and "--data" in refused.stderr, refused.stderr
    run = run_as(alice, "container-run", "peek", "--", "cat", "/data/diary.txt")
    assert run.returncode == 5 and SECRET not in run.stdout + run.stderr
    assert never_started(engine_clean, f"peek._.{alice.uid}")
    after = (victim_notes / "diary.txt").stat()
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
    assert sorted(os.listdir(victim_notes)) == ["diary.txt"]


def test_f4_data_link_in_the_path_is_refused_at_create(
    ds01_home, engine_clean, unix_users, base_image_ref, victim_notes
):
    alice = unix_users["alice"]
    ok(run_as(alice, "container-create", "thesis", "--image", base_image_ref))
    ws = ds01_home / "ws" / alice.name / "thesis"
    ok(sh_as(alice, f"ln -s {victim_notes} {ws}/notes"))
    for path in (f"{ws}/notes", f"{ws}/notes/sub"):
        result = run_as(alice, "container-create", "peek", "--image", base_image_ref, "--data", path)
        assert result.returncode == 5, result.stderr
    assert [c["Names"] for c in engine_clean.api.containers(all=True)] == [[f"/thesis._.{alice.uid}"]]


def test_f4_the_user_cannot_replace_a_workspace_and_a_replaced_one_is_refused_at_start(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    alice = unix_users["alice"]
    ok(run_as(alice, "container-create", "nologin", "--image", base_image_ref))
    user_root = ds01_home / "ws" / alice.name
    project = user_root / "nologin"
    assert project.stat().st_uid == alice.uid
    # <root>/<user> is root's: the project folder can be neither renamed away nor replaced
    for script in (f"mv {project} {user_root}/away", f"ln -s /etc {user_root}/other", f"rm -rf {project}"):
        assert sh_as(alice, script).returncode != 0, script
    assert sorted(os.listdir(user_root)) == ["nologin"] and project.is_dir() and not project.is_symlink()

    # had it been replaced anyway (e.g. by an older layout), start refuses and dockerd makes nothing
    target = Path(tempfile.mkdtemp(prefix="ds01-etc-", dir="/tmp"))
    try:
        project.rename(user_root / "away")
        project.symlink_to(target / "nologin")
        result = run_as(alice, "container-start", "nologin")
        assert result.returncode == 5 and "workspace" in result.stderr, result.stderr
        assert not (target / "nologin").exists() and os.listdir(target) == []
        assert never_started(engine_clean, f"nologin._.{alice.uid}")
        # also a link to an existing folder of someone else: refused, untouched
        (target / "nologin").mkdir()
        assert run_as(alice, "container-start", "nologin").returncode == 5
        assert os.listdir(target / "nologin") == []
        # and a new container on a linked workspace is never created
        result = run_as(
            alice, "container-create", "again", "--image", base_image_ref, "--workspace", "nologin"
        )
        assert result.returncode == 5
        assert len(engine_clean.api.containers(all=True)) == 1
    finally:
        shutil.rmtree(target, ignore_errors=True)


# -- F2: ds01.* labels inherited from an image ------------------------------------------------------------
def _build(engine, base: str, tag: str, labels: dict[str, str]) -> str:
    lines = [f"FROM {base}"] + [f'LABEL {k}="{v}"' for k, v in labels.items()]
    image, _ = engine.images.build(fileobj=io.BytesIO("\n".join(lines).encode()), tag=tag, rm=True)
    return image.id


def _holdings(ds01_home):
    from ds01.atomic.holdings import corrupt_containers, gpu_holdings, managed_containers
    from ds01.config import load_config
    from ds01.docker_gateway import connect

    gateway = connect()
    containers = managed_containers(gateway)
    return gpu_holdings(gateway, load_config(ds01_home.config), containers=containers), corrupt_containers(
        containers
    )


def test_f2_gpu_labels_from_an_image_never_count(ds01_home, engine_clean, unix_users, base_image_ref):
    alice, bob = unix_users["alice"], unix_users["bob"]
    forged = {
        "ds01.gpu.slots": "0,1,2,3",
        "ds01.gpu.uuids": "GPU-a,GPU-b,GPU-c,GPU-d",
        "ds01.gpu.gpueq": "nan",
        "ds01.uid": str(alice.uid),
        "ds01.framework": "forged",
    }
    _build(engine_clean, base_image_ref, "forged:latest", forged)
    entry = json.loads(
        ok(run_as(alice, "container-create", "cpu", "--image", "forged:latest", "--json")).stdout
    )
    assert entry["gpus"] == []
    labels = engine_clean.api.inspect_container(f"cpu._.{alice.uid}")["Config"]["Labels"]
    assert (labels["ds01.gpu.slots"], labels["ds01.gpu.uuids"], labels["ds01.gpu.gpueq"]) == ("", "", "")
    assert labels["ds01.framework"] == ""
    ok(run_as(alice, "container-start", "cpu"))
    holdings, corrupt = _holdings(ds01_home)
    assert holdings == [] and corrupt == []
    # everyone else still gets a GPU
    got = json.loads(
        ok(run_as(bob, "container-create", "gpu", "--image", base_image_ref, "--gpus", "1", "--json")).stdout
    )
    assert len(got["gpus"]) == 1
    ok(run_as(bob, "container-start", "gpu"))
    holdings, _ = _holdings(ds01_home)
    assert [h.user for h in holdings] == [bob.name]


def test_f2_a_label_naming_a_victims_gpu_never_stops_the_victim_from_starting(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    """The review's second F2 form: an image labelled with the victim's slot and UUID, run CPU-only, made
    the victim's stopped GPU container unable to start again ("held by another")."""
    alice, bob = unix_users["alice"], unix_users["bob"]
    got = json.loads(
        ok(run_as(bob, "container-create", "work", "--image", base_image_ref, "--gpus", "1", "--json")).stdout
    )
    [gpu] = got["gpus"]
    ok(run_as(bob, "container-start", "work"))
    ok(run_as(bob, "container-stop", "work", "--timeout", "1"))
    forged = {"ds01.gpu.slots": gpu["slot"], "ds01.gpu.uuids": gpu["uuid"], "ds01.gpu.gpueq": "1.0"}
    _build(engine_clean, base_image_ref, "squat:latest", forged)
    ok(run_as(alice, "container-create", "squat", "--image", "squat:latest"))
    ok(run_as(alice, "container-start", "squat"))
    labels = engine_clean.api.inspect_container(f"squat._.{alice.uid}")["Config"]["Labels"]
    assert labels["ds01.gpu.uuids"] == "" and labels["ds01.gpu.slots"] == ""
    ok(run_as(bob, "container-start", "work"))  # the victim's GPU is still theirs
    holdings, _ = _holdings(ds01_home)
    assert [h.user for h in holdings] == [bob.name]


def test_f2_a_container_with_corrupt_gpu_labels_holds_nothing_and_is_reported(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    erin, frank = unix_users["erin"], unix_users["frank"]
    for i, (who, gpueq) in enumerate(((erin, "nan"), (erin, "-1"), (frank, "inf"), (frank, "lots"))):
        labels = {"ds01.managed": "true", "ds01.uid": str(who.uid), "ds01.user": who.name,
                  "ds01.gpu.slots": "0", "ds01.gpu.uuids": "GPU-x", "ds01.gpu.gpueq": gpueq}  # fmt: skip
        engine_clean.api.create_container(base_image_ref, ["true"], name=f"odd{i}._.{who.uid}", labels=labels)
    holdings, corrupt = _holdings(ds01_home)
    assert holdings == []
    assert sorted(c.gpueq for c in corrupt) == sorted(("nan", "inf", "-1", "lots"))
    # they hold nothing and free nothing: erin's real GPU container counts against her quota as usual
    entry = json.loads(
        ok(run_as(erin, "container-create", "g", "--image", base_image_ref, "--gpus", "1", "--json")).stdout
    )
    assert len(entry["gpus"]) == 1
    holdings, _ = _holdings(ds01_home)
    assert [(h.user, h.gpueq > 0) for h in holdings] == [(erin.name, True)]


# -- F3: another user's image, run form -------------------------------------------------------------------
def test_f3_another_users_image_is_refused_however_it_is_named(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    alice, bob = unix_users["alice"], unix_users["bob"]
    repo = f"ds01-{bob.uid}/v1"
    image_id = _build(engine_clean, base_image_ref, f"{repo}:latest", {"ds01.uid": str(bob.uid)})
    engine_clean.api.tag(image_id, "innocent", "latest")
    for ref in (f"{repo}:latest", repo, image_id, image_id.removeprefix("sha256:")[:12], "innocent"):
        result = run_as(alice, "container-create", "steal", "--image", ref)
        assert result.returncode == 5, (ref, result.stderr)
        assert "another user" in result.stderr
    assert engine_clean.api.containers(all=True) == []
    ok(run_as(bob, "container-create", "mine", "--image", f"{repo}:latest"))


def test_f3_image_references_follow_the_docker_grammar(ds01_home, engine_clean, unix_users):
    for ref in ("../../x", "UPPER/case", "a b", "x:", "@sha256:00", "/abs", "a//b", "x:" + "t" * 200):
        result = run_as(unix_users["alice"], "container-create", "x", "--image", ref)
        assert result.returncode == 2, (ref, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


# -- F7: never uid 0 ---------------------------------------------------------------------------------------
def test_f7_no_container_runs_as_root(ds01_home, engine_clean, unix_users, base_image_ref):
    carol = unix_users["carol"]
    ds01_home.reconfigure(groups={"admin": {"members": [carol.name], "admin": True}})
    image = ["--image", base_image_ref]
    assert run_as(carol, "container-create", "r", *image, "--user", "root").returncode == 5
    assert run_as(carol, "container-create", "r", *image, "--user", "daemon").returncode == 5
    assert as_root("container-create", "r", *image).returncode == 5  # root has no containers of its own
    assert as_root("container-create", "r", *image, "--user", "root").returncode == 5
    assert engine_clean.api.containers(all=True) == []
    ok(run_as(carol, "container-create", "c", *image, "--user", unix_users["dave"].name))
    cfg = engine_clean.api.inspect_container(f"c._.{unix_users['dave'].uid}")["Config"]
    assert cfg["User"] == f"{unix_users['dave'].uid}:{unix_users['dave'].gid}"


def test_f7_admins_cannot_mount_host_paths_outside_the_trees(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    carol, dave = unix_users["carol"], unix_users["dave"]
    ds01_home.reconfigure(groups={"admin": {"members": [carol.name], "admin": True}})
    image = ["--image", base_image_ref]
    for who, extra in ((carol, ()), (carol, ("--user", dave.name))):
        for flag, path in (
            ("--data", "/"),
            ("--data", "/etc"),
            ("--workspace", "/"),
            ("--workspace", "/root"),
        ):
            result = run_as(who, "container-create", "h", *image, flag, path, *extra)
            assert result.returncode == 5, (flag, path, result.stderr)
    for flag, path in (("--data", "/etc"), ("--workspace", "/")):
        assert as_root("container-create", "h", *image, flag, path, "--user", dave.name).returncode == 5
    assert engine_clean.api.containers(all=True) == []


# -- F11: a path check reveals nothing --------------------------------------------------------------------
def test_f11_existing_and_missing_paths_outside_the_roots_get_the_same_answer(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    alice = unix_users["alice"]
    secret = Path(tempfile.mkdtemp(prefix="ds01-secret-", dir="/root"))
    try:
        answers = []
        for path in (secret, secret.with_name(secret.name + "-missing")):
            result = run_as(alice, "container-create", "x", "--image", base_image_ref, "--data", str(path))
            answers.append((result.returncode, result.stderr.replace(str(path), "PATH")))
        assert answers[0] == answers[1] and answers[0][0] == 5
        closed = ds01_home / "data" / "closed"
        closed.mkdir(mode=0o700)
        (closed / "inside").mkdir()
        answers = []
        for path in (closed / "inside", closed / "missing"):
            result = run_as(alice, "container-create", "x", "--image", base_image_ref, "--data", str(path))
            answers.append((result.returncode, result.stderr.replace(str(path), "PATH")))
        assert answers[0] == answers[1] and answers[0][0] == 5
    finally:
        shutil.rmtree(secret, ignore_errors=True)


# -- owner / other user / admin ----------------------------------------------------------------------------
@pytest.fixture
def alices(ds01_home, engine_clean, unix_users, base_image_ref):
    alice = unix_users["alice"]
    ok(run_as(alice, "container-create", "thesis", "--image", base_image_ref,
              "--command", "sh -c 'echo hello; sleep 600'"))  # fmt: skip
    return alice, f"thesis._.{alice.uid}"


VERBS = (
    ("container-start",),
    ("container-pause",),
    ("container-unpause",),
    ("container-logs",),
    ("container-stats",),
    ("container-stop",),
    ("container-remove", "--force"),
)


def test_another_user_gets_5_for_someone_elses_and_3_for_a_missing_one(
    alices, engine_clean, unix_users, ds01_home
):
    alice, theirs = alices
    bob = unix_users["bob"]
    ok(run_as(alice, "container-start", "thesis"))
    cid = engine_clean.api.inspect_container(theirs)["Id"]
    for verb, *extra in VERBS:
        for ref in (theirs, cid[:12], cid):
            result = run_as(bob, verb, ref, *extra)
            assert result.returncode == 5, (verb, ref, result.stderr)
            assert "hello" not in result.stdout
        assert run_as(bob, verb, "ghost", *extra).returncode == 3, verb
    answer = request(bob, ds01_home.socket, "GET", f"/v1/containers/{theirs}")
    assert answer.exit_code == 5 and answer.result is None
    assert request(bob, ds01_home.socket, "GET", "/v1/containers/ghost").exit_code == 3
    answer = request(bob, ds01_home.socket, "GET", f"/v1/containers/{theirs}/logs")
    assert answer.exit_code == 5 and "hello" not in json.dumps(answer.lines)
    assert state(engine_clean, theirs)["Status"] == "running"


def test_the_owner_and_admins_may_act(alices, engine_clean, unix_users, ds01_home):
    alice, theirs = alices
    carol = unix_users["carol"]
    ds01_home.reconfigure(groups={"admin": {"members": [carol.name], "admin": True}})
    entry = request(alice, ds01_home.socket, "GET", "/v1/containers/thesis").result
    assert entry["container"] == theirs and entry["status"] == "created"
    ok(run_as(alice, "container-start", "thesis"))
    for _ in range(50):  # the echo runs at once; give the engine a moment to have it
        if ok(run_as(alice, "container-logs", "thesis")).stdout:
            break
    for who, ref in ((carol, theirs), (None, theirs)):
        logs = as_root("container-logs", ref) if who is None else run_as(who, "container-logs", ref)
        assert ok(logs).stdout == "hello\n"
        answer = request(who, ds01_home.socket, "GET", f"/v1/containers/{ref}")
        assert answer.result["user"] == alice.name
    ok(run_as(carol, "container-pause", "--user", alice.name, "thesis"))
    ok(run_as(carol, "container-unpause", theirs))
    stopped = json.loads(ok(run_as(carol, "container-stop", theirs, "--json")).stdout)
    assert stopped[0]["status"] == "exited"
    ok(as_root("container-start", "--user", alice.name, "thesis"))
    removed = json.loads(ok(as_root("container-remove", theirs, "--force", "--json")).stdout)
    assert removed["removed"] == theirs and removed["workspace"].endswith(f"/{alice.name}/thesis")
    assert engine_clean.api.containers(all=True) == []
    assert (ds01_home / "ws" / alice.name / "thesis").is_dir()


def test_logs_follow_ends_when_the_container_stops(alices, engine_clean, ds01_home):
    alice, _ = alices
    ok(run_as(alice, "container-start", "thesis"))
    follower = subprocess.Popen(
        ["runuser", "-u", alice.name, "--", "env", f"DS01_SOCKET={ds01_home.socket}",
         str(BIN / "container-logs"), "thesis", "--follow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "hello\n"
        ok(run_as(alice, "container-stop", "thesis", "--timeout", "1"))
        assert follower.wait(timeout=30) == 0
    finally:
        if follower.poll() is None:
            follower.kill()


def test_logs_follow_stops_when_the_client_goes_away(alices, engine_clean, ds01_home):
    """A follower killed half-way leaves no ds01d thread waiting on the engine's stream."""
    import time

    alice, theirs = alices
    ok(run_as(alice, "container-start", "thesis"))
    tasks = Path(f"/proc/{ds01_home.server.pid}/task")
    baseline = len(os.listdir(tasks))
    follower = subprocess.Popen(
        ["runuser", "-u", alice.name, "--", "env", f"DS01_SOCKET={ds01_home.socket}",
         str(BIN / "container-logs"), "thesis", "--follow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert follower.stdout is not None and follower.stdout.readline() == "hello\n"
    assert len(os.listdir(tasks)) > baseline  # the request's thread (and its watcher) are there
    os.killpg(follower.pid, signal.SIGKILL)  # runuser and the client under it
    follower.wait(timeout=10)
    deadline = time.monotonic() + 10
    while len(os.listdir(tasks)) > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(os.listdir(tasks)) <= baseline
    assert state(engine_clean, theirs)["Status"] == "running"


FLIPPER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b, seconds = sys.argv[1].encode(), sys.argv[2].encode(), float(sys.argv[3])
AT_FDCWD, RENAME_EXCHANGE = -100, 2
end = time.monotonic() + seconds
n = 0
while time.monotonic() < end:
    if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0:
        n += 1
print(n)
"""


def test_f4_a_folder_flipped_with_a_link_during_starts_never_mounts_the_link(
    ds01_home, engine_clean, unix_users, base_image_ref, victim_notes
):
    """The check-then-start race: `renameat2(RENAME_EXCHANGE)` flips the data folder and a link to bob's
    notes as fast as it can while alice starts her container again and again. ds01d mounts the folder it
    judged (pinned by descriptor), so the diary is never read."""
    alice = unix_users["alice"]
    ok(run_as(alice, "container-create", "thesis", "--image", base_image_ref))
    ws = ds01_home / "ws" / alice.name / "thesis"
    ok(sh_as(alice, f"mkdir {ws}/d && echo mine > {ws}/d/diary.txt && ln -s {victim_notes} {ws}/l"))
    ok(run_as(alice, "container-create", "peek", "--image", base_image_ref, "--data", f"{ws}/d",
              "--command", "cat /data/diary.txt"))  # fmt: skip
    flipper = subprocess.Popen(
        ["runuser", "-u", alice.name, "--", sys.executable, "-c", FLIPPER, f"{ws}/d", f"{ws}/l", "20"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    outcomes = []
    try:
        for _ in range(15):
            outcomes.append(run_as(alice, "container-start", "peek").returncode)
            engine_clean.api.wait(f"peek._.{alice.uid}", timeout=20)
    finally:
        flipper.kill()
        flipper.wait()
    logs = engine_clean.api.logs(f"peek._.{alice.uid}").decode(errors="replace")
    assert SECRET not in logs
    assert set(outcomes) <= {0, 5} and 0 in outcomes, outcomes
    assert "mine" in logs
