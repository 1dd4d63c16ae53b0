"""How a container gets its GPUs (CONTRACT §3 `gpu.attach`), in plain terms the container code maps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ds01.gpu.model import Allocation

ATTACH_MODES = ("device-request", "env")
# `void` keeps a CPU-only container GPU-free even where the default runtime is nvidia
NO_GPU_ENV = {"NVIDIA_VISIBLE_DEVICES": "void"}


@dataclass(frozen=True)
class Attachment:
    """`device_ids` for one DeviceRequest (driver nvidia, capabilities [["gpu"]]), and env to set."""

    device_ids: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def needs_device_request(self) -> bool:
        return bool(self.device_ids)


def attachment_for(allocation: Allocation, mode: str) -> Attachment:
    if mode not in ATTACH_MODES:
        raise ValueError(f"unknown gpu.attach mode {mode!r}")
    uuids = tuple(allocation.uuids)
    if not uuids:
        return Attachment(env=dict(NO_GPU_ENV))
    if mode == "device-request":
        return Attachment(device_ids=uuids)
    visible = ",".join(uuids)
    return Attachment(env={"NVIDIA_VISIBLE_DEVICES": visible, "CUDA_VISIBLE_DEVICES": visible})
