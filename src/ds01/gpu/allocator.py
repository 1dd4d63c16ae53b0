"""Who may have which GPU slot: pure logic over (inventory, holdings, the user's limits, the request).

Rules (CONTRACT §2, §6):
- a slot is never given twice; a holding marked `reclaimable` (stopped past its GPU hold) counts as free;
- `allow_full_gpu`, `max_gpu_slots_per_container` and `max_gpu_equivalents` (MIG slices by weight) hold;
- `--gpus N` gives full GPUs when the user may have them and N are free within quota, else MIG slices;
- MIG requests are packed onto GPUs already partly used, so untouched GPUs stay whole; ties by index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ds01.config import Limits
from ds01.errors import NoCapacity, QuotaExceeded, UsageError
from ds01.gpu.model import Allocation, Holding, Inventory, Slot

EPSILON = 1e-6
MAX_LISTED = 6


def allocate_slots(
    inventory: Inventory,
    holdings: Sequence[Holding],
    limits: Limits,
    *,
    uid: int,
    user: str,
    gpus: int,
    mig_profile: str | None,
) -> Allocation:
    if gpus < 0:
        raise UsageError(f"--gpus must be 0 or more, got {gpus}")
    if gpus == 0 and not mig_profile:
        return Allocation()
    count = max(gpus, 1)
    _check_slots_per_container(limits, count)
    busy = busy_index(holdings)
    mine = [h for h in holdings if h.uid == uid and not h.reclaimable]
    used = sum(h.gpueq for h in mine)
    room = None if limits.max_gpu_equivalents is None else limits.max_gpu_equivalents - used
    pools = _pools(inventory, limits, mig_profile)
    short_of_quota: list[Slot] | None = None
    for pool in pools:
        free = _packing_order(inventory, [s for s in pool if not holder_of(s, busy)], busy)
        if len(free) < count:
            continue
        chosen = _pick(free, count, room)
        if chosen is not None:
            return Allocation(tuple(chosen))
        short_of_quota = short_of_quota or _cheapest(free, count)
    if short_of_quota is not None:
        raise _quota_error(user, limits, mine, used, short_of_quota)
    raise _capacity_error(inventory, holdings, pools, count, mig_profile)


def _check_slots_per_container(limits: Limits, count: int) -> None:
    cap = limits.max_gpu_slots_per_container
    if cap is not None and count > cap:
        raise QuotaExceeded(
            f"a container may hold at most {cap} GPU slot{'s' if cap != 1 else ''}, you asked for {count}",
            hint=f"ask for --gpus {cap} or fewer",
        )


def _pools(inventory: Inventory, limits: Limits, mig_profile: str | None) -> list[list[Slot]]:
    """Candidate slot lists in order of preference."""
    slots = inventory.slots()
    migs = [s for s in slots if s.kind == "mig"]
    if mig_profile:
        known = sorted({s.profile for s in migs if s.profile})
        if mig_profile not in known:
            have = f"this host has {', '.join(known)}" if known else "this host has no MIG slices"
            raise UsageError(f"unknown MIG profile {mig_profile!r}", hint=have)
        return [[s for s in migs if s.profile == mig_profile]]
    pools = []
    if limits.allow_full_gpu:
        pools.append([s for s in slots if s.kind == "gpu"])
    pools.append(migs)
    return pools


def _packing_order(inventory: Inventory, free: list[Slot], busy: dict[str, Holding]) -> list[Slot]:
    """Partly used GPUs first, fullest first (best fit), untouched GPUs last; ties by index."""
    free_share: dict[int, float] = {}
    for s in inventory.slots():
        if not holder_of(s, busy):
            free_share[s.gpu_index] = free_share.get(s.gpu_index, 0.0) + s.gpueq
    whole = {g.index: sum(s.gpueq for s in g.slots()) for g in inventory.gpus}

    def key(s: Slot) -> tuple[bool, float, int, int]:
        share = free_share[s.gpu_index]
        untouched = share >= whole.get(s.gpu_index, 0.0) - EPSILON
        return (untouched, 0.0 if untouched else round(share, 6), s.gpu_index, _mig_index(s.id))

    return sorted(free, key=key)


def _mig_index(slot_id: str) -> int:
    tail = slot_id.rpartition(".")[2]
    return int(tail) if tail.isdigit() else 0


def busy_index(holdings: Iterable[Holding], *, with_reclaimable: bool = False) -> dict[str, Holding]:
    """Held slot ids, UUIDs and whole-GPU indices -> the holding, so a relabelled slot is still caught."""
    busy: dict[str, Holding] = {}
    for h in holdings:
        if h.reclaimable and not with_reclaimable:
            continue
        busy[f"id:{h.slot_id}"] = h
        if h.uuid:
            busy[f"uuid:{h.uuid}"] = h
        gpu, dot, _ = h.slot_id.partition(".")
        busy[f"gpu:{gpu}"] = h
        if not dot:
            busy[f"whole:{gpu}"] = h
    return busy


def holder_of(slot: Slot, busy: dict[str, Holding]) -> Holding | None:
    hit = busy.get(f"id:{slot.id}") or busy.get(f"uuid:{slot.uuid}")
    # after a MIG reconfiguration a label may name the whole GPU while the inventory has slices, or back
    if hit is None:
        hit = busy.get(f"{'gpu' if slot.kind == 'gpu' else 'whole'}:{slot.gpu_index}")
    return hit


def _pick(free: list[Slot], count: int, room: float | None) -> list[Slot] | None:
    """The first `count` slots in preference order that fit the room left in the quota.

    A slot is taken only if the cheapest slots after it can still complete the request within the room.
    """
    if room is None:
        return free[:count]
    chosen: list[Slot] = []
    left = room
    for i, slot in enumerate(free):
        still = count - len(chosen) - 1
        cheapest_rest = sum(sorted(s.gpueq for s in free[i + 1 :])[:still])
        if len(free) - i - 1 < still or slot.gpueq + cheapest_rest > left + EPSILON:
            continue
        chosen.append(slot)
        left -= slot.gpueq
        if len(chosen) == count:
            return chosen
    return None


def _cheapest(free: list[Slot], count: int) -> list[Slot]:
    return sorted(free, key=lambda s: s.gpueq)[:count]


def _quota_error(
    user: str, limits: Limits, mine: list[Holding], used: float, wanted: list[Slot]
) -> QuotaExceeded:
    need = sum(s.gpueq for s in wanted)
    held = (
        "; ".join(f"{h.container} holds {h.slot_id} ({_eq(h.gpueq)})" for h in mine[:MAX_LISTED]) or "nothing"
    )
    more = f"; and {len(mine) - MAX_LISTED} more" if len(mine) > MAX_LISTED else ""
    return QuotaExceeded(
        f"{user} would exceed their GPU quota: holds {_eq(used)} of {_eq(limits.max_gpu_equivalents or 0)} "
        f"gpueq, this needs {_eq(need)} more ({held}{more})",
        hint="stop and remove a container you no longer need (container-retire NAME), or ask for a smaller "
        "MIG profile",
    )


def _capacity_error(
    inventory: Inventory,
    holdings: Sequence[Holding],
    pools: list[list[Slot]],
    count: int,
    mig_profile: str | None,
) -> NoCapacity:
    wanted = mig_profile or "GPU"
    candidates = [s for pool in pools for s in pool]
    if not candidates:
        if not inventory.slots():
            why = inventory.notice or f"the {inventory.backend} GPU backend reports no GPUs"
            return NoCapacity(f"no GPU slot on this host: {why}", hint="use --cpu-only")
        return NoCapacity(
            "your limits allow MIG slices only and this host has none free to give",
            hint="use --cpu-only, or ask an admin for allow_full_gpu",
        )
    busy = busy_index(holdings)
    held = [(s, h) for s in candidates if (h := holder_of(s, busy)) is not None]
    lines = [
        f"{s.id} {h.user}/{h.container} ({h.status} since {h.since or '?'})" for s, h in held[:MAX_LISTED]
    ]
    if len(held) > MAX_LISTED:
        lines.append(f"and {len(held) - MAX_LISTED} more")
    free = len(candidates) - len(held)
    return NoCapacity(
        f"no capacity for {count} {wanted} slot{'s' if count != 1 else ''} ({free} free): held by "
        + "; ".join(lines),
        hint="see gpu-status, wait for a slot, or use --cpu-only",
    )


def _eq(value: float) -> str:
    return f"{value:.3g}"
