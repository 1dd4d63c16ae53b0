"""Seed "Ephemeral Container Model", section "Scalability": ten experiments in parallel from one image.

    for i in {1..10}; do
      project launch experiment-$i --background
      ...
    done

Names that are not projects yet are refused (exit 3, nothing made) with the way out: `--from PROJECT` makes
each one an experiment that runs PROJECT's image (built once, never per experiment) with a workspace of its
own; with `--gpus 1 --wait` the experiments beyond the free GPUs wait in the queue and start when one frees.
Real users, the real ds01d and engine, four simulated GPUs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.poll import until
from harness.tty import read_until, spawn, stop, wait_exit
from harness.users import KEEP_ENV, ok, run_as

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]
BIN = Path(sys.executable).parent
PYTHON_BASE = "ds01/python:3.11"  # what the catalogue maps `--framework python` to
HINT = "--from PROJECT"


@pytest.fixture
def lab(ds01_home, engine_clean, base_image_ref, unix_users):
    """Four simulated GPUs; a quota that is not the limit (the host's four GPUs are); alice's my-project
    with some code, a config, a data file and a checkpoint."""
    engine_clean.images.get(base_image_ref).tag(PYTHON_BASE)  # the lab's offline base, stood in by busybox
    inventory = ds01_home / "gpus.yaml"
    gpu = {"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "slices": 7}
    inventory.write_text(yaml.safe_dump({"gpus": [gpu] * 4}))
    limits = {
        "max_gpu_equivalents": 8, "max_gpu_slots_per_container": 2, "max_containers_per_user": 20,
        "allow_full_gpu": True, "gpu_hold_after_stop_h": 0,
    }  # fmt: skip
    ds01_home.reconfigure(
        gpu={"backend": "simulated", "inventory": str(inventory), "attach": "device-request"},
        defaults=limits,
        groups={"student": {**limits, "members": []}},
    )
    alice = unix_users["alice"]
    init = ["my-project", "--type", "custom", "--framework", "python", "--no-git", "--yes"]
    ok(run_as(alice, "project-init", *init))
    ws = ds01_home / "ws" / alice.name / "my-project"
    files = {
        "src/train.py": "print('training')\n",
        "configs/config-1.yaml": "lr: 0.1\n",
        "data/raw/images.bin": "x" * 100,
        "models/best.pt": "weights",
    }
    for rel, text in files.items():  # written as alice
        path = ws / rel
        subprocess.run(["runuser", "-u", alice.name, "--", "mkdir", "-p", str(path.parent)], check=True)
        subprocess.run(["runuser", "-u", alice.name, "--", "tee", str(path)], input=text, text=True,
                       capture_output=True, check=True)  # fmt: skip
    return alice


def as_user_shell(user: Any, script: str, home: Path) -> subprocess.Popen[str]:
    """`script` typed into the user's bash, as in the seed (a login-like environment, no sudo)."""
    env = [f"{k}={v}" for k, v in os.environ.items() if k in KEEP_ENV]
    env.append(f"PATH={BIN}:/usr/bin:/bin")  # this checkout's commands
    cmd = ["runuser", "-u", user.name, "--", "env", "-i", *env, "bash", "-c", script]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")


def containers(engine: Any, user: Any) -> dict[str, Any]:
    found = engine.containers.list(all=True, filters={"label": f"ds01.uid={user.uid}"}, ignore_removed=True)
    return {c.labels["ds01.project"]: c for c in found}


def running_container(engine: Any, user: Any, name: str) -> Any:
    """The user's container of this project once it runs (looked up afresh: never a stale handle)."""
    c = containers(engine, user).get(name)
    return c if c is not None and c.status == "running" else None


def events_of(home: Path, kind: str) -> list[dict[str, Any]]:
    path = home / "log" / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["event_type"] == kind]


def experiment_folders(home: Path, user: Any) -> list[str]:
    return sorted(p.name for p in (home / "ws" / user.name).iterdir() if p.name.startswith("experiment"))


