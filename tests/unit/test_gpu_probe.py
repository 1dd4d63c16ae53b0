"""The NVML probe through a fake libnvidia-ml.so.1: the real pynvml ctypes code runs against it."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from gpu_fixtures import FakeNvml, topology

A100 = "NVIDIA A100-SXM4-80GB"


def mig(index: int, profile: str, slices: int, memory_gb: int, **kw: Any) -> dict[str, Any]:
    return {
        "index": index,
        "uuid": f"MIG-{index:04d}-fake",
        "profile": profile,
        "gi_slices": slices,
        "memory_mib": memory_gb * 1024,
        **kw,
    }


def slots_by_id(inv: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for g in inv["gpus"]:
        if g["mig_enabled"]:
            out.update({m["id"]: m for m in g["migs"]})
        else:
            out[str(g["index"])] = g
    return out


def test_box_without_mig(fake_nvml: FakeNvml) -> None:
    inv = fake_nvml.probe(
        topology(
            [
                {"uuid": "GPU-aaaa", "util": 37, "procs": [{"pid": 10}, {"pid": 11}]},
                {"uuid": "GPU-bbbb", "util": 0, "name": "NVIDIA H100 80GB HBM3"},
            ],
            driver="535.104.05",
        )
    )
    assert inv["backend"] == "nvml" and inv["driver_version"] == "535.104.05" and inv["notice"] is None
    first, second = inv["gpus"]
    assert (first["index"], first["uuid"], first["name"], first["memory_mib"]) == (0, "GPU-aaaa", A100, 81920)
    assert first["utilization"] == 37.0 and first["processes"] == 2 and not first["mig_enabled"]
    assert (
        second["name"] == "NVIDIA H100 80GB HBM3"
        and second["utilization"] == 0.0
        and second["processes"] == 0
    )


def test_mixed_box_with_two_mig_profiles(fake_nvml: FakeNvml) -> None:
    inv = fake_nvml.probe(
        topology(
            [
                {"uuid": "GPU-full", "util": 5},
                {
                    "uuid": "GPU-split",
                    "util": None,
                    "mig": [
                        mig(0, "3g.40gb", 3, 40, gi=2),
                        mig(1, "2g.20gb", 2, 20, gi=3, used_mib=512),
                        mig(2, "2g.20gb", 2, 20, gi=4),
                    ],
                    "procs": [
                        {"pid": 20, "gi": 3, "ci": 0},
                        {"pid": 21, "gi": 3, "ci": 0},
                        {"pid": 22, "gi": 2, "ci": 0},
                    ],
                },
            ]
        )
    )
    slots = slots_by_id(inv)
    assert sorted(slots) == ["0", "1.0", "1.1", "1.2"]
    assert slots["1.0"]["profile"] == "3g.40gb" and slots["1.0"]["gpueq"] == pytest.approx(3 / 7)
    assert slots["1.1"]["profile"] == "2g.20gb" and slots["1.1"]["gpueq"] == pytest.approx(2 / 7)
    assert slots["1.1"]["uuid"] == "MIG-0001-fake" and slots["1.1"]["memory_mib"] == 20480
    assert slots["1.1"]["memory_used_mib"] == 512
    # NVML answers NotSupported for utilisation on MIG: None, not 0
    assert slots["1.0"]["utilization"] is None and inv["gpus"][1]["utilization"] is None
    # running processes are counted per MIG device through their GPU/compute instance ids
    assert (slots["1.0"]["processes"], slots["1.1"]["processes"], slots["1.2"]["processes"]) == (1, 2, 0)
    assert slots["0"]["utilization"] == 5.0 and inv["gpus"][1]["slices"] == 7


def test_empty_mig_slots_are_skipped_not_the_end(fake_nvml: FakeNvml) -> None:
    inv = fake_nvml.probe(
        topology(
            [
                {
                    "uuid": "GPU-gaps",
                    "mig": [mig(0, "1g.10gb", 1, 10), mig(3, "1g.10gb", 1, 10), mig(6, "3g.40gb", 3, 40)],
                },
            ]
        )
    )
    assert sorted(slots_by_id(inv)) == ["0.0", "0.3", "0.6"]
    assert slots_by_id(inv)["0.6"]["profile"] == "3g.40gb"


def test_mig_enabled_gpu_without_instances_is_unusable(fake_nvml: FakeNvml) -> None:
    inv = fake_nvml.probe(topology([{"uuid": "GPU-ok", "util": 1}, {"uuid": "GPU-empty", "mig": []}]))
    empty = inv["gpus"][1]
    assert empty["mig_enabled"] and empty["migs"] == []
    assert "GPU 1" in inv["notice"] and "no MIG instances" in inv["notice"]
    assert sorted(slots_by_id(inv)) == ["0"]  # it gives out nothing
    from ds01.gpu.model import Gpu

    assert not Gpu(index=1, uuid="GPU-empty", name=A100, memory_mib=1, mig_enabled=True).usable


def test_compute_slices_and_gpu_slice_count_set_the_weight(fake_nvml: FakeNvml) -> None:
    inv = fake_nvml.probe(
        topology(
            [
                {
                    "uuid": "GPU-a30",
                    "name": "NVIDIA A30",
                    "memory_mib": 24576,
                    "slices": 4,
                    "mig": [mig(0, "2g.12gb", 2, 12), mig(1, "1g.6gb", 1, 6)],
                },
                {"uuid": "GPU-ci", "mig": [mig(0, "1c.3g.40gb", 3, 40, ci_slices=1)]},
            ]
        )
    )
    slots = slots_by_id(inv)
    assert inv["gpus"][0]["slices"] == 4
    assert slots["0.0"]["gpueq"] == pytest.approx(0.5) and slots["0.1"]["gpueq"] == pytest.approx(0.25)
    assert slots["1.0"]["profile"] == "1c.3g.40gb" and slots["1.0"]["gpueq"] == pytest.approx(1 / 7)


def test_no_library_means_backend_none_with_one_notice(fake_nvml: FakeNvml) -> None:
    # the library is named by the setting (a path): a real driver found through ld.so.cache or
    # LD_LIBRARY_PATH could not stand in for it, so this holds on a GPU machine too
    inv = fake_nvml.probe(None, with_library=False)
    assert inv["backend"] == "none" and inv["gpus"] == []
    assert (
        inv["notice"].startswith("no NVIDIA driver found")
        and "CPU-only containers still work" in inv["notice"]
        and fake_nvml.absent in inv["notice"]
    )
    explicit = fake_nvml.probe(None, backend="nvml", with_library=False)
    assert explicit["backend"] == "none" and explicit["notice"].startswith("gpu.backend is nvml but")


def test_driver_that_does_not_answer_means_backend_none(fake_nvml: FakeNvml) -> None:
    inv = fake_nvml.probe(topology([{"uuid": "GPU-x"}], init_error=9))
    assert inv["backend"] == "none" and "Driver Not Loaded" in inv["notice"]


def test_backend_none_never_loads_nvml(fake_nvml: FakeNvml) -> None:
    inv = fake_nvml.probe(topology([{"uuid": "GPU-x"}]), backend="none")
    assert inv["backend"] == "none" and inv["gpus"] == [] and "gpu.backend is none" in inv["notice"]


def test_nvml_is_initialised_once_however_often_ds01d_probes(fake_nvml: FakeNvml, tmp_path) -> None:
    topo = tmp_path / "topology.txt"
    topo.write_text(topology([{"uuid": "GPU-aaaa"}, {"uuid": "GPU-bbbb"}]))
    log = tmp_path / "inits.log"
    script = (
        "from ds01.config import GpuSettings\n"
        "from ds01.gpu.probe import probe_inventory\n"
        f"settings = GpuSettings(backend='nvml', nvml_library={fake_nvml.library!r})\n"
        "counts = [len(probe_inventory(settings).gpus) for _ in range(5)]\n"
        "print(counts)\n"
    )
    env = dict(
        os.environ,
        DS01_FAKE_NVML_TOPOLOGY=str(topo),
        DS01_FAKE_NVML_INIT_LOG=str(log),
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[2, 2, 2, 2, 2]"
    assert log.read_text().splitlines() == ["init"]


def test_the_library_setting_is_what_loads_not_the_loader_search(fake_nvml: FakeNvml, tmp_path) -> None:
    """LD_LIBRARY_PATH pointing at the fake does not make a driver appear when the setting names an absent
    path; and the default bare name does go through the loader's search (here: LD_LIBRARY_PATH)."""
    topo = tmp_path / "topology.txt"
    topo.write_text(topology([{"uuid": "GPU-aaaa"}]))
    script = (
        "import sys\n"
        "from ds01.config import GpuSettings\n"
        "from ds01.gpu.probe import probe_inventory\n"
        "print(len(probe_inventory(GpuSettings(backend='nvml', nvml_library=sys.argv[1])).gpus))\n"
    )
    env = dict(os.environ, LD_LIBRARY_PATH=str(fake_nvml.lib_dir), DS01_FAKE_NVML_TOPOLOGY=str(topo))
    for library, gpus in ((fake_nvml.absent, "0"), ("libnvidia-ml.so.1", "1"), (fake_nvml.library, "1")):
        done = subprocess.run(
            [sys.executable, "-c", script, library], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 0 and done.stdout.strip() == gpus, (library, done.stdout, done.stderr)


def test_the_library_setting_is_validated(tmp_path) -> None:
    from ds01.config import load_config
    from ds01.errors import ConfigError

    cfg = tmp_path / "c.yaml"
    cfg.write_text("gpu:\n  nvml_library: lib/relative.so\n")
    with pytest.raises(ConfigError, match=r"gpu\.nvml_library"):
        load_config(cfg)
    cfg.write_text("gpu:\n  nvml_library: /opt/nvidia/libnvidia-ml.so.1\n")
    assert load_config(cfg).gpu.nvml_library == "/opt/nvidia/libnvidia-ml.so.1"
