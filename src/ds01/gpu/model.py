"""What flows between the GPU probe, the allocator and the commands (CONTRACT §2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SlotKind = Literal["gpu", "mig"]


@dataclass(frozen=True)
class Slot:
    """A unit the allocator hands out: a whole GPU (`"0"`) or one MIG instance (`"1.2"`)."""

    id: str
    uuid: str
    kind: SlotKind
    gpu_index: int
    name: str
    profile: str | None
    gpueq: float
    memory_mib: int
    utilization: float | None = None
    processes: int = 0
    memory_used_mib: int | None = None
    pids: tuple[int, ...] = ()  # host pids of its compute processes, where the probe knows them


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    memory_mib: int
    slices: int = 7
    mig_enabled: bool = False
    utilization: float | None = None
    processes: int = 0
    migs: tuple[Slot, ...] = ()
    pids: tuple[int, ...] = ()  # host pids of the compute processes on the whole GPU

    @property
    def usable(self) -> bool:
        """A MIG-enabled GPU with no instances can give nothing out."""
        return not self.mig_enabled or bool(self.migs)

    def slots(self) -> tuple[Slot, ...]:
        if self.mig_enabled:
            return self.migs
        return (
            Slot(
                str(self.index),
                self.uuid,
                "gpu",
                self.index,
                self.name,
                None,
                1.0,
                self.memory_mib,
                self.utilization,
                self.processes,
                pids=self.pids,
            ),
        )


@dataclass(frozen=True)
class Inventory:
    backend: str
    gpus: tuple[Gpu, ...] = ()
    driver_version: str | None = None
    notice: str | None = None

    def slots(self) -> list[Slot]:
        return [s for g in self.gpus for s in g.slots()]

    def slot(self, slot_id: str) -> Slot | None:
        return next((s for s in self.slots() if s.id == slot_id), None)

    @property
    def total_gpueq(self) -> float:
        return float(sum(s.gpueq for s in self.slots()))


@dataclass(frozen=True)
class Holding:
    """One slot held by one existing container, as its labels say."""

    slot_id: str
    uuid: str
    gpueq: float
    user: str
    uid: int
    container: str
    status: str
    since: str
    reclaimable: bool = False
    container_id: str = ""


@dataclass(frozen=True)
class Allocation:
    slots: tuple[Slot, ...] = field(default_factory=tuple)

    @property
    def gpueq(self) -> float:
        return round(sum(s.gpueq for s in self.slots), 4)

    @property
    def uuids(self) -> list[str]:
        return [s.uuid for s in self.slots]

    @property
    def slot_ids(self) -> list[str]:
        return [s.id for s in self.slots]
