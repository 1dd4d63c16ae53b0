"""Who holds what, read from Docker itself: the `ds01.*` labels of every existing container."""

from __future__ import annotations

import math
import os
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
        if not slots or not is_managed(c) or corruption(c.labels) is not None:
            continue  # a corrupt one holds nothing; `corrupt_containers` reports it
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
        total = parse_gpueq(c.labels.get(naming.LABEL_GPU_GPUEQ, "")) or 0.0
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


def parse_gpueq(value: str) -> float | None:
    """A `ds01.gpu.gpueq` label: a finite number >= 0, else None (corrupt: `nan`, `inf`, `-1`, `x`)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return number


@dataclass(frozen=True)
class Corrupt:
    """A ds01 container whose GPU labels do not parse: it holds nothing, and `ds01 doctor` lists it."""

    container_id: str
    container: str
    user: str
    uid: int
    slots: str
    gpueq: str
    reason: str


def corruption(labels: Mapping[str, str]) -> str | None:
    """Why a container's GPU labels are corrupt, or None when they are sound (blank = CPU-only is sound)."""
    slots = [s for s in labels.get(naming.LABEL_GPU_SLOTS, "").split(",") if s]
    raw = labels.get(naming.LABEL_GPU_GPUEQ, "")
    if not slots:
        return None
    if parse_gpueq(raw) is None:
        return f"ds01.gpu.gpueq {raw!r} is not a finite number >= 0"
    uuids = [u for u in labels.get(naming.LABEL_GPU_UUIDS, "").split(",") if u]
    if len(uuids) != len(slots):
        return f"{len(slots)} slots but {len(uuids)} GPU UUIDs"
    return None


def corrupt_containers(containers: Sequence[ContainerSummary]) -> list[Corrupt]:
    """The ds01 containers among `containers` whose GPU labels are corrupt (see `corruption`)."""
    out = []
    for c in containers:
        if not is_managed(c):
            continue
        why = corruption(c.labels)
        if why is not None:
            out.append(
                Corrupt(
                    container_id=c.id,
                    container=c.name,
                    user=c.labels.get(naming.LABEL_USER, "?"),
                    uid=_int(c.labels.get(naming.LABEL_UID, "")),
                    slots=c.labels.get(naming.LABEL_GPU_SLOTS, ""),
                    gpueq=c.labels.get(naming.LABEL_GPU_GPUEQ, ""),
                    reason=why,
                )
            )
    return out


def foreign_holdings(
    gateway: Gateway, containers: Sequence[ContainerSummary], inventory: Inventory
) -> list[Holding]:
    """Slots that containers ds01 did not make reach through their device requests (never reclaimed), and
    slots with compute processes outside any ds01 container (`outside_holdings`)."""
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
    taken = {h.slot_id for h in holdings}
    return holdings + [h for h in outside_holdings(inventory, containers) if h.slot_id not in taken]


OUTSIDE_STATUS = "outside ds01"
_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
PROC = Path("/proc")


@dataclass(frozen=True)
class OutsideUse:
    """Compute processes on a slot that belong to no ds01 container: a host job, or a container ds01 did
    not make. The slot is busy: no one is given it while they run."""

    slot: Slot
    pids: tuple[int, ...]  # empty: the backend counts processes but names none
    users: tuple[str, ...]

    def describe(self) -> str:
        if not self.pids:
            return f"in use outside ds01 ({self.slot.processes} compute processes, pid unknown)"
        shown = ", ".join(f"pid {p}, {u}" for p, u in zip(self.pids, self.users, strict=True))
        return f"in use outside ds01 ({shown})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "slot": self.slot.id,
            "uuid": self.slot.uuid,
            "pids": list(self.pids),
            "users": list(self.users),
            "processes": self.slot.processes,
        }


def _process_container(pid: int, proc: Path = PROC) -> str | None:
    """The container id in a process's cgroup path (any driver, any parent), or None for a host process."""
    try:
        text = (proc / str(pid) / "cgroup").read_text()
    except OSError:
        return None
    found = _CONTAINER_ID.findall(text)
    return found[-1] if found else None


def _process_user(pid: int, proc: Path = PROC) -> str:
    import pwd

    try:
        uid = os.stat(proc / str(pid)).st_uid
    except OSError:
        return "?"
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def outside_uses(inventory: Inventory, containers: Sequence[ContainerSummary]) -> list[OutsideUse]:
    """Every slot with a compute process that runs in no ds01 container (NVML's host pids, or the simulated
    inventory's `processes`). A process in a ds01 container is that container's business, not this."""
    managed = {c.id for c in containers if is_managed(c)}
    out = []
    for slot in inventory.slots():
        if not slot.pids:
            if slot.processes > 0 and not _held_by_label(slot, containers):
                out.append(OutsideUse(slot, (), ()))
            continue
        pids = tuple(p for p in slot.pids if _process_container(p) not in managed)
        if pids:
            out.append(OutsideUse(slot, pids, tuple(_process_user(p) for p in pids)))
    return out


def _held_by_label(slot: Slot, containers: Sequence[ContainerSummary]) -> bool:
    """A count without pids on a slot a ds01 container holds: its own processes, as far as we can tell."""
    return any(
        is_managed(c)
        and c.state in HOLDING_STATES
        and slot.id in c.labels.get(naming.LABEL_GPU_SLOTS, "").split(",")
        for c in containers
    )


def outside_holdings(inventory: Inventory, containers: Sequence[ContainerSummary]) -> list[Holding]:
    """Slots busy with processes outside ds01, as holdings that count for no user's quota (uid -1)."""
    holdings = []
    for use in outside_uses(inventory, containers):
        who = ", ".join(sorted(set(use.users))) or "?"
        holdings.append(
            Holding(
                slot_id=use.slot.id,
                uuid=use.slot.uuid,
                gpueq=use.slot.gpueq,
                user=who,
                uid=-1,
                container="pid " + (", ".join(str(p) for p in use.pids) or "unknown"),
                status=use.describe(),
                since="",
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
