"""gpu-status against real labelled containers on the private engine (simulated lab box inventory)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.users import run_as

pytestmark = pytest.mark.docker

BIN = Path(sys.executable).parent


def labels(user: str, uid: int, slots: str, uuids: str, gpueq: str) -> dict[str, str]:
    return {
        "ds01.managed": "true",
        "ds01.user": user,
        "ds01.uid": str(uid),
        "ds01.project": "p",
        "ds01.interface": "atomic",
        "ds01.created_at": "2026-11-23T09:00:00Z",
        "ds01.gpu.slots": slots,
        "ds01.gpu.uuids": uuids,
        "ds01.gpu.gpueq": gpueq,
    }


def gpu_status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "gpu-status"), *args], capture_output=True, text=True, timeout=60)


def inventory() -> Any:
    from ds01.config import load_config
    from ds01.gpu.probe import probe_inventory

    return probe_inventory(load_config().gpu)


@pytest.fixture
def held(ds01_home: Path, engine_clean: Any, base_image_ref: str) -> dict[str, Any]:
    """alice holds GPU 0 (created), bob 2.1 (running), carol 3.0 (stopped within her hold), and a container
    ds01 did not make reaches GPU 1 through a device request."""
    from ds01.docker_gateway import gpu_device_request

    inv = inventory()
    s0, s21, s30, s1 = (inv.slot(i) for i in ("0", "2.1", "3.0", "1"))
    engine_clean.containers.create(
        base_image_ref, ["true"], name="train._.2001", labels=labels("alice", 2001, "0", s0.uuid, "1")
    )
    bob = engine_clean.containers.run(
        base_image_ref,
        ["sleep", "300"],
        name="bert._.2002",
        init=True,
        detach=True,
        network_mode="none",
        labels=labels("bob", 2002, "2.1", s21.uuid, "0.2857"),
    )
    carol = engine_clean.containers.run(
        base_image_ref,
        ["true"],
        name="eval._.2003",
        detach=True,
        network_mode="none",
        labels=labels("carol", 2003, "3.0", s30.uuid, "0.4286"),
    )
    carol.wait(timeout=30)
    engine_clean.containers.create(
        base_image_ref, ["true"], name="monitoring", device_requests=[gpu_device_request([s1.uuid])]
    )
    return {"bob": bob, "inventory": inv}


def test_json_names_the_holder_of_every_slot(held: dict[str, Any]) -> None:
    done = gpu_status("--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["backend"] == "simulated"
    slots = {s["id"]: s for s in report["slots"]}
    assert list(slots) == ["0", "1", "2.0", "2.1", "2.2", "2.3", "3.0", "3.1"]
    for s in report["slots"]:
        assert {"id", "uuid", "kind", "gpu_index", "profile", "gpueq", "holder"} <= set(s)
    assert slots["0"]["holder"] == {
        "user": "alice",
        "container": "train",
        "status": "created",
        "since": "2026-11-23T09:00:00Z",
        "reclaimable": False,
    }
    assert slots["2.1"]["holder"]["user"] == "bob" and slots["2.1"]["holder"]["status"] == "running"
    assert (
        slots["2.1"]["kind"] == "mig"
        and slots["2.1"]["profile"] == "2g.20gb"
        and slots["2.1"]["gpu_index"] == 2
    )
    carol = slots["3.0"]["holder"]
    assert carol["status"] == "exited" and not carol["reclaimable"]
    assert carol["since"] != "2026-11-23T09:00:00Z"  # a stopped container holds since it stopped
    assert slots["1"]["holder"]["user"] == "(not ds01)" and slots["1"]["holder"]["container"] == "monitoring"
    assert all(slots[i]["holder"] is None for i in ("2.0", "2.2", "2.3", "3.1"))
    totals = report["totals"]
    assert totals["allocated_gpueq"] == pytest.approx(2 + 2 / 7 + 3 / 7, abs=1e-3)
    assert totals["free_gpueq"] == pytest.approx(totals["gpueq"] - totals["allocated_gpueq"], abs=1e-3)


def test_free_lists_only_free_slots(held: dict[str, Any]) -> None:
    done = gpu_status("--json", "--free")
    assert done.returncode == 0, done.stderr
    assert [s["id"] for s in json.loads(done.stdout)["slots"]] == ["2.0", "2.2", "2.3", "3.1"]


def test_a_slot_frees_when_its_container_goes(held: dict[str, Any]) -> None:
    held["bob"].remove(force=True)
    slots = {s["id"]: s for s in json.loads(gpu_status("--json").stdout)["slots"]}
    assert slots["2.1"]["holder"] is None


def test_human_table(held: dict[str, Any]) -> None:
    done = gpu_status()
    assert done.returncode == 0, done.stderr
    assert "alice/train" in done.stdout and "bob/bert" in done.stdout and "2g.20gb" in done.stdout
    assert "free" in done.stdout and "allocated 2.71 of 3.86 gpueq, 1.14 free" in done.stdout


def test_a_real_user_sees_the_holders(held: dict[str, Any], unix_users: Any) -> None:
    done = run_as(unix_users["dave"], "gpu-status", "--json")
    assert done.returncode == 0, done.stderr
    slots = {s["id"]: s for s in json.loads(done.stdout)["slots"]}
    assert slots["0"]["holder"]["user"] == "alice" and slots["2.1"]["holder"]["container"] == "bert"


def test_engine_unreachable_is_exit_6(ds01_home: Any, tmp_path: Path) -> None:
    ds01_home.restart(DOCKER_HOST=f"unix://{tmp_path}/no.sock")  # ds01d's engine, not the client's
    done = gpu_status("--json")
    assert done.returncode == 6 and json.loads(done.stdout)["error"]["code"] == "engine_unavailable"
    assert "Traceback" not in done.stderr


def test_ds01d_unreachable_is_exit_6(ds01_home: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DS01_SOCKET", str(ds01_home / "gone.sock"))
    done = gpu_status("--json")
    assert done.returncode == 6 and "ds01d is not running" in json.loads(done.stdout)["error"]["message"]
    assert "Traceback" not in done.stderr
