"""The simulated backend (CONTRACT §3.1) and the backend switch."""

from __future__ import annotations

from pathlib import Path

import pytest

from ds01.config import GpuSettings, shipped_dir
from ds01.errors import ConfigError
from ds01.gpu.probe import probe_inventory
from ds01.gpu.simulated import default_gpu_uuid, default_mig_uuid, load_inventory


def test_shipped_lab_box() -> None:
    inv = probe_inventory(GpuSettings(backend="simulated"))
    assert inv.backend == "simulated" and len(inv.gpus) == 4
    assert [s.id for s in inv.slots()] == ["0", "1", "2.0", "2.1", "2.2", "2.3", "3.0", "3.1"]
    two = inv.slot("2.1")
    assert two is not None and two.profile == "2g.20gb" and two.gpueq == pytest.approx(2 / 7)
    assert two.memory_mib == 20 * 1024 and two.utilization is None
    assert inv.total_gpueq == pytest.approx(2 + 7 / 7 + 6 / 7)


def test_default_uuids_are_stable_and_follow_the_index() -> None:
    a = load_inventory(shipped_dir("config") / "simulated-gpus.yaml")
    b = load_inventory(shipped_dir("config") / "simulated-gpus.yaml")
    assert [s.uuid for s in a.slots()] == [s.uuid for s in b.slots()]
    assert a.gpus[1].uuid == default_gpu_uuid(1) and a.gpus[1].uuid.startswith("GPU-")
    assert a.slot("3.1") is not None and a.slot("3.1").uuid == default_mig_uuid(3, 1)  # type: ignore[union-attr]
    assert len({s.uuid for s in a.slots()}) == len(a.slots())


def test_reread_on_every_probe(tmp_path: Path) -> None:
    path = tmp_path / "gpus.yaml"
    settings = GpuSettings(backend="simulated", inventory=path)
    path.write_text(
        "gpus:\n  - name: NVIDIA L40S\n    uuid: GPU-mine\n    memory_mib: 46068\n    utilization: 3\n"
    )
    first = probe_inventory(settings)
    assert first.gpus[0].uuid == "GPU-mine" and first.gpus[0].utilization == 3.0
    path.write_text(
        "gpus:\n  - name: NVIDIA L40S\n    uuid: GPU-mine\n    utilization: 88\n    processes: 2\n"
    )
    second = probe_inventory(settings)
    assert second.gpus[0].utilization == 88.0 and second.gpus[0].processes == 2


def test_empty_mig_list_is_enabled_without_instances(tmp_path: Path) -> None:
    path = tmp_path / "gpus.yaml"
    path.write_text(
        "gpus:\n  - name: A100\n    mig: []\n  - name: A30\n    slices: 4\n    mig:\n"
        "      - profile: 2g.12gb\n        uuid: MIG-given\n        processes: 1\n"
    )
    inv = load_inventory(path)
    assert inv.gpus[0].mig_enabled and not inv.gpus[0].usable and inv.gpus[0].slots() == ()
    (slot,) = inv.slots()
    assert (slot.id, slot.uuid, slot.gpueq, slot.processes) == ("1.0", "MIG-given", 0.5, 1)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            "gpus:\n  - name: A100\n    mig:\n      - profile: big\n",
            "gpus[0].mig[0].profile: 'big' is not a MIG",
        ),
        ("gpus:\n  - name: A100\n    colour: red\n", "gpus[0].colour: unknown key"),
        (
            "gpus:\n  - name: A100\n    slices: 4\n    mig:\n      - profile: 7g.80gb\n",
            "needs 7 slices, the GPU has 4",
        ),
        (
            "gpus:\n  - name: A100\n    utilization: -5\n",
            "gpus[0].utilization: expected a non-negative number",
        ),
        ("gpus: 3\n", "gpus: expected a list"),
        ("gpus: [\n", "invalid YAML"),
    ],
)
def test_bad_inventory_is_a_config_error(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "gpus.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    assert says in str(info.value) and str(path) in str(info.value) and info.value.exit_code == 2


def test_missing_inventory_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the simulated GPU inventory"):
        probe_inventory(GpuSettings(backend="simulated", inventory=tmp_path / "nope.yaml"))
