"""The one way to reserve GPUs for a new container, race-free (CONTRACT §6).

    with reserve_gpus(ctx, owner, gpus=1, mig_profile=None, container="thesis") as r:
        if limit is not None and r.container_count >= limit: raise QuotaExceeded(...)
        ...create the container with r.labels, r.attachment...

The reservation lock is held for the whole `with` block: from reading who holds what until the container
carrying the `ds01.gpu.*` labels exists. A lock that cannot be had in time is an error (exit 1).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from ds01 import naming
from ds01.atomic.container_view import ContainerView
from ds01.atomic.holdings import foreign_holdings, gpu_holdings
from ds01.atomic.removal import remove_and_release
from ds01.context import Context
from ds01.errors import Ds01Error, NotFound, OperationFailed, QuotaExceeded
from ds01.events import check_writable, crash_point
from ds01.gpu.allocator import allocate_slots
from ds01.gpu.attach import Attachment, attachment_for
from ds01.gpu.lock import reservation_lock
from ds01.gpu.model import Allocation, Holding, Inventory
from ds01.gpu.probe import probe_inventory
from ds01.identity import User

LOCK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Reservation:
    """What the create command needs, decided under the lock."""

    allocation: Allocation
    attachment: Attachment
    container_count: int  # the owner's existing ds01 containers, stopped ones included
    labels: Mapping[str, str] = field(default_factory=dict)  # ds01.gpu.* labels; empty for CPU-only
    inventory: Inventory | None = None


def gpu_labels(allocation: Allocation) -> dict[str, str]:
    if not allocation.slots:
        return {}
    return {
        naming.LABEL_GPU_SLOTS: ",".join(allocation.slot_ids),
        naming.LABEL_GPU_UUIDS: ",".join(allocation.uuids),
        naming.LABEL_GPU_GPUEQ: f"{allocation.gpueq:g}",
    }


def ensure_state_dir(path: Path) -> None:
    """The state dir (locks, the reaper's records) is ds01d's alone: 0700, owned by root (CONTRACT §3)."""
    from ds01.events import ensure_private_dir

    try:
        ensure_private_dir(path)
    except OSError as exc:
        raise OperationFailed(
            f"cannot create the ds01 state directory {path}: {exc.strerror or exc}",
            hint="ask an admin to run `ds01 doctor`, or set DS01_STATE_DIR for ds01d",
        ) from exc


@contextlib.contextmanager
def reserve_gpus(
    ctx: Context,
    owner: User,
    *,
    gpus: int,
    mig_profile: str | None,
    container: str | None = None,
    pinned: tuple[int, ...] | None = None,
) -> Iterator[Reservation]:
    """Lock, read holdings, reclaim expired holds, allocate; the lock is held until the block ends.
    `pinned`: exactly these whole GPUs (cluster mode: the indices Slurm gave the job), or a refusal."""
    state_dir = ctx.config.paths.state_dir
    ensure_state_dir(state_dir)
    # nothing is created that could not be recorded: a full or read-only state or log dir refuses first
    check_writable(state_dir, "ds01 state")
    ensure_state_dir(ctx.config.paths.log_dir)
    check_writable(ctx.config.paths.log_dir, "ds01 event log")
    wants_gpu = gpus > 0 or bool(mig_profile)
    with reservation_lock(state_dir, timeout=LOCK_TIMEOUT_S):
        inventory = probe_inventory(ctx.config.gpu) if wants_gpu else None
        gateway = ctx.gateway
        containers = list(gateway.containers())
        holdings = gpu_holdings(gateway, ctx.config, containers=containers, inventory=inventory)
        gone = _reclaim(ctx, holdings)
        # a hold that could not be reclaimed still holds
        holdings = [replace(h, reclaimable=False) for h in holdings if h.container_id not in gone]
        if inventory is not None:
            holdings += foreign_holdings(gateway, containers, inventory)
        if pinned is not None and inventory is not None:
            allocation = _pinned(ctx, inventory, holdings, pinned, mig_profile)
        else:
            allocation = _allocate(ctx, owner, inventory, holdings, gpus, mig_profile, container)
        count = sum(
            1
            for c in containers
            if c.labels.get(naming.LABEL_UID) == str(owner.uid)
            and c.labels.get(naming.LABEL_MANAGED) == "true"
            and c.id not in gone
        )
        yield Reservation(
            allocation=allocation,
            attachment=attachment_for(allocation, ctx.config.gpu.attach),
            container_count=count,
            labels=gpu_labels(allocation),
            inventory=inventory,
        )
        crash_point("reserve.after_create")
        # a dry run leaves the block without creating anything: log only what really came to exist
        if allocation.slots and (container is None or ctx.gateway.find(container) is not None):
            ctx.log(
                "allocate",
                container,
                user=owner.name,
                slots=allocation.slot_ids,
                uuids=allocation.uuids,
                gpueq=allocation.gpueq,
            )


def _allocate(
    ctx: Context,
    owner: User,
    inventory: Inventory | None,
    holdings: list[Holding],
    gpus: int,
    mig_profile: str | None,
    container: str | None,
) -> Allocation:
    if inventory is None:
        return Allocation()
    try:
        return allocate_slots(
            inventory,
            holdings,
            ctx.limits_for(owner).limits,
            uid=owner.uid,
            user=owner.name,
            gpus=gpus,
            mig_profile=mig_profile,
        )
    except QuotaExceeded as err:  # NoCapacity included
        ctx.log(
            "reject",
            container,
            user=owner.name,
            gpus=gpus,
            mig_profile=mig_profile,
            code=err.code,
            reason=err.message,
        )
        raise


def _pinned(
    ctx: Context,
    inventory: Inventory,
    holdings: list[Holding],
    indices: tuple[int, ...],
    mig_profile: str | None = None,
) -> Allocation:
    """The slots of these Slurm gres indices (`slurm_jobs.gres_order`): whole GPUs, or MIG instances of
    `mig_profile`; Slurm's scheduler already applied the quotas. Slurm gave them to this job, so a stopped
    container still holding one (an earlier job's, ended) is removed (its workspace stays); a running one
    is refused."""
    from ds01.atomic.slurm_jobs import gres_order
    from ds01.gpu.allocator import busy_index, holder_of

    busy = busy_index(holdings)
    order = gres_order(inventory.slots())
    chosen = []
    for index in indices:
        slot = order[index] if 0 <= index < len(order) else None
        kind = f"MIG {mig_profile} instance" if mig_profile else "whole GPU"
        if slot is None or slot.kind != ("mig" if mig_profile else "gpu") or slot.profile != mig_profile:
            raise OperationFailed(
                f"Slurm's GPU {index} is no {kind} of this node",
                hint="the node's gres.conf and its GPUs disagree",
            )
        holder = holder_of(slot, busy)
        live = holder is not None and holder.status in ("running", "paused", "restarting")
        if holder is not None and holder.container_id and not live:
            try:
                view = ContainerView.from_inspect(ctx.gateway.inspect(holder.container_id))
                remove_and_release(ctx, view, reason="reclaim", by="ds01d")
            except NotFound:
                pass
            busy = {k: h for k, h in busy.items() if h.container_id != holder.container_id}
            holder = None
        if holder is not None:
            raise OperationFailed(
                f"GPU {index} is held by {holder.user}/{holder.container} outside Slurm",
                hint="on a Slurm node every GPU container must come through Slurm",
            )
        chosen.append(slot)
    return Allocation(tuple(chosen))


def _reclaim(ctx: Context, holdings: list[Holding]) -> set[str]:
    """Remove containers stopped for longer than their owner's GPU hold; their slots are free again."""
    by_container: dict[str, list[Holding]] = {}
    for h in holdings:
        if h.reclaimable and h.container_id:
            by_container.setdefault(h.container_id, []).append(h)
    gone: set[str] = set()
    for container_id, held in by_container.items():
        try:
            view = ContainerView.from_inspect(ctx.gateway.inspect(container_id))
            remove_and_release(ctx, view, reason="reclaim", by="ds01d")
        except NotFound:
            pass
        except Ds01Error as err:
            ctx.out.warn(f"could not reclaim the GPU held by {held[0].user}/{held[0].container}: {err}")
            continue
        gone.add(container_id)
        ctx.log(
            "reclaim",
            held[0].container,
            user=held[0].user,
            slots=[h.slot_id for h in held],
            stopped_since=held[0].since,
            reason="stopped for longer than its GPU hold",
        )
    return gone
