"""The resolved quotas as plain values (from ds01d's answer) and the report of what an export loses."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ds01.errors import OperationFailed

# The limit keys of resource-limits.yaml (CONTRACT §3), as ds01d resolves them.
LIMIT_KEYS = (
    "max_gpu_equivalents", "max_gpu_slots_per_container", "allow_full_gpu", "max_cpus", "memory",
    "memory_swap", "shm_size", "pids_limit", "max_containers_per_user", "max_runtime_h", "idle_timeout_h",
    "gpu_hold_after_stop_h", "container_hold_after_stop_h", "priority", "max_cpus_total", "memory_total",
    "extension_budget_h",
)  # fmt: skip


@dataclass(frozen=True)
class Account:
    """One user's (or a group's, for a member without an override) resolved limits."""

    name: str
    limits: Mapping[str, Any]
    group: str = ""
    uid: int | None = None
    gid: int | None = None
    admin: bool = False
    overrides: tuple[str, ...] = ()

    def get(self, key: str) -> Any:
        return self.limits.get(key)


@dataclass(frozen=True)
class QuotaSet:
    groups: tuple[Account, ...]
    users: tuple[Account, ...]
    default_group: str = ""
    registry: str | None = None

    def members(self, group: str) -> list[Account]:
        return [u for u in self.users if u.group == group]


@dataclass(frozen=True)
class Lossy:
    """A limit the target cannot say (or says only roughly): which key, where it is set, and why."""

    key: str
    reason: str
    where: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "where": list(self.where), "reason": self.reason}

    def line(self) -> str:
        where = f" [{', '.join(self.where)}]" if self.where else ""
        return f"{self.key}{where}: {self.reason}"


@dataclass
class Report:
    lossy: list[Lossy] = field(default_factory=list)

    def add(self, key: str, reason: str, where: Sequence[str] = ()) -> None:
        self.lossy.append(Lossy(key, reason, tuple(where)))


def _account(raw: Any, *, group: str = "") -> Account:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise OperationFailed("ds01d's quota answer is not what this client expects", hint="update ds01")
    limits = raw.get("limits") or {}
    return Account(
        name=raw["name"],
        limits={k: limits.get(k) for k in LIMIT_KEYS},
        group=str(raw.get("group") or group),
        uid=raw.get("uid"),
        gid=raw.get("gid"),
        admin=bool(raw.get("admin")),
        overrides=tuple(raw.get("overrides") or ()),
    )


def quota_set(answer: Mapping[str, Any]) -> QuotaSet:
    """From `GET /v1/admin/quotas`."""
    groups = tuple(_account(g, group=g.get("name", "")) for g in answer.get("groups") or ())
    cluster = answer.get("cluster") or {}
    return QuotaSet(
        groups=groups,
        users=tuple(_account(u) for u in answer.get("users") or ()),
        default_group=str(answer.get("default_group") or ""),
        registry=cluster.get("registry"),
    )


def account_of(answer: Mapping[str, Any]) -> tuple[Account, str | None]:
    """From `GET /v1/quotas`: (the user's account, the lab registry or None)."""
    return _account(answer.get("user")), (answer.get("cluster") or {}).get("registry")


# -- rounding shared by every target ---------------------------------------------------------------------


def whole_gpus(gpueq: float | None) -> int | None:
    """Whole GPUs for a GPU-equivalent share: rounded down, so no target grants more than ds01 does; a
    share under 1 (but over 0) becomes 1, so a user on MIG slices keeps one slice. None: unlimited."""
    if gpueq is None:
        return None
    if gpueq <= 0:
        return 0
    return max(1, math.floor(gpueq + 1e-9))


def whole_cpus(cpus: float | None) -> int | None:
    """Whole CPUs, rounded up: what a ds01 Slurm job asks for (`--cpus-per-task`), so the cap never holds
    back ds01's own jobs. None: unlimited."""
    if cpus is None:
        return None
    return max(1, math.ceil(cpus - 1e-9))


def is_whole(value: float | None) -> bool:
    return value is None or abs(value - round(value)) < 1e-9


def fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "unlimited" if value is None else str(value)


def where(qs: QuotaSet, key: str, keep: Any = bool) -> list[str]:
    """Where `key` is set to a value `keep` accepts: `group=value` for groups, `user=value` for overrides."""
    found = [f"{g.name}={fmt(g.get(key))}" for g in qs.groups if keep(g.get(key))]
    found += [f"user {u.name}={fmt(u.get(key))}" for u in qs.users if key in u.overrides and keep(u.get(key))]
    return found


def accounts_with_limits(qs: QuotaSet) -> list[Account]:
    return [*qs.groups, *qs.users]


def node_rules(report: Report, qs: QuotaSet, target: str, *, ds01_on_nodes: bool = True) -> None:
    """The lifecycle rules no scheduler knows: ds01d applies them where it runs the containers (Slurm
    nodes); elsewhere (Kubernetes) nothing does."""
    kept = f"{target} has no such rule; " + (
        "ds01d on each node keeps applying it" if ds01_on_nodes else "nothing applies it there"
    )
    for key, what in (
        ("idle_timeout_h", "idle GPU containers are stopped by ds01's reaper"),
        ("gpu_hold_after_stop_h", "a stopped container's GPU hold"),
        ("container_hold_after_stop_h", "a stopped CPU-only container's removal"),
    ):
        found = where(qs, key, lambda v: v is not None)
        if found:
            report.add(key, f"{what}: {kept}", found)
    found = where(qs, "extension_budget_h", lambda v: bool(v))
    if found:
        report.add(
            "extension_budget_h",
            f"container-extend hours are a ds01 grant; {target}'s time limit is fixed when a job starts",
            found,
        )
