"""One ds01 container as the commands see it, and its `container-list` entry (CONTRACT §4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ds01 import naming
from ds01.docker_gateway import ContainerSummary
from ds01.gpu.model import Slot


@dataclass(frozen=True)
class ContainerView:
    id: str
    docker_name: str
    state: str
    image: str
    labels: Mapping[str, str]
    user_spec: str = ""

    @property
    def name(self) -> str:
        return self.labels.get(naming.LABEL_PROJECT) or naming.split_container_name(self.docker_name)[0]

    @property
    def uid(self) -> int | None:
        raw = self.labels.get(naming.LABEL_UID, "")
        return int(raw) if raw.isdigit() else None

    @property
    def user(self) -> str:
        return self.labels.get(naming.LABEL_USER, "")

    @property
    def managed(self) -> bool:
        return self.labels.get(naming.LABEL_MANAGED) == "true"

    @property
    def gpu_slots(self) -> list[str]:
        return [s for s in self.labels.get(naming.LABEL_GPU_SLOTS, "").split(",") if s]

    @property
    def gpu_uuids(self) -> list[str]:
        return [u for u in self.labels.get(naming.LABEL_GPU_UUIDS, "").split(",") if u]

    @property
    def gpueq(self) -> float:
        """The label's GPU equivalents; 0 when blank or not a finite number >= 0 (a corrupt label, which
        holdings report and never count)."""
        from ds01.atomic.holdings import parse_gpueq

        value = parse_gpueq(self.labels.get(naming.LABEL_GPU_GPUEQ, ""))
        return value if value is not None else 0.0

    @classmethod
    def from_summary(cls, s: ContainerSummary) -> ContainerView:
        return cls(s.id, s.name, s.state, s.image, dict(s.labels))

    @classmethod
    def from_inspect(cls, raw: Mapping[str, Any]) -> ContainerView:
        config = raw.get("Config") or {}
        state = raw.get("State") or {}
        return cls(
            id=str(raw.get("Id", "")),
            docker_name=str(raw.get("Name", "")).lstrip("/"),
            state=str(state.get("Status", "")),
            image=str(config.get("Image", "")),
            labels=dict(config.get("Labels") or {}),
            user_spec=str(config.get("User", "")),
        )


def gpu_entries(view: ContainerView, known: Mapping[str, Slot]) -> list[dict[str, Any]]:
    """The container's slots with profile and weight from the inventory (`known`: uuid -> slot); a slot gone
    from the inventory keeps what its labels say."""
    slots, uuids = view.gpu_slots, view.gpu_uuids
    out = []
    for i, slot_id in enumerate(slots):
        uuid = uuids[i] if i < len(uuids) else ""
        slot = known.get(uuid)
        out.append(
            {
                "slot": slot_id,
                "uuid": uuid,
                "profile": slot.profile if slot is not None else None,
                "gpueq": slot.gpueq if slot is not None else round(view.gpueq / len(slots), 4),
            }
        )
    return out


def list_entry(view: ContainerView, known: Mapping[str, Slot]) -> dict[str, Any]:
    return {
        "name": view.name,
        "container": view.docker_name,
        "user": view.user,
        "uid": view.uid,
        "status": view.state,
        "image": view.image,
        "gpus": gpu_entries(view, known),
        "created_at": view.labels.get(naming.LABEL_CREATED_AT, ""),
        "workspace": view.labels.get(naming.LABEL_WORKSPACE, ""),
        **({"slurm_job": job} if (job := view.labels.get(naming.LABEL_SLURM_JOB)) else {}),
    }
