"""Per-user totals for real: all of a user's containers live under one cgroup parent whose limits ds01d sets
(`max_cpus_total`, `memory_total`), so a memory hog in one of them is held to the user's total, while the
user's other container and another user's container are unaffected."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harness.users import TestUser as UnixUser
from harness.users import ok, run_as

pytestmark = pytest.mark.docker

MEM_ROOT = Path("/sys/fs/cgroup/memory")
# dd's buffer is held while it waits on the pipe `sleep` never reads: 20 MiB stays in use
HOLD = "sh -c 'dd if=/dev/zero bs=20M count=1 | sleep 3600'"
HOG = "sh -c 'dd if=/dev/zero of=/dev/null bs=50M count=1; echo rc=$?; sleep 3600'"


def make(user: UnixUser, name: str, image: str, command: str) -> None:
    ok(run_as(user, "container-create", name, "--image", image, "--cpu-only", "--command", command))
    ok(run_as(user, "container-start", name))


def wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def logs(client: Any, user: UnixUser, name: str) -> str:
    return str(client.containers.get(f"{name}._.{user.uid}").logs().decode())


@pytest.fixture
def sweep_parents(ds01_home: Any) -> Any:
    """Listed before engine_clean, so it runs after the containers are gone: the test's (empty) parents go."""
    yield
    from ds01.atomic.user_cgroup import CGROUP_ROOT, parent_stem
    from ds01.config import load_config

    stem = parent_stem(load_config().paths, 0).removesuffix("0")
    for node in CGROUP_ROOT.glob(f"*/{stem}*"):
        for _ in range(20):
            try:
                node.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def cgroup_of(client: Any, user: UnixUser, name: str) -> str:
    c = client.containers.get(f"{name}._.{user.uid}")
    return str(c.attrs["HostConfig"].get("CgroupParent") or "")


@pytest.mark.skipif(not MEM_ROOT.is_dir(), reason="this host has no cgroup v1 memory hierarchy")
def test_a_memory_hog_is_held_to_its_users_total_and_nobody_else_is_touched(
    sweep_parents: None,
    ds01_home: Any,
    engine_clean: Any,
    unix_users: dict[str, UnixUser],
    base_image_ref: str,
):
    alice, carol = unix_users["alice"], unix_users["carol"]
    per_container = {"memory": "60m", "memory_swap": "60m", "max_cpus": 1}
    ds01_home.reconfigure(
        user_overrides={
            alice.name: {**per_container, "memory_total": "64m", "max_cpus_total": 2},
            carol.name: per_container,  # the same per-container limits, no total
        }
    )
    make(alice, "hold", base_image_ref, HOLD)
    parent = cgroup_of(engine_clean, alice, "hold")
    assert parent.startswith("/ds01-") and parent.endswith(f"-u{alice.uid}"), parent
    node = MEM_ROOT / parent.lstrip("/")
    assert int((node / "memory.limit_in_bytes").read_text()) == 64 << 20
    cpu = Path("/sys/fs/cgroup/cpu") / parent.lstrip("/")
    assert int((cpu / "cpu.cfs_quota_us").read_text()) == 2 * int((cpu / "cpu.cfs_period_us").read_text())
    wait_for(lambda: int((node / "memory.usage_in_bytes").read_text()) >= 20 << 20, "hold's 20 MiB")

    make(alice, "hog", base_image_ref, HOG)  # 50 MiB fits its own 60m, not alice's 64m beside hold's 20
    make(carol, "hog", base_image_ref, HOG)  # the same job of another user
    wait_for(lambda: "rc=" in logs(engine_clean, alice, "hog"), "alice's hog to end")
    wait_for(lambda: "rc=" in logs(engine_clean, carol, "hog"), "carol's hog to end")
    assert "rc=137" in logs(engine_clean, alice, "hog"), "killed at alice's total"
    assert "rc=0" in logs(engine_clean, carol, "hog"), "carol has no total: her 50 MiB fit"
    assert cgroup_of(engine_clean, carol, "hog") == ""
    hold = engine_clean.containers.get(f"hold._.{alice.uid}")
    assert hold.status == "running", "alice's other container kept running"
    top = hold.top()["Processes"]
    assert any("dd" in " ".join(p) for p in top), "and its process kept its memory"


def test_create_refuses_a_container_that_could_not_run_under_the_users_total(
    ds01_home: Any, engine_clean: Any, unix_users: dict[str, UnixUser], base_image_ref: str
):
    alice = unix_users["alice"]
    ds01_home.reconfigure(user_overrides={alice.name: {"max_cpus": 4, "max_cpus_total": 2}})
    refused = run_as(alice, "container-create", "big", "--image", base_image_ref, "--cpu-only")
    assert refused.returncode == 4, refused.stderr
    assert "max_cpus (4)" in refused.stderr and "max_cpus_total (2)" in refused.stderr
    ds01_home.reconfigure(user_overrides={alice.name: {"memory": "2g", "memory_total": "1g"}})
    refused = run_as(alice, "container-create", "big", "--image", base_image_ref, "--cpu-only")
    assert refused.returncode == 4 and "memory_total" in refused.stderr, refused.stderr
    assert not engine_clean.containers.list(all=True), "nothing was made"