def test_the_seed_loop_as_written_is_refused_with_the_way_out(ds01_home, engine_clean, lab):
    alice = lab
    images_before = sorted(t for i in engine_clean.images.list() for t in i.tags)
    loop = "for i in {1..10}; do\n  project launch experiment-$i --background\ndone\n"
    proc = as_user_shell(alice, loop, ds01_home)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err  # the last command's code, as the shell reports it
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 10, err  # one line each, no traceback
    for i, line in enumerate(lines, 1):
        assert f"'experiment-{i}' is not a project yet" in line and HINT in line, line
        assert f"project-init experiment-{i}" in line, line
    assert containers(engine_clean, alice) == {}
    assert experiment_folders(ds01_home, alice) == []
    assert sorted(t for i in engine_clean.images.list() for t in i.tags) == images_before


def test_from_a_project_four_run_the_fifth_waits_for_a_retire(ds01_home, engine_clean, lab):
    alice = lab
    loop = (
        "for i in 1 2 3 4 5; do\n"
        "  project launch experiment-$i --from my-project --background --gpus 1 --wait\n"
        "done\n"
    )
    proc = as_user_shell(alice, loop, ds01_home)
    try:
        until(lambda: any(e["user"] == alice.name for e in events_of(ds01_home, "queue_enqueue")), 240)
        running = containers(engine_clean, alice)
        assert sorted(running) == [f"experiment-{i}" for i in range(1, 5)]
        assert proc.poll() is None  # the fifth waits for a GPU instead of failing
        slots = {n: c.labels["ds01.gpu.slots"] for n, c in running.items()}
        assert sorted(slots.values()) == ["0", "1", "2", "3"]
        ok(run_as(alice, "container-retire", "experiment-2", "--yes"))
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "waiting in the queue" in err, err
    now = containers(engine_clean, alice)
    assert sorted(now) == ["experiment-1", "experiment-3", "experiment-4", "experiment-5"]
    assert now["experiment-5"].labels["ds01.gpu.slots"] == slots["experiment-2"]
    image = f"ds01-{alice.uid}/my-project:latest"
    assert {c.image.tags[0] for c in now.values()} == {image}  # all from the same image
    built = [t for i in engine_clean.images.list() for t in i.tags if t.startswith(f"ds01-{alice.uid}/")]
    assert built == [image]  # built once, for the project; nothing built per experiment

    # each with an isolated workspace: the project's folders and code, not its data or models
    root = ds01_home / "ws" / alice.name
    for i in (1, 5):
        ws = root / f"experiment-{i}"
        assert now[f"experiment-{i}"].labels["ds01.workspace"] == str(ws)
        assert (ws / "src" / "train.py").read_text() == "print('training')\n"
        assert (ws / "configs" / "config-1.yaml").exists() and (ws / "data" / "raw").is_dir()
        assert not (ws / "data" / "raw" / "images.bin").exists() and not (ws / "models" / "best.pt").exists()
        assert not (ws / "Dockerfile").exists()
        note = tomllib.loads((ws / "ds01-experiment.toml").read_text())
        assert note["experiment"]["from"] == "my-project"
        assert all(p.stat().st_uid == alice.uid for p in (ws, ws / "src" / "train.py", ws / "src"))
    c1 = now["experiment-1"]
    code, output = c1.exec_run(["cat", "/workspace/src/train.py"])
    assert code == 0 and output == b"print('training')\n"
    subprocess.run(
        [
            "runuser",
            "-u",
            alice.name,
            "--",
            "sh",
            "-c",
            f"echo '# tuned' >> {root}/experiment-1/src/train.py",
        ],
        check=True,
    )
    assert (root / "my-project" / "src" / "train.py").read_text() == "print('training')\n"  # isolated

    # later launches of an experiment need no --from, and still build nothing
    ok(run_as(alice, "container-retire", "experiment-1", "--yes"))
    again = json.loads(
        ok(run_as(alice, "project", "launch", "experiment-1", "--background", "--gpus", "1", "--json")).stdout
    )
    assert again["image"] == image and again["image_built"] is False and again["from"] == "my-project"
    assert (root / "experiment-1" / "src" / "train.py").read_text().endswith("# tuned\n")  # kept as it was

    # the loop with --detach returns at once: ds01d starts each waiting experiment when a GPU frees
    launch = (
        "project",
        "launch",
        "experiment-6",
        "--from",
        "my-project",
        "--gpus",
        "1",
        "--wait",
        "--detach",
    )
    queued = ok(run_as(alice, *launch))
    assert "waits for a GPU" in queued.stdout, queued.stdout
    assert "experiment-6" not in containers(engine_clean, alice)
    assert (root / "experiment-6" / "ds01-experiment.toml").exists()  # its workspace is ready meanwhile
    ok(run_as(alice, "container-retire", "experiment-3", "--yes"))
    try:
        started = until(lambda: running_container(engine_clean, alice, "experiment-6"), 60)
    except AssertionError:
        queue = [e for k in ("queue_grant", "queue_fail", "remove") for e in events_of(ds01_home, k)]
        raise AssertionError(f"experiment-6 is not running: {queue}") from None
    assert started.image.tags == [image] and started.labels["ds01.gpu.slots"] == slots["experiment-3"]


