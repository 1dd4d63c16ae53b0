"""Which GPUs this host has, from the backend the config names (CONTRACT §3 `gpu.backend`)."""

from __future__ import annotations

from ds01.config import GpuSettings, shipped_dir
from ds01.gpu.model import Inventory


def probe_inventory(settings: GpuSettings) -> Inventory:
    if settings.backend == "none":
        return Inventory(backend="none", notice="gpu.backend is none: this host gives out no GPUs")
    if settings.backend == "simulated":
        from ds01.gpu.simulated import load_inventory

        return load_inventory(settings.inventory or shipped_dir("config") / "simulated-gpus.yaml")
    try:
        from ds01.gpu import nvml
    except ImportError:
        return Inventory(backend="none", notice="the NVML binding (nvidia-ml-py) is not installed: no GPUs")
    return nvml.probe(explicit=settings.backend == "nvml", library=settings.nvml_library)
