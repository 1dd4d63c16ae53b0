"""Who holds what, read from Docker itself: the `ds01.*` labels of every existing container."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ds01 import naming
from ds01.config import Config
from ds01.errors import NotFound
from ds01.gpu.model import Holding, Inventory, Slot
from ds01.identity import User, lookup_user
from ds01.limits import resolve_limits

HOLDING_STATES = {"running", "paused", "created", "restarting"}
FOREIGN_USER = "(not ds01)"


class ContainerSummary(Protocol):
    """What holdings need of a listed container (`docker_gateway.ContainerSummary` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def created(self) -> int: ...


class Gateway(Protocol):
    """The two read calls holdings make (`docker_gateway.Gateway` has them)."""

    def containers(
        self, *, labels: list[str] | None = None, name: str | None = None, all: bool = True
    ) -> Sequence[ContainerSummary]: ...
    def inspect(self, ref: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Usage:
    gpu_equivalents: float
    gpu_slots: int
    containers: int


def managed_containers(gateway: Gateway, *, uid: int | None = None) -> list[ContainerSummary]:
    labels = [naming.MANAGED_FILTER]
    if uid is not None:
        labels.append(f"{naming.LABEL_UID}={uid}")
    return list(gateway.containers(labels=labels))


def is_managed(container: ContainerSummary) -> bool:
    return container.labels.get(naming.LABEL_MANAGED) == "true"


def parse_time(value: str) -> datetime | None:
    """Docker's RFC 3339 times (nanoseconds, `Z`) -> aware datetimes; the zero time -> None."""
    if not value or value.startswith("0001-"):
        return None
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?", value)
    if not match:
        return None
    fraction = (match.group(2) or ".0")[:7]
    return datetime.fromisoformat(match.group(1) + fraction).replace(tzinfo=UTC)


def finished_at(gateway: Gateway, container_id: str) -> datetime | None:
    state = gateway.inspect(container_id).get("State", {})
    return parse_time(str(state.get("FinishedAt", "")))


def _owner(name: str, uid: int) -> User:
    try:
        return lookup_user(str(uid))
    except NotFound:
        return User(name=name, uid=uid, gid=uid, home=Path("/nonexistent"))


def _slot_weights(
    slots: list[str], uuids: list[str], total: float, inventory: Inventory | None
) -> list[float]:
    """Each slot's gpueq from the inventory when it still has that slot, else an equal share of the label."""
    weights = []
    for i, slot_id in enumerate(slots):
        slot = inventory.slot(slot_id) if inventory else None
        uuid = uuids[i] if i < len(uuids) else ""
        weights.append(slot.gpueq if slot and slot.uuid == uuid else round(total / len(slots), 4))
    return weights


def gpu_holdings(
    gateway: Gateway,
    config: Config,
    *,
    now: datetime | None = None,
    containers: Sequence[ContainerSummary] | None = None,
    inventory: Inventory | None = None,
) -> list[Holding]:
    """Every slot held by an existing ds01 container; a stopped one past its owner's hold is reclaimable.

    Only stopped GPU containers are inspected (for when they stopped); `containers` may hold foreign
    ones too, which are skipped here (see `foreign_holdings`).
    """
    now = now or datetime.now(UTC)
    containers = managed_containers(gateway) if containers is None else containers
    holds: dict[tuple[str, int], float | None] = {}
    holdings: list[Holding] = []
    for c in containers:
        slots = [s for s in c.labels.get(naming.LABEL_GPU_SLOTS, "").split(",") if s]
        if not slots or not is_managed(c):
            continue
        uuids = c.labels.get(naming.LABEL_GPU_UUIDS, "").split(",")
        user = c.labels.get(naming.LABEL_USER, "?")
        uid = _int(c.labels.get(naming.LABEL_UID, ""))
        since = c.labels.get(naming.LABEL_CREATED_AT, "")
        reclaimable = False
        if c.state not in HOLDING_STATES:
            try:
                ended = finished_at(gateway, c.id)
            except NotFound:  # removed since the listing
                continue
            if (user, uid) not in holds:
                holds[user, uid] = resolve_limits(config, _owner(user, uid)).limits.gpu_hold_after_stop_h
            hold_h = holds[user, uid]
            if ended is not None:
                since = ended.strftime("%Y-%m-%dT%H:%M:%SZ")
                reclaimable = hold_h is not None and (now - ended).total_seconds() > hold_h * 3600
        total = _float(c.labels.get(naming.LABEL_GPU_GPUEQ, ""))
        weights = _slot_weights(slots, uuids, total, inventory)
        for i, slot in enumerate(slots):
            holdings.append(
                Holding(
                    slot_id=slot,
                    uuid=uuids[i] if i < len(uuids) else "",
                    gpueq=weights[i],
                    user=user,
                    uid=uid,
                    container=naming.split_container_name(c.name)[0],
                    status=c.state,
                    since=since,
                    reclaimable=reclaimable,
                    container_id=c.id,
                )
            )
    return holdings


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return -1


def _float(value: str) -> float:
    try:
        return max(float(value), 0.0)
    except ValueError:
        return 0.0


def foreign_holdings(
    gateway: Gateway, containers: Sequence[ContainerSummary], inventory: Inventory
) -> list[Holding]:
    """Slots that containers ds01 did not make reach through their device requests (never reclaimed)."""
    holdings: list[Holding] = []
    for c in containers:
        if is_managed(c):
            continue
        try:
            requests = gateway.inspect(c.id).get("HostConfig", {}).get("DeviceRequests") or []
        except NotFound:
            continue
        since = datetime.fromtimestamp(c.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if c.created else ""
        for slot in _requested_slots(requests, inventory):
            holdings.append(
                Holding(
                    slot_id=slot.id,
                    uuid=slot.uuid,
                    gpueq=slot.gpueq,
                    user=c.labels.get(naming.LABEL_USER) or FOREIGN_USER,
                    uid=-1,
                    container=c.name,
                    status=c.state,
                    since=since,
                    container_id=c.id,
                )
            )
    return holdings


def _requested_slots(requests: list[dict[str, Any]], inventory: Inventory) -> list[Slot]:
    slots = inventory.slots()
    out: dict[str, Slot] = {}
    for req in requests:
        caps = [c for group in (req.get("Capabilities") or []) for c in group]
        if req.get("Driver") != "nvidia" and "gpu" not in caps:
            continue
        count = int(req.get("Count") or 0)
        ids = [str(i) for i in (req.get("DeviceIDs") or [])]
        if count == -1:
            ids = [s.id for s in slots]
        elif count > 0 and not ids:  # the toolkit hands out the first N GPUs
            ids = [str(g.index) for g in inventory.gpus[:count]]
        for device in ids:
            for slot in _match_device(device, slots):
                out[slot.id] = slot
    return list(out.values())


def _match_device(device: str, slots: list[Slot]) -> list[Slot]:
    """A device id as `--gpus device=` takes it: a UUID, a GPU index, or `gpu:mig`."""
    if device.isdigit():
        return [s for s in slots if s.gpu_index == int(device)]
    if ":" in device:
        return [s for s in slots if s.id == device.replace(":", ".", 1)]
    return [s for s in slots if s.uuid == device]


def user_usage(holdings: list[Holding], containers: Sequence[ContainerSummary], uid: int) -> Usage:
    mine = [h for h in holdings if h.uid == uid and not h.reclaimable]
    count = sum(1 for c in containers if c.labels.get(naming.LABEL_UID) == str(uid))
    return Usage(round(sum(h.gpueq for h in mine), 4), len(mine), count)