def test_refusals_make_nothing(ds01_home, engine_clean, lab):
    alice = lab
    cases = [
        (("experiment-1", "--from", "no-such-project"), 3, "no project named 'no-such-project'"),
        (("experiment-1", "--from", "../bob/thesis"), 2, "invalid name"),
        (("my-project", "--from", "my-project"), 2, "another project"),
    ]
    for args, code, words in cases:
        r = run_as(alice, "project-launch", *args, "--background")
        assert r.returncode == code and words in r.stderr and "Traceback" not in r.stderr, r.stderr
    ok(
        run_as(
            alice, "project-init", "other", "--type", "custom", "--framework", "python", "--no-git", "--yes"
        )
    )
    r = run_as(alice, "project-launch", "other", "--from", "my-project", "--background")
    assert r.returncode == 2 and "project of its own" in r.stderr, r.stderr
    assert containers(engine_clean, alice) == {}
    assert experiment_folders(ds01_home, alice) == []


def _on_a_terminal(user: Any, *argv: str, keys: bytes, expect: str) -> tuple[int, str]:
    pid, fd = spawn(user, *argv)  # the user on a real terminal
    try:
        screen = read_until(fd, r"not a project yet", 120)
        assert "reuse my-project's image" in read_until(fd, r"cancel", 120) or "reuse my-project" in screen
        os.write(fd, keys)
        screen += read_until(fd, expect, 120)
        code, rest = wait_exit(pid, fd, 120)
        screen += rest
        if code is None:
            raise AssertionError(f"still running; the terminal showed:\n{screen[-3000:]}")
        return code, screen
    finally:
        stop(pid, fd)


def test_on_a_terminal_a_new_name_is_offered_a_projects_image(ds01_home, engine_clean, lab):
    alice = lab
    # the choices: create it / reuse my-project's image (the default) / cancel; one down is cancel
    code, screen = _on_a_terminal(
        alice,
        "project",
        "launch",
        "experiment-7",
        "--background",
        keys=b"\x1b[B\r",
        expect=r"is not a project",
    )
    assert code == 3 and containers(engine_clean, alice) == {}
    assert experiment_folders(ds01_home, alice) == []
    code, screen = _on_a_terminal(
        alice, "project", "launch", "experiment-7", "--background", "--cpu-only", keys=b"\r",
        expect=r"container-attach experiment-7",
    )  # fmt: skip
    assert code == 0, screen
    made = containers(engine_clean, alice)
    assert list(made) == ["experiment-7"] and made["experiment-7"].status == "running"
    assert made["experiment-7"].image.tags == [f"ds01-{alice.uid}/my-project:latest"]
    assert (ds01_home / "ws" / alice.name / "experiment-7" / "ds01-experiment.toml").exists()
