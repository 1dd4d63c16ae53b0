"""The simulated backend (CONTRACT §3.1): an inventory YAML, re-read on every probe."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import yaml

from ds01.errors import ConfigError
from ds01.gpu.model import Gpu, Inventory, Slot

_NAMESPACE = uuid.UUID("6f1b6c52-3d4e-4b1a-9a57-0d5d01000000")
_PROFILE = re.compile(r"^(?:(\d+)c\.)?(\d+)g\.(\d+)gb$")
_GPU_KEYS = {"name", "uuid", "memory_mib", "slices", "utilization", "processes", "mig"}
_MIG_KEYS = {"profile", "uuid", "processes", "memory_used_mib"}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def default_gpu_uuid(index: int) -> str:
    return f"GPU-{uuid.uuid5(_NAMESPACE, f'gpu/{index}')}"


def default_mig_uuid(gpu_index: int, mig_index: int) -> str:
    return f"MIG-{uuid.uuid5(_NAMESPACE, f'mig/{gpu_index}/{mig_index}')}"


def profile_slices(profile: str) -> tuple[int, int]:
    """`2g.20gb` -> (compute slices 2, memory 20 GB); `1c.3g.40gb` -> (1, 40). ValueError otherwise."""
    match = _PROFILE.match(profile)
    if not match:
        raise ValueError(f"{profile!r} is not a MIG profile like 1g.10gb or 3g.40gb")
    compute = int(match.group(1) or match.group(2))
    return compute, int(match.group(3))


def load_inventory(path: Path) -> Inventory:
    try:
        data = yaml.load(path.read_text(), Loader=_Loader) or {}
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the simulated GPU inventory: {exc.strerror}",
            hint="fix gpu.inventory in the config or DS01_GPU_INVENTORY",
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML in the simulated GPU inventory: {exc}") from exc
    raw = data.get("gpus") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: gpus: expected a list of GPUs")
    gpus = tuple(_gpu(path, i, entry) for i, entry in enumerate(raw))
    return Inventory(backend="simulated", gpus=gpus, driver_version="simulated")


def _check_keys(path: Path, where: str, entry: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: {where}: expected a mapping")
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(f"{path}: {where}.{unknown[0]}: unknown key (valid: {', '.join(sorted(allowed))})")
    return entry


def _number(path: Path, where: str, value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{path}: {where}: expected a non-negative number, got {value!r}")
    return float(value)


def _gpu(path: Path, index: int, entry: Any) -> Gpu:
    where = f"gpus[{index}]"
    entry = _check_keys(path, where, entry, _GPU_KEYS)
    name = str(entry.get("name") or "Simulated GPU")
    memory = int(_number(path, f"{where}.memory_mib", entry.get("memory_mib"), 81920))
    slices = int(_number(path, f"{where}.slices", entry.get("slices"), 7)) or 7
    mig_raw = entry.get("mig")
    if mig_raw is not None and not isinstance(mig_raw, list):
        raise ConfigError(
            f"{path}: {where}.mig: expected a list of MIG instances (an empty list = no instances)"
        )
    migs = tuple(_mig(path, index, j, m, name, slices) for j, m in enumerate(mig_raw or []))
    return Gpu(
        index=index,
        uuid=str(entry.get("uuid") or default_gpu_uuid(index)),
        name=name,
        memory_mib=memory,
        slices=slices,
        mig_enabled=mig_raw is not None,
        # a MIG-enabled GPU reports no utilisation, as NVML answers NotSupported there
        utilization=None
        if mig_raw is not None
        else _number(path, f"{where}.utilization", entry.get("utilization"), 0),
        processes=_count(path, where, entry.get("processes")),
        migs=migs,
        pids=_pids(path, where, entry.get("processes")),
    )


def _count(path: Path, where: str, raw: Any) -> int:
    """`processes`: a count, or the list of the processes' host pids (as NVML gives them)."""
    if isinstance(raw, list):
        return len(_pids(path, where, raw))
    return int(_number(path, f"{where}.processes", raw, 0))


def _pids(path: Path, where: str, raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list):
        return ()
    if not all(isinstance(p, int) and not isinstance(p, bool) and p > 0 for p in raw):
        raise ConfigError(f"{path}: {where}.processes: expected a count or a list of pids (integers > 0)")
    return tuple(sorted(set(raw)))


def _mig(path: Path, gpu_index: int, mig_index: int, entry: Any, name: str, slices: int) -> Slot:
    where = f"gpus[{gpu_index}].mig[{mig_index}]"
    entry = _check_keys(path, where, entry, _MIG_KEYS)
    profile = str(entry.get("profile") or "")
    try:
        compute, memory_gb = profile_slices(profile)
    except ValueError as exc:
        raise ConfigError(f"{path}: {where}.profile: {exc}") from exc
    if compute > slices:
        raise ConfigError(f"{path}: {where}.profile: {profile} needs {compute} slices, the GPU has {slices}")
    return Slot(
        id=f"{gpu_index}.{mig_index}",
        uuid=str(entry.get("uuid") or default_mig_uuid(gpu_index, mig_index)),
        kind="mig",
        gpu_index=gpu_index,
        name=name,
        profile=profile,
        gpueq=compute / slices,
        memory_mib=memory_gb * 1024,
        utilization=None,
        processes=_count(path, where, entry.get("processes")),
        memory_used_mib=int(_number(path, f"{where}.memory_used_mib", entry.get("memory_used_mib"), 0)),
        pids=_pids(path, where, entry.get("processes")),
    )
