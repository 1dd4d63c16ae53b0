"""GPU use outside ds01 is seen: a compute process on a slot that belongs to no ds01 container makes the slot
busy (never given out), is shown by gpu-status as "in use outside ds01 (pid, user)", logged once as an
event and warned about by doctor. Fed by the simulated inventory's `processes` and by the fake NVML."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpu_fixtures import fake_nvml, topology  # noqa: F401
from harness.users import TestUser as UnixUser
from harness.users import run_as

pytestmark = pytest.mark.docker

BIN = Path(sys.executable).parent
UUID = "GPU-00000000-0000-0000-0000-0000000000aa"


def root(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120)


def write_inventory(path: Path, processes: Any, slice_processes: Any = 0) -> None:
    """GPU 0 whole, GPU 1 one MIG slice (1.0): `processes` as a count or a list of host pids."""
    gpu = {"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "uuid": UUID, "processes": processes}
    mig = {"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920,
           "mig": [{"profile": "3g.40gb", "processes": slice_processes}]}  # fmt: skip
    path.write_text(yaml.safe_dump({"gpus": [gpu, mig]}))


def slot0(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(next(s for s in doc["slots"] if s["id"] == "0"))


def events(home: Path, kind: str) -> list[dict[str, Any]]:
    from ds01.events import read_events

    return [e for e in read_events(home / "log") if e["event_type"] == kind]


@pytest.fixture
def bob_job(unix_users: dict[str, UnixUser]) -> Iterator[int]:
    """A CUDA job bob runs straight on the host, outside ds01."""
    bob = unix_users["bob"]
    proc = subprocess.Popen(["sleep", "300"], user=bob.uid, group=bob.gid, extra_groups=[])
    yield proc.pid
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_host_process_makes_its_gpu_busy_shown_logged_and_doctored(
    ds01_home: Any, engine_clean: Any, unix_users: dict[str, UnixUser], base_image_ref: str, bob_job: int
):
    alice, bob = unix_users["alice"], unix_users["bob"].name
    inventory = ds01_home / "gpus.yaml"
    write_inventory(inventory, [bob_job], [bob_job])
    ds01_home.reconfigure(
        gpu={"inventory": str(inventory)}, user_overrides={alice.name: {"allow_full_gpu": True}}
    )

    for ask in (["--gpus", "1"], ["--mig-profile", "3g.40gb"]):
        refused = run_as(alice, "container-create", "job", "--image", base_image_ref, *ask)
        assert refused.returncode == 4, refused.stderr
        assert f"in use outside ds01 (pid {bob_job}, {bob})" in refused.stderr
    assert not engine_clean.containers.list(all=True), "nothing was made"

    shown = root("gpu-status", "--json")
    assert shown.returncode == 0, shown.stderr
    holder = slot0(json.loads(shown.stdout))["holder"]
    assert holder["status"] == f"in use outside ds01 (pid {bob_job}, {bob})" and holder["user"] == bob
    free = json.loads(root("gpu-status", "--free", "--json").stdout)
    assert free["slots"] == [], "an outside-used slot is not free"

    for _ in range(2):  # the event is written once, not at every pass
        report = root("ds01-reaper", "--once", "--json")
        assert report.returncode == 0, report.stderr
        assert json.loads(report.stdout)["gpu_outside"][0]["pids"] == [bob_job]
    logged = events(ds01_home, "gpu_outside")
    assert sorted(e["details"]["slot"] for e in logged) == ["0", "1.0"]
    assert all(e["user"] == bob and e["details"]["pids"] == [bob_job] for e in logged)
    assert all("outside ds01" in e["details"]["reason"] for e in logged)

    doctor = root("ds01", "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["gpu use outside ds01"]["status"] == "warning"
    assert f"pid {bob_job}, {bob}" in checks["gpu use outside ds01"]["detail"]

    write_inventory(inventory, 0, 0)  # bob's job ended: the slots are free again
    made = run_as(alice, "container-create", "job", "--image", base_image_ref, "--gpus", "1")
    assert made.returncode == 0, made.stderr
    doctor = root("ds01", "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["gpu use outside ds01"]["status"] == "ok"


def test_a_process_inside_the_ds01_container_that_holds_the_slot_is_not_outside_use(
    ds01_home: Any, engine_clean: Any, unix_users: dict[str, UnixUser], base_image_ref: str
):
    alice = unix_users["alice"]
    inventory = ds01_home / "gpus.yaml"
    write_inventory(inventory, 0)
    ds01_home.reconfigure(
        gpu={"inventory": str(inventory)}, user_overrides={alice.name: {"allow_full_gpu": True}}
    )
    made = run_as(
        alice, "container-create", "train", "--image", base_image_ref, "--gpus", "1",
        "--command", "sleep 300",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert run_as(alice, "container-start", "train").returncode == 0
    (c,) = engine_clean.containers.list()
    write_inventory(inventory, [int(c.attrs["State"]["Pid"])])
    holder = slot0(json.loads(root("gpu-status", "--json").stdout))["holder"]
    assert (holder["user"], holder["container"]) == (alice.name, "train")
    report = json.loads(root("ds01-reaper", "--once", "--json").stdout)
    assert report["gpu_outside"] == [] and not events(ds01_home, "gpu_outside")


def test_the_nvml_backend_reports_host_pids_and_ds01d_marks_the_slot_busy(
    ds01_home: Any,
    engine_clean: Any,
    unix_users: dict[str, UnixUser],
    bob_job: int,
    fake_nvml: Any,  # noqa: F811
):
    bob = unix_users["bob"].name
    topo = ds01_home / "topology.txt"
    topo.write_text(topology([{"uuid": UUID, "util": 0, "procs": [{"pid": bob_job}]}]))
    ds01_home.reconfigure(gpu={"backend": "nvml", "nvml_library": fake_nvml.library})
    ds01_home.restart(DS01_FAKE_NVML_TOPOLOGY=str(topo))
    shown = root("gpu-status", "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["backend"] == "nvml"
    assert slot0(doc)["holder"]["status"] == f"in use outside ds01 (pid {bob_job}, {bob})"
    assert os.path.exists(f"/proc/{bob_job}")
