"""`gpu-status`: every GPU slot with its holder, or free (CONTRACT §4 JSON)."""

from __future__ import annotations

from typing import Any

from ds01.atomic.holdings import Gateway, foreign_holdings, gpu_holdings
from ds01.config import Config
from ds01.gpu.allocator import busy_index, holder_of
from ds01.gpu.model import Holding, Inventory, Slot
from ds01.gpu.probe import probe_inventory


def _reader(config: Config) -> Gateway:
    """A fresh engine connection, when the caller (ds01d passes its request's gateway) gave none."""
    from ds01.docker_gateway import connect

    return connect()


def gpu_status(config: Config, *, free_only: bool = False, reader: Gateway | None = None) -> dict[str, Any]:
    inventory = probe_inventory(config.gpu)
    reader = reader or _reader(config)
    containers = reader.containers()
    holdings = gpu_holdings(reader, config, containers=containers, inventory=inventory)
    holdings += foreign_holdings(reader, containers, inventory)
    busy = busy_index(holdings, with_reclaimable=True)
    rows = [_slot_row(s, holder_of(s, busy)) for s in inventory.slots()]
    allocated = sum(r["gpueq"] for r in rows if r["holder"] and not r["holder"]["reclaimable"])
    total = inventory.total_gpueq
    if free_only:
        rows = [r for r in rows if r["holder"] is None or r["holder"]["reclaimable"]]
    return {
        "backend": inventory.backend,
        "driver_version": inventory.driver_version,
        "notice": inventory.notice,
        "slots": rows,
        "unusable_gpus": _unusable(inventory),
        "totals": {
            "gpueq": round(total, 4),
            "allocated_gpueq": round(allocated, 4),
            "free_gpueq": round(max(total - allocated, 0.0), 4),
        },
    }


def _slot_row(slot: Slot, holder: Holding | None) -> dict[str, Any]:
    return {
        "id": slot.id,
        "uuid": slot.uuid,
        "kind": slot.kind,
        "gpu_index": slot.gpu_index,
        "name": slot.name,
        "profile": slot.profile,
        "gpueq": round(slot.gpueq, 4),
        "memory_mib": slot.memory_mib,
        "utilization": slot.utilization,
        "processes": slot.processes,
        "holder": None
        if holder is None
        else {
            "user": holder.user,
            "container": holder.container,
            "status": holder.status,
            "since": holder.since,
            "reclaimable": holder.reclaimable,
        },
    }


def _unusable(inventory: Inventory) -> list[dict[str, Any]]:
    return [
        {
            "index": g.index,
            "uuid": g.uuid,
            "name": g.name,
            "reason": "MIG is enabled but no MIG instances exist",
        }
        for g in inventory.gpus
        if not g.usable
    ]
