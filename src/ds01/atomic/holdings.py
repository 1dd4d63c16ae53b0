"""Who holds what, read from Docker itself: the `ds01.*` labels of every existing container."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ds01 import naming
from ds01.config import Config
from ds01.docker_gateway import ContainerSummary, Gateway
from ds01.errors import NotFound
from ds01.gpu.model import Holding, Inventory
from ds01.identity import User, lookup_user
from ds01.limits import resolve_limits

HOLDING_STATES = {"running", "paused", "created", "restarting"}


@dataclass(frozen=True)
class Usage:
    gpu_equivalents: float
    gpu_slots: int
    containers: int


def managed_containers(gateway: Gateway, *, uid: int | None = None) -> list[ContainerSummary]:
    labels = [naming.MANAGED_FILTER]
    if uid is not None:
        labels.append(f"{naming.LABEL_UID}={uid}")
    return gateway.containers(labels=labels)


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


def _slot_weights(slots: list[str], uuids: list[str], total: float, inventory: Inventory | None) -> list[float]:
    """Each slot's gpueq from the inventory when it still has that slot, else an equal share of the label."""
    weights = []
    for i, slot_id in enumerate(slots):
        slot = inventory.slot(slot_id) if inventory else None
        uuid = uuids[i] if i < len(uuids) else ""
        weights.append(slot.gpueq if slot and slot.uuid == uuid else round(total / len(slots), 4))
    return weights


def gpu_holdings(gateway: Gateway, config: Config, *, now: datetime | None = None,
                 containers: list[ContainerSummary] | None = None,
                 inventory: Inventory | None = None) -> list[Holding]:
    """Every slot held by an existing ds01 container; a stopped one past its owner's hold is reclaimable."""
    now = now or datetime.now(UTC)
    containers = managed_containers(gateway) if containers is None else containers
    holdings: list[Holding] = []
    for c in containers:
        slots = [s for s in c.labels.get(naming.LABEL_GPU_SLOTS, "").split(",") if s]
        if not slots:
            continue
        uuids = c.labels.get(naming.LABEL_GPU_UUIDS, "").split(",")
        user = c.labels.get(naming.LABEL_USER, "?")
        uid = int(c.labels.get(naming.LABEL_UID, "-1") or -1)
        since = c.labels.get(naming.LABEL_CREATED_AT, "")
        reclaimable = False
        if c.state not in HOLDING_STATES:
            ended = finished_at(gateway, c.id)
            hold_h = resolve_limits(config, _owner(user, uid)).limits.gpu_hold_after_stop_h
            if ended is not None:
                since = ended.strftime("%Y-%m-%dT%H:%M:%SZ")
                reclaimable = hold_h is not None and (now - ended).total_seconds() > hold_h * 3600
        total = float(c.labels.get(naming.LABEL_GPU_GPUEQ, "0") or 0)
        weights = _slot_weights(slots, uuids, total, inventory)
        for i, slot in enumerate(slots):
            holdings.append(Holding(
                slot_id=slot, uuid=uuids[i] if i < len(uuids) else "", gpueq=weights[i], user=user, uid=uid,
                container=naming.split_container_name(c.name)[0], status=c.state, since=since,
                reclaimable=reclaimable,
            ))
    return holdings


def user_usage(holdings: list[Holding], containers: list[ContainerSummary], uid: int) -> Usage:
    mine = [h for h in holdings if h.uid == uid and not h.reclaimable]
    count = sum(1 for c in containers if c.labels.get(naming.LABEL_UID) == str(uid))
    return Usage(round(sum(h.gpueq for h in mine), 4), len(mine), count)
