"""The NVML probe: the only module that imports `pynvml` (from nvidia-ml-py).

MIG devices are walked over every index up to the maximum, skipping empty ones, since instance
indices have gaps once slices are destroyed and re-created.
"""

from __future__ import annotations

import ctypes
import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import pynvml

from ds01.gpu.model import Gpu, Inventory, Slot

T = TypeVar("T")
MIB = 1024 * 1024
DEFAULT_SLICES = 7
# GPU instance profiles from the largest slice count down: the first one the GPU knows is all of it
_WHOLE_PROFILES = (
    pynvml.NVML_GPU_INSTANCE_PROFILE_8_SLICE, pynvml.NVML_GPU_INSTANCE_PROFILE_7_SLICE,
    pynvml.NVML_GPU_INSTANCE_PROFILE_6_SLICE, pynvml.NVML_GPU_INSTANCE_PROFILE_4_SLICE,
    pynvml.NVML_GPU_INSTANCE_PROFILE_3_SLICE, pynvml.NVML_GPU_INSTANCE_PROFILE_2_SLICE,
)  # fmt: skip
_PROFILE_IN_NAME = re.compile(r"MIG\s+((?:\d+c\.)?\d+g\.\d+gb)")
# NotSupported (utilisation on MIG), NoPermission (processes without root), and functions an older
# driver lacks (the binding raises NVMLLibraryMismatchError for some of those)
_UNAVAILABLE = (
    pynvml.NVMLError_NotSupported,
    pynvml.NVMLError_NoPermission,
    pynvml.NVMLError_FunctionNotFound,
    pynvml.NVMLLibraryMismatchError,
)
_EMPTY_MIG_SLOT = (pynvml.NVMLError_NotFound, pynvml.NVMLError_InvalidArgument)
NO_DRIVER = (
    "no NVIDIA driver found (libnvidia-ml.so.1 cannot be loaded): GPUs are unavailable, "
    "CPU-only containers still work"
)


def _maybe(fn: Callable[..., T], *args: Any, default: T) -> T:
    """One chokepoint for metrics a device may not offer."""
    try:
        return fn(*args)
    except _UNAVAILABLE:
        return default


_init_lock = threading.Lock()
_initialised = False
_library: str | None = None  # what pynvml's handle was loaded from
DEFAULT_LIBRARY = "libnvidia-ml.so.1"


def _load(library: str) -> None:
    """Load `library` into pynvml (its own loader knows only the bare name): a bare name goes through the
    dynamic loader's search, a path loads that file only. Raises NVMLError_LibraryNotFound."""
    global _library
    with pynvml.libLoadLock:
        if pynvml.nvmlLib is not None and _library == library:
            return
        try:
            pynvml.nvmlLib = ctypes.CDLL(library)
        except OSError:
            pynvml.nvmlLib = None
            _library = None
            raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND) from None
        _library = library


def _init(library: str = DEFAULT_LIBRARY) -> None:
    """nvmlInit once per process (ds01d lives long: a probe then costs only the queries)."""
    global _initialised
    with _init_lock:
        if _initialised and _library != library:  # the setting changed: start again from the new library
            _maybe(pynvml.nvmlShutdown, default=None)
            _initialised = False
        if not _initialised:
            _load(library)
            pynvml.nvmlInit()
            _initialised = True


def shutdown() -> None:
    global _initialised
    with _init_lock:
        if _initialised:
            _maybe(pynvml.nvmlShutdown, default=None)
            _initialised = False


def probe(*, explicit: bool = False, library: str = DEFAULT_LIBRARY) -> Inventory:
    try:
        _init(library)
    except pynvml.NVMLError_LibraryNotFound:
        prefix = "gpu.backend is nvml but " if explicit else ""
        where = "" if library == DEFAULT_LIBRARY else f" (gpu.nvml_library: {library})"
        return Inventory(backend="none", notice=prefix + NO_DRIVER + where)
    except pynvml.NVMLError as exc:
        return Inventory(
            backend="none", notice=f"the NVIDIA driver did not answer ({exc}): GPUs are unavailable"
        )
    try:
        driver = _maybe(pynvml.nvmlSystemGetDriverVersion, default=None)
        gpus = tuple(_gpu(i) for i in range(pynvml.nvmlDeviceGetCount()))
    except pynvml.NVMLError as exc:
        shutdown()  # the driver went away or was reloaded: initialise afresh next time
        return Inventory(
            backend="none", notice=f"NVML failed while listing GPUs ({exc}): GPUs are unavailable"
        )
    unusable = [str(g.index) for g in gpus if not g.usable]
    notice = None
    if unusable:
        notice = (
            f"MIG is enabled on GPU {', '.join(unusable)} but no MIG instances exist: it gives out nothing"
        )
    return Inventory(backend="nvml", gpus=gpus, driver_version=driver, notice=notice)


