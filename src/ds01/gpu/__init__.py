"""GPUs: the inventory model, probes (NVML, simulated, none), the allocator and its lock.

`gpu/nvml.py` is the only module that imports `pynvml`.
"""
