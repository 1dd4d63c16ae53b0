"""How a container gets its GPUs: a device request, env, or `void` for CPU-only."""

from __future__ import annotations

import pytest

from ds01.gpu.attach import attachment_for
from ds01.gpu.model import Allocation, Slot

SLOTS = (
    Slot("0", "GPU-aaaa", "gpu", 0, "A100", None, 1.0, 81920),
    Slot("2.1", "MIG-bbbb", "mig", 2, "A100", "2g.20gb", 2 / 7, 20480),
)


def test_device_request_carries_the_uuids() -> None:
    a = attachment_for(Allocation(SLOTS), "device-request")
    assert a.device_ids == ("GPU-aaaa", "MIG-bbbb") and a.needs_device_request and dict(a.env) == {}


def test_env_mode_sets_both_variables() -> None:
    a = attachment_for(Allocation(SLOTS), "env")
    assert not a.needs_device_request
    assert dict(a.env) == {
        "NVIDIA_VISIBLE_DEVICES": "GPU-aaaa,MIG-bbbb",
        "CUDA_VISIBLE_DEVICES": "GPU-aaaa,MIG-bbbb",
    }


@pytest.mark.parametrize("mode", ["device-request", "env"])
def test_cpu_only_sees_no_gpu_even_on_an_nvidia_default_runtime(mode: str) -> None:
    a = attachment_for(Allocation(), mode)
    assert dict(a.env) == {"NVIDIA_VISIBLE_DEVICES": "void"} and a.device_ids == ()


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match=r"unknown gpu\.attach mode"):
        attachment_for(Allocation(SLOTS), "magic")