def _gpu(index: int) -> Gpu:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    name = pynvml.nvmlDeviceGetName(handle)
    mig_mode = _maybe(pynvml.nvmlDeviceGetMigMode, handle, default=[0, 0])
    mig_enabled = mig_mode[0] == pynvml.NVML_DEVICE_MIG_ENABLE
    processes: list[Any] = _maybe(pynvml.nvmlDeviceGetComputeRunningProcesses, handle, default=[])
    utilization = _maybe(pynvml.nvmlDeviceGetUtilizationRates, handle, default=None)
    slices = _total_slices(handle) if mig_enabled else DEFAULT_SLICES
    migs = _migs(handle, index, name, slices, processes) if mig_enabled else ()
    return Gpu(
        index=index,
        uuid=pynvml.nvmlDeviceGetUUID(handle),
        name=name,
        memory_mib=int(pynvml.nvmlDeviceGetMemoryInfo(handle).total // MIB),
        slices=slices,
        mig_enabled=mig_enabled,
        utilization=None if utilization is None else float(utilization.gpu),
        processes=len(processes),
        migs=migs,
        pids=_pids(processes),
    )


def _pids(processes: list[Any]) -> tuple[int, ...]:
    return tuple(sorted({int(p.pid) for p in processes if getattr(p, "pid", None) is not None}))


def _total_slices(handle: Any) -> int:
    for profile in _WHOLE_PROFILES:
        try:
            return int(pynvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, profile, version=1).sliceCount)
        except pynvml.NVMLError:
            continue
    return DEFAULT_SLICES


def _migs(handle: Any, gpu_index: int, name: str, slices: int, processes: list[Any]) -> tuple[Slot, ...]:
    # processes on a MIG-enabled GPU carry the GPU/compute instance they run on
    per_instance = Counter((p.gpuInstanceId, p.computeInstanceId) for p in processes)
    pids: dict[tuple[int, int], set[int]] = {}
    for p in processes:
        pids.setdefault((p.gpuInstanceId, p.computeInstanceId), set()).add(int(p.pid))
    out = []
    for mig_index in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, mig_index)
        except _EMPTY_MIG_SLOT:
            continue
        out.append(_mig_slot(mig, gpu_index, mig_index, name, slices, per_instance, pids))
    return tuple(out)


def _mig_slot(
    mig: Any,
    gpu_index: int,
    mig_index: int,
    name: str,
    slices: int,
    per_instance: Counter[tuple[int, int]],
    pids: dict[tuple[int, int], set[int]],
) -> Slot:
    memory = pynvml.nvmlDeviceGetMemoryInfo(mig)
    attrs = _maybe(pynvml.nvmlDeviceGetAttributes, mig, default=None)
    profile = _profile(pynvml.nvmlDeviceGetName(mig), attrs, int(memory.total // MIB))
    compute = _compute_slices(attrs, profile)
    instance = (
        _maybe(pynvml.nvmlDeviceGetGpuInstanceId, mig, default=-1),
        _maybe(pynvml.nvmlDeviceGetComputeInstanceId, mig, default=-1),
    )
    own: list[Any] = _maybe(pynvml.nvmlDeviceGetComputeRunningProcesses, mig, default=[])
    utilization = _maybe(pynvml.nvmlDeviceGetUtilizationRates, mig, default=None)
    return Slot(
        id=f"{gpu_index}.{mig_index}",
        uuid=pynvml.nvmlDeviceGetUUID(mig),
        kind="mig",
        gpu_index=gpu_index,
        name=name,
        profile=profile,
        gpueq=compute / slices,
        memory_mib=int(memory.total // MIB),
        utilization=None if utilization is None else float(utilization.gpu),
        processes=max(len(own), per_instance.get(instance, 0)),
        memory_used_mib=int(memory.used // MIB),
        pids=_pids(own) or tuple(sorted(pids.get(instance, set()))),
    )


def _profile(mig_name: str, attrs: Any, memory_mib: int) -> str:
    """NVML names a MIG device `<GPU name> MIG 3g.40gb`; fall back to the slice count and memory."""
    match = _PROFILE_IN_NAME.search(mig_name)
    if match:
        return match.group(1)
    slices = attrs.gpuInstanceSliceCount if attrs is not None else 1
    return f"{slices}g.{round(memory_mib / 1024)}gb"


def _compute_slices(attrs: Any, profile: str) -> int:
    if attrs is not None and attrs.computeInstanceSliceCount:
        return int(attrs.computeInstanceSliceCount)
    match = re.match(r"^(?:(\d+)c\.)?(\d+)g\.", profile)
    return int(match.group(1) or match.group(2)) if match else 1
