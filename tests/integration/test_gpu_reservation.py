"""reserve_gpus on the private engine: real processes race for slots, holds expire, refusals are logged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ds01.events import read_events

pytestmark = pytest.mark.docker

WORKER = r"""
import json, os, sys, time
from pathlib import Path
from ds01 import naming
from ds01.atomic.gpu_reservation import reserve_gpus
from ds01.config import load_config
from ds01.context import Context
from ds01.errors import Ds01Error
from ds01.identity import User

uid, name, job, gpus, profile, image, go = sys.argv[1:]
uid = int(uid)
owner = User(name=name, uid=uid, gid=uid, home=Path("/nonexistent"))
ctx = Context(config=load_config(), user=owner)
while not os.path.exists(go):
    time.sleep(0.005)
docker_name = naming.container_name(job, uid)
try:
    with reserve_gpus(ctx, owner, gpus=int(gpus), mig_profile=profile or None, container=docker_name) as r:
        labels = naming.base_labels(user=name, uid=uid, project=job, interface="atomic", workspace="/tmp")
        ctx.gateway.create(image=image, name=docker_name, command=["true"], labels={**labels, **r.labels},
                           host_config={"network_mode": "none"})
    print(json.dumps({"slots": r.allocation.slot_ids}))
except Ds01Error as err:
    print(json.dumps({"error": err.code, "message": str(err)}))
