"""The rules of the wait for GPUs (`container-deploy --wait`), as pure functions plus one look at capacity.

Order: higher `priority` first, then less recent use (GPU-equivalent hours over `queue.fair_share_window_h`,
from the `allocate`/`release` events), then arrival. When capacity frees, the first request in that order
that fits is granted; a request passed over `queue.max_bypass` times reserves the next capacity that fits
it (nobody behind it is granted until it is).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from ds01.config import Config
from ds01.context import Context
from ds01.errors import NoCapacity, QuotaExceeded
from ds01.gpu.allocator import allocate_slots
from ds01.gpu.model import Holding, Inventory
from ds01.identity import User


class Queued(Protocol):
    @property
    def priority(self) -> int: ...
    @property
    def recent_gpueq_h(self) -> float: ...
    @property
    def arrived(self) -> float: ...
    @property
    def seq(self) -> int: ...
    @property
    def passed_over(self) -> int: ...


Q = TypeVar("Q", bound=Queued)


def order_key(e: Queued) -> tuple[int, float, float, int]:
    return (-e.priority, round(e.recent_gpueq_h, 6), e.arrived, e.seq)


def in_order(entries: Sequence[Q]) -> list[Q]:
    return sorted(entries, key=order_key)


def choose(ordered: Sequence[Q], fits: Callable[[Q], bool], max_bypass: int) -> tuple[Q | None, list[Q]]:
    """The request to grant now (or None) and the ones it passes over. A request passed over `max_bypass`
    times that does not fit stops the search: the capacity after it is kept for it."""
    for i, e in enumerate(ordered):
        if fits(e):
            return e, list(ordered[:i])
        if e.passed_over >= max_bypass:
            return None, []
    return None, []


@dataclass(frozen=True)
class Capacity:
    """Who holds what, read once for one round of grants (stopped containers past their hold count as free:
    the create reclaims them under the reservation lock)."""

    inventory: Inventory | None
    holdings: list[Holding]


def look(ctx: Context) -> Capacity:
    from ds01.atomic.holdings import foreign_holdings, gpu_holdings
    from ds01.gpu.probe import probe_inventory

    inventory = probe_inventory(ctx.config.gpu)
    containers = list(ctx.gateway.containers())
    holdings = gpu_holdings(ctx.gateway, ctx.config, containers=containers, inventory=inventory)
    held = [h for h in holdings if not h.reclaimable]
    return Capacity(inventory, held + foreign_holdings(ctx.gateway, containers, inventory))


def slots_wanted(gpus: int | None, mig_profile: str | None, cpu_only: bool) -> int:
    if cpu_only:
        return 0
    if mig_profile and not gpus:
        return 1
    return gpus or 0


def fits(ctx: Context, cap: Capacity, owner: User, *, gpus: int, mig_profile: str | None) -> bool:
    """Whether the request would be given slots now (no event is logged: this only looks)."""
    if cap.inventory is None:
        return False
    try:
        allocate_slots(
            cap.inventory, cap.holdings, ctx.limits_for(owner).limits, uid=owner.uid, user=owner.name,
            gpus=gpus, mig_profile=mig_profile,
        )  # fmt: skip
    except QuotaExceeded:  # NoCapacity included
        return False
    return True


def check_worth_waiting(
    ctx: Context, cap: Capacity, owner: User, *, gpus: int, mig_profile: str | None
) -> None:
    """Refuse at once what waiting would not give: a shape this host never has, or more than the user's
    own quota allows beside what they hold now (they must retire something first). A box full of the
    user's own containers is worth waiting for: those end by their idle and runtime limits."""
    if cap.inventory is None:
        raise NoCapacity("no GPU on this host: waiting would not help", hint="use --cpu-only")
    limits = ctx.limits_for(owner).limits
    try:
        wanted = allocate_slots(
            cap.inventory, [], limits, uid=owner.uid, user=owner.name, gpus=gpus, mig_profile=mig_profile
        )
    except NoCapacity as err:
        raise NoCapacity(f"{err.message}: waiting would not help", hint=err.hint) from err
    except QuotaExceeded as err:
        raise QuotaExceeded(f"{err.message}: waiting would not help", hint=err.hint) from err
    used = sum(h.gpueq for h in cap.holdings if h.uid == owner.uid)
    cap_eq = limits.max_gpu_equivalents
    if cap_eq is not None and used + wanted.gpueq > cap_eq + 1e-6:
        raise QuotaExceeded(
            f"{owner.name} holds {used:g} of {cap_eq:g} GPU-equivalents and this needs "
            f"{wanted.gpueq:g} more: waiting would not help unless you retire something",
            hint="retire one of your containers (container-list shows them), then deploy again",
        )


def recent_use(config: Config, now: datetime | None = None) -> dict[str, float]:
    """GPU-equivalent hours per user over the last `queue.fair_share_window_h`, from the event log."""
    from ds01.atomic.usage import all_events, usage_report

    now = now or datetime.now(UTC)
    since = now - timedelta(hours=config.queue.fair_share_window_h)
    report = usage_report(
        all_events(config.paths.log_dir, not_before=since), since=since, until=now, now=now,
        group_of=lambda _u: "", cpus_of=lambda _u: None,
    )  # fmt: skip
    out: dict[str, float] = {}
    for (user, _group, _project), figures in report.rows.items():
        out[user] = out.get(user, 0.0) + figures.gpu_hours
    return out
