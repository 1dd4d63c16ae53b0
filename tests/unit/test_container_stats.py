"""container-stats numbers from recorded engine samples, cgroup v1 and v2."""

from __future__ import annotations

from ds01.atomic.container_stats import container_stats, cpu_percent, memory_limit, memory_used
from ds01.atomic.container_view import ContainerView
from ds01.gpu.model import Slot

V1 = {
    "cpu_stats": {
        "cpu_usage": {"total_usage": 3_000_000_000, "percpu_usage": [1, 2]},
        "system_cpu_usage": 120_000_000_000,
    },
    "precpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000}, "system_cpu_usage": 118_000_000_000},
    "memory_stats": {
        "usage": 300 * 1024**2,
        "limit": 1024**3,
        "stats": {"total_inactive_file": 100 * 1024**2, "cache": 120 * 1024**2},
    },
    "pids_stats": {"current": 7},
}
V2 = {
    "cpu_stats": {"cpu_usage": {"total_usage": 5_000}, "system_cpu_usage": 20_000, "online_cpus": 4},
    "precpu_stats": {"cpu_usage": {"total_usage": 4_000}, "system_cpu_usage": 10_000},
    "memory_stats": {"usage": 50 * 1024**2, "limit": 2 * 1024**3, "stats": {"inactive_file": 10 * 1024**2}},
}


def test_cpu_percent_v1_counts_percpu_entries_when_online_cpus_is_missing():
    assert cpu_percent(V1) == 100.0  # 1 s of CPU over 2 s of system time on 2 CPUs


def test_cpu_percent_v2_uses_online_cpus():
    assert cpu_percent(V2) == 40.0


def test_cpu_percent_without_a_previous_sample_is_zero_or_unknown():
    zeroed = dict(V2, precpu_stats={"cpu_usage": {"total_usage": 5_000}, "system_cpu_usage": 20_000})
    assert cpu_percent(zeroed) == 0.0
    assert cpu_percent({}) is None


def test_memory_leaves_out_inactive_page_cache():
    assert memory_used(V1) == 200 * 1024**2
    assert memory_used(V2) == 40 * 1024**2
    assert memory_limit(V1) == 1024**3
    assert memory_used({}) is None


def test_a_row_carries_gpu_utilisation_where_known():
    view = ContainerView(
        "abc",
        "t._.1",
        "running",
        "img",
        {
            "ds01.project": "t",
            "ds01.user": "alice",
            "ds01.gpu.slots": "0,2.1",
            "ds01.gpu.uuids": "GPU-0,MIG-9",
            "ds01.gpu.gpueq": "1.1429",
        },
    )
    known = {"GPU-0": Slot("0", "GPU-0", "gpu", 0, "A100", None, 1.0, 81920, utilization=37.0, processes=2)}
    row = container_stats(view, V1, known)
    assert row.memory_percent == round(200 / 1024 * 100, 2) and row.pids == 7
    assert [(g.slot, g.utilization) for g in row.gpus] == [("0", 37.0), ("2.1", None)]
    assert row.as_dict()["gpus"][0]["uuid"] == "GPU-0"


def test_a_stopped_container_has_no_numbers():
    view = ContainerView("abc", "t._.1", "exited", "img", {"ds01.project": "t"})
    row = container_stats(view, {}, {})
    assert (row.cpu_percent, row.memory_used, row.pids, row.gpus) == (None, None, None, ())