"""


def configure(home: Path, gpus: list[dict[str, Any]], **sections: Any) -> None:
    """Point the ds01_home config at a small inventory and the given limits."""
    inventory = home / "gpus.yaml"
    inventory.write_text(yaml.safe_dump({"gpus": gpus}))
    cfg = Path(os.environ["DS01_CONFIG"])
    data = yaml.safe_load(cfg.read_text())
    data["gpu"]["inventory"] = str(inventory)
    for key, value in sections.items():
        data[key] = value
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))


def group(**limits: Any) -> dict[str, Any]:
    return {"student": {"max_containers_per_user": 20, "max_gpu_slots_per_container": 1, **limits}}


def race(home: Path, image: str, jobs: list[tuple[int, str, str, int, str]]) -> list[dict[str, Any]]:
    """Start one process per job, release them together, and collect what each got."""
    script = home / "worker.py"
    script.write_text(WORKER)
    go = home / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(uid), name, job, str(gpus), profile, image, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for uid, name, job, gpus, profile in jobs
    ]
    time.sleep(1.0)  # let every interpreter finish importing
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    return results


def held_slots(client: Any) -> list[str]:
    return [
        s
        for c in client.containers.list(all=True)
        for s in c.labels.get("ds01.gpu.slots", "").split(",")
        if s
    ]


def test_racing_processes_never_share_a_slot(ds01_home: Path, engine_clean: Any, base_image_ref: str) -> None:
    configure(
        ds01_home,
        [{"name": "A100"}, {"name": "A100", "mig": [{"profile": "1g.10gb"}, {"profile": "1g.10gb"}]}],
        groups=group(allow_full_gpu=True, max_gpu_equivalents=None),
    )
    jobs = [(4000 + n, f"user{n}", f"job{n}", 1, "") for n in range(8)]
    results = race(ds01_home, base_image_ref, jobs)
    won = sorted(s for r in results for s in r.get("slots", []))
    assert won == ["0", "1.0", "1.1"]
    assert sorted(r.get("error", "ok") for r in results) == ["no_capacity"] * 5 + ["ok"] * 3
    assert sorted(held_slots(engine_clean)) == won  # what the engine holds is what was handed out
    events = read_events(ds01_home / "log")
    assert sum(e["event_type"] == "allocate" for e in events) == 3
    assert sum(e["event_type"] == "reject" for e in events) == 5


def test_one_user_racing_never_exceeds_the_quota(
    ds01_home: Path, engine_clean: Any, base_image_ref: str
) -> None:
    three_g = [{"profile": "3g.40gb"}, {"profile": "3g.40gb"}]
    configure(
        ds01_home,
        [{"name": "A100", "mig": three_g}, {"name": "A100", "mig": three_g}],
        groups=group(allow_full_gpu=False, max_gpu_equivalents=1.0),
    )
    results = race(ds01_home, base_image_ref, [(4100, "erin", f"j{n}", 0, "3g.40gb") for n in range(6)])
    assert sorted(r.get("error", "ok") for r in results) == ["ok"] * 2 + ["quota_exceeded"] * 4
    assert len(held_slots(engine_clean)) == 2  # 2 x 3/7 <= 1.0 < 3 x 3/7
    refused = next(r for r in results if "error" in r)
    assert "erin would exceed their GPU quota" in refused["message"] and "j" in refused["message"]


def _reserve(uid: int, name: str, **kw: Any) -> Any:
    from ds01.atomic.gpu_reservation import reserve_gpus
    from ds01.config import load_config
    from ds01.context import Context
    from ds01.identity import User

    owner = User(name=name, uid=uid, gid=uid, home=Path("/nonexistent"))
    return reserve_gpus(Context(config=load_config(), user=owner), owner, **kw)


def test_a_hold_past_its_time_is_reclaimed(ds01_home: Path, engine_clean: Any, base_image_ref: str) -> None:
    configure(
        ds01_home,
        [{"name": "A100", "uuid": "GPU-only"}],
        groups=group(allow_full_gpu=True, max_gpu_equivalents=None),
        user_overrides={"bob": {"gpu_hold_after_stop_h": 0}, "carol": {"gpu_hold_after_stop_h": 1}},
    )
    base = {
        "ds01.managed": "true",
        "ds01.gpu.slots": "0",
        "ds01.gpu.uuids": "GPU-only",
        "ds01.gpu.gpueq": "1",
    }
    carol = engine_clean.containers.run(
        base_image_ref,
        ["true"],
        name="keep._.5003",
        detach=True,
        network_mode="none",
        labels={**base, "ds01.user": "carol", "ds01.uid": "5003"},
    )
    carol.wait(timeout=30)
    reservation = _reserve(5001, "alice", gpus=1, mig_profile=None, container="a._.5001")
    from ds01.errors import NoCapacity

    with pytest.raises(NoCapacity, match="carol/keep"), reservation:
        pass  # carol stopped within her hold: still hers
    carol.remove()
    bob = engine_clean.containers.run(
        base_image_ref,
        ["true"],
        name="old._.5002",
        detach=True,
        network_mode="none",
        labels={**base, "ds01.user": "bob", "ds01.uid": "5002"},
    )
    bob.wait(timeout=30)
    time.sleep(0.05)
    reservation = _reserve(5001, "alice", gpus=1, mig_profile=None, container="a._.5001")
    with reservation as r:
        assert r.allocation.slot_ids == ["0"] and r.labels["ds01.gpu.uuids"] == "GPU-only"
    assert engine_clean.containers.list(all=True, filters={"name": "old._.5002"}) == []
    reclaim = [e for e in read_events(ds01_home / "log") if e["event_type"] == "reclaim"]
    assert len(reclaim) == 1 and reclaim[0]["user"] == "bob" and reclaim[0]["details"]["slots"] == ["0"]


def test_reservation_carries_labels_count_and_attachment(
    ds01_home: Path, engine_clean: Any, base_image_ref: str
) -> None:
    configure(
        ds01_home,
        [{"name": "A100", "mig": [{"profile": "2g.20gb", "uuid": "MIG-two"}]}],
        groups=group(allow_full_gpu=False, max_gpu_equivalents=1.0, max_containers_per_user=1),
    )
    engine_clean.containers.create(
        base_image_ref,
        ["true"],
        name="cpu._.5001",
        labels={"ds01.managed": "true", "ds01.user": "alice", "ds01.uid": "5001"},
    )
    reservation = _reserve(5001, "alice", gpus=1, mig_profile=None, container="x._.5001")
    with reservation as r:
        assert dict(r.labels) == {
            "ds01.gpu.slots": "0.0",
            "ds01.gpu.uuids": "MIG-two",
            "ds01.gpu.gpueq": "0.2857",
        }
        assert r.attachment.device_ids == ("MIG-two",) and r.container_count == 1
    # nothing was created inside the block: no allocate event
    assert not [e for e in read_events(ds01_home / "log") if e["event_type"] == "allocate"]
    reservation = _reserve(5001, "alice", gpus=0, mig_profile=None)
    with reservation as r:
        assert r.allocation.slots == () and dict(r.attachment.env) == {"NVIDIA_VISIBLE_DEVICES": "void"}
        assert dict(r.labels) == {}


def test_lock_timeout_is_an_error_and_state_dir_is_made(
    ds01_home: Path, engine_clean: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ds01.atomic import gpu_reservation
    from ds01.errors import LockTimeout
    from ds01.gpu.lock import reservation_lock

    state = ds01_home / "fresh-state"
    monkeypatch.setenv("DS01_STATE_DIR", str(state))
    monkeypatch.setattr(gpu_reservation, "LOCK_TIMEOUT_S", 0.3)
    reservation = _reserve(5001, "alice", gpus=0, mig_profile=None)
    with reservation:
        pass
    assert oct(state.stat().st_mode & 0o7777) == "0o700" and state.stat().st_uid == 0  # ds01d's alone
    assert oct((state / "gpu-reservation.lock").stat().st_mode & 0o777) == "0o600"
    with reservation_lock(state):
        reservation = _reserve(5001, "alice", gpus=0, mig_profile=None)
        with pytest.raises(LockTimeout), reservation:
            pytest.fail("the block must not run without the lock")


def test_the_container_limit_is_enforced_on_the_real_create_path(
    ds01_home: Any, engine_clean: Any, base_image_ref: str, unix_users: Any
) -> None:
    """`max_containers_per_user` as production checks it: ds01d's create, as a real user, stopped ones
    counted; the refusal (exit 4, one line) names what they hold and is logged; nothing is created."""
    from harness.users import run_as

    alice = unix_users["alice"]
    ds01_home.reconfigure(groups={"one": {"members": [alice.name], "max_containers_per_user": 1}})
    first = run_as(alice, "container-create", "first", "--image", base_image_ref, "--cpu-only")
    assert first.returncode == 0, first.stderr
    second = run_as(alice, "container-create", "second", "--image", base_image_ref, "--cpu-only")
    assert second.returncode == 4, second.stderr
    assert "already has 1 of 1 containers: first (created)" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    names = [c.name for c in engine_clean.containers.list(all=True)]
    assert f"first._.{alice.uid}" in names and f"second._.{alice.uid}" not in names
    rejects = [e for e in read_events(ds01_home / "log") if e["event_type"] == "reject"]
    assert [e["container"] for e in rejects] == [f"second._.{alice.uid}"]
