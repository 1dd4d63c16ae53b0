"""ds01d killed by SIGKILL in the middle of deploy, retire and save-changes, then restarted: it reconciles
with the engine before it serves (daemon/reconcile.py), and the invariants hold after every trial.

Two kinds of kill: at a named point of the code (DS01D_CRASH_AT, honoured only with DS01D_TEST_HOOKS=1), and
after a random delay while the request runs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from typing import Any

import pytest
from fault_invariants import check, ds01d_serves, events, popen_as, put_file

from harness.users import run_as

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TRIALS: list[str] = []  # every trial's outcome, for the summary


def _crash_env(point: str) -> dict[str, str]:
    return {"DS01D_TEST_HOOKS": "1", "DS01D_CRASH_AT": point}


def _died(home: Any, timeout: float = 20.0) -> bool:
    try:
        home.server.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return home.server.process.returncode == -signal.SIGKILL


def _clean(home: Any, user: Any, name: str) -> None:
    """Retire what the trial left, through ds01 (so that the events stay whole)."""
    result = run_as(user, "container-retire", name, "--yes")
    assert result.returncode in (0, 3), result.stderr


def _verdict(home: Any, client: Any, user: Any, files: dict[Any, str], label: str) -> None:
    assert ds01d_serves(user), f"{label}: ds01d does not serve after the restart"
    problems = check(home, client, files)
    TRIALS.append(f"{label}: {problems or 'ok'}")
    assert not problems, f"{label}: {problems}\n{home.server.log_text()[-3000:]}"


DEPLOY_POINTS = [
    "deploy.journaled",  # nothing made yet
    "reserve.after_create",  # the container exists, its allocate not yet written
    "deploy.after_create",  # allocated and created, never started
    "deploy.after_start",  # started, not yet seen up
]


@pytest.mark.parametrize("point", DEPLOY_POINTS)
def test_deploy_cut_at_a_named_point_is_finished_or_undone(
    point: str, ds01_home: Any, engine_clean: Any, base_image_ref: str, unix_users: Any
) -> None:
    alice = unix_users["alice"]
    ds01_home.restart(**_crash_env(point))
    result = run_as(
        alice, "container-deploy", "job", "--gpus", "1", "--image", base_image_ref, "--background"
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert _died(ds01_home), f"ds01d did not die at {point}"
    ds01_home.restart()
    _verdict(ds01_home, engine_clean, alice, {}, f"deploy@{point}")
    c = engine_clean.api.containers(all=True, filters={"name": f"job._.{alice.uid}"})
    if point == "deploy.after_start":
        assert c and c[0]["State"] == "running"  # finished: the deploy had done its work
    else:
        assert not c  # undone
        if point != "deploy.journaled":
            removed = [e for e in events(ds01_home) if e["event_type"] == "remove"]
            assert removed and removed[-1]["details"]["reason"] == "rollback"
    again = run_as(alice, "container-deploy", "job", "--gpus", "1", "--image", base_image_ref, "--json")
    assert again.returncode == 0, again.stderr  # and it can be deployed again
    _clean(ds01_home, alice, "job")
    assert not check(ds01_home, engine_clean)


RETIRE_POINTS = [
    ("retire.journaled", False),
    ("retire.after_stop", False),
    ("remove.after_engine", False),  # removed by the engine, its remove/release not yet written
    ("retire.after_save", True),  # committed, not yet removed
    ("retire.journaled", True),  # save-changes asked, nothing done
]


@pytest.mark.parametrize(("point", "save"), RETIRE_POINTS)
def test_retire_cut_at_a_named_point_is_completed_and_the_workspace_kept(
    point: str, save: bool, ds01_home: Any, engine_clean: Any, base_image_ref: str, unix_users: Any
) -> None:
    bob = unix_users["bob"]
    deployed = run_as(
        bob, "container-deploy", "exp", "--gpus", "1", "--image", base_image_ref, "--background"
    )
    assert deployed.returncode == 0, deployed.stderr
    files = {put_file(ds01_home, bob, "exp", f"notes {point}"): f"notes {point}"}
    ds01_home.restart(**_crash_env(point))
    argv = ["container-retire", "exp", "--yes", *(["--save-changes"] if save else [])]
    result = run_as(bob, *argv)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert _died(ds01_home), f"ds01d did not die at {point}"
    ds01_home.restart()
    _verdict(ds01_home, engine_clean, bob, files, f"retire@{point}{'+save' if save else ''}")
    assert not engine_clean.api.containers(all=True, filters={"name": f"exp._.{bob.uid}"})  # completed
    if save:
        image = engine_clean.api.inspect_image(f"ds01-{bob.uid}/exp:latest")
        assert image["Config"]["Labels"]["ds01.committed_from"] == f"exp._.{bob.uid}"
        assert image["Config"]["Labels"]["ds01.gpu.slots"] == ""
    released = [e for e in events(ds01_home) if e["event_type"] == "release"]
    assert released and released[-1]["container"] == f"exp._.{bob.uid}"


def test_ds01d_killed_at_random_moments_of_deploy_and_retire(
    ds01_home: Any, engine_clean: Any, base_image_ref: str, unix_users: Any
) -> None:
    """At least 12 trials: a deploy or a retire (some with save-changes) under way, ds01d SIGKILLed a random
    time after it took the request, restarted; the invariants hold after each. A busy machine changes how
    many kills land mid-operation, so trials go on (at most 30) until at least 4 have."""
    carol = unix_users["carol"]
    rng = random.Random(20261130)
    files: dict[Any, str] = {}
    cut = 0
    trial = -1
    while trial < 11 or (cut < 4 and trial < 29):
        trial += 1
        existing = engine_clean.api.containers(all=True, filters={"name": f"job._.{carol.uid}"})
        if existing and existing[0]["State"] == "running":
            save = trial % 4 == 1
            argv = ["container-retire", "job", "--yes", *(["--save-changes"] if save else [])]
            what = "retire+save" if save else "retire"
        else:
            argv = ["container-deploy", "job", "--gpus", "1", "--image", base_image_ref, "--background"]
            what = "deploy"
        journal = ds01_home / "state" / "journal"
        proc = popen_as(carol, *argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 5  # once ds01d has the request (its journal entry), a random delay
        while proc.poll() is None and time.monotonic() < deadline:
            if journal.exists() and os.listdir(journal):
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.35))
        os.kill(ds01_home.server.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert b"Traceback" not in err
        if journal.exists() and os.listdir(journal):
            cut += 1  # the kill caught the operation under way
        ds01_home.restart()
        if (ds01_home / "ws" / carol.name / "job").is_dir() and not files:
            files[put_file(ds01_home, carol, "job", "kept")] = "kept"
        _verdict(ds01_home, engine_clean, carol, files, f"random#{trial} {what}")
        state = engine_clean.api.containers(all=True, filters={"name": f"job._.{carol.uid}"})
        assert not state or state[0]["State"] in ("running", "exited"), state
    assert cut >= 4, f"only {cut} of {trial + 1} kills caught an operation under way"
    print("\n".join(TRIALS) + f"\nkills during an operation: {cut} of {trial + 1}")


def test_a_broken_journal_entry_does_not_stop_ds01d(
    ds01_home: Any, engine_clean: Any, unix_users: Any
) -> None:
    journal = ds01_home / "state" / "journal"
    journal.mkdir(mode=0o700, exist_ok=True)
    (journal / "deploy-garbage.json").write_text("{not json")
    (journal / "retire-x.json").write_text(json.dumps({"op": "retire", "container": "gone._.1", "user": "x",
                                                         "started": time.time()}))  # fmt: skip
    ds01_home.restart()
    assert ds01d_serves(unix_users["alice"])
    assert os.listdir(journal) == []


def test_a_clean_restart_changes_nothing(
    ds01_home: Any, engine_clean: Any, base_image_ref: str, unix_users: Any
) -> None:
    """No false alarms: with nothing under way, a restart's reconcile touches no container and logs nothing
    (a container-create's never-started container is not a deploy's: it stays)."""
    dave = unix_users["dave"]
    for argv in (
        ("container-deploy", "up", "--gpus", "1", "--image", base_image_ref, "--background"),
        ("container-create", "made", "--gpus", "1", "--image", base_image_ref),
        ("container-deploy", "gone", "--gpus", "1", "--image", base_image_ref, "--background"),
        ("container-retire", "gone", "--yes"),
    ):
        assert run_as(dave, *argv).returncode == 0
    before = (events(ds01_home), sorted((c["Id"], c["State"]) for c in engine_clean.api.containers(all=True)))
    ds01_home.restart()
    assert ds01d_serves(dave)
    after = (events(ds01_home), sorted((c["Id"], c["State"]) for c in engine_clean.api.containers(all=True)))
    assert after == before and len(before[1]) == 2
