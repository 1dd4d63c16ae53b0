"""One reaper pass over every ds01 container, and the loop that repeats it.

A pass lists only containers labelled `ds01.managed=true`, inspects them in parallel, samples the running
GPU containers in one go, decides (idle.py, policy.py), and then, unless it is a dry run, warns, stops,
removes and records. Every action is an event with its reason.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ds01 import naming
from ds01.atomic.grants import Grants
from ds01.atomic.holdings import OutsideUse, gpu_holdings, outside_uses, parse_time
from ds01.config import Limits
from ds01.errors import Ds01Error, NotFound
from ds01.identity import User, lookup_user
from ds01.lifecycle import notify
from ds01.lifecycle.clock import Clock, iso, parse_iso
from ds01.lifecycle.decision import (
    CLEANUP,
    ERROR,
    IDLE_STOP,
    IDLE_WARNING,
    NONE,
    RUNTIME_STOP,
    RUNTIME_WARNING,
    STOPS,
    Decision,
)
from ds01.lifecycle.idle import IdleInputs, in_grace, judge_idle
from ds01.lifecycle.policy import Demand, demand, judge_created, judge_runtime, judge_stopped
from ds01.lifecycle.signals import Activity, container_pids, gather_activity, gpu_slots, read_slots
from ds01.lifecycle.state import ContainerState, StateStore
from ds01.limits import resolve_limits

if TYPE_CHECKING:
    from ds01.context import Context
    from ds01.docker_gateway import ContainerSummary, Gateway
    from ds01.gpu.model import Inventory


LIVE = ("running", "paused")


@dataclass(frozen=True)
class ReaperOptions:
    dry_run: bool = False
    sample_s: float = 1.0  # CPU sampling window, real seconds
    use_cgroups: bool = True  # False: ask the engine (stats, top) even when the cgroup files are readable


@dataclass(frozen=True)
class Seen:
    """One container as this pass sees it."""

    summary: ContainerSummary
    details: dict[str, Any]
    owner: User
    limits: Limits

    @property
    def id(self) -> str:
        return self.summary.id

    @property
    def labels(self) -> Any:
        return self.summary.labels

    @property
    def status(self) -> str:
        return str(self.details.get("State", {}).get("Status") or self.summary.state)

    @property
    def started_raw(self) -> str:
        return str(self.details.get("State", {}).get("StartedAt") or "")

    @property
    def started_at(self) -> datetime | None:
        return parse_time(self.started_raw)

    @property
    def finished_at(self) -> datetime | None:
        return parse_time(str(self.details.get("State", {}).get("FinishedAt") or ""))

    @property
    def created_at(self) -> datetime | None:
        return parse_time(str(self.details.get("Created") or "")) or (
            datetime.fromtimestamp(self.summary.created, UTC) if self.summary.created else None
        )

    @property
    def paused(self) -> bool:
        return self.status == "paused"

    @property
    def live(self) -> bool:
        """Running or paused: a paused container holds what a running one holds, and its time counts."""
        return self.status in LIVE

    @property
    def pid(self) -> int:
        return int(self.details.get("State", {}).get("Pid") or 0)

    @property
    def workspace(self) -> str | None:
        return self.labels.get(naming.LABEL_WORKSPACE) or None

    @property
    def holds_gpu(self) -> bool:
        return bool(gpu_slots(self.labels))

    @property
    def short_name(self) -> str:
        return naming.split_container_name(self.summary.name)[0]


@dataclass
class Entry:
    seen: Seen
    decision: Decision
    done: bool = False
    error: str | None = None
    delivered: notify.Delivery | None = None
    exit_code: int | None = None

    def as_dict(self) -> dict[str, Any]:
        s = self.seen
        out: dict[str, Any] = {
            "container": s.summary.name,
            "name": s.short_name,
            "id": s.id[:12],
            "user": s.owner.name,
            "uid": s.owner.uid,
            "status": s.status,
            "action": self.decision.action,
            "reason": self.decision.reason,
            "values": self.decision.values,
            "done": self.done,
        }
        if self.decision.level is not None:
            out["level"] = self.decision.level
        if self.delivered is not None:
            out["delivered"] = self.delivered.as_dict()
        if self.exit_code is not None:
            out["exit_code"] = self.exit_code
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class PassReport:
    at: datetime
    dry_run: bool
    demand: Demand | None
    entries: list[Entry] = field(default_factory=list)
    gpu_notice: str | None = None
    elapsed_s: float = 0.0
    outside: list[OutsideUse] = field(default_factory=list)  # GPU slots busy with processes outside ds01

    @property
    def actions(self) -> list[Entry]:
        return [e for e in self.entries if e.decision.acts]

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "dry_run": self.dry_run,
            "elapsed_s": round(self.elapsed_s, 3),
            "checked": len({e.seen.id for e in self.entries}),
            "demand": self.demand.as_dict() if self.demand else None,
            "gpu_notice": self.gpu_notice,
            "gpu_outside": [u.as_dict() for u in self.outside],
            "actions": [e.as_dict() for e in self.actions],
            "containers": [e.as_dict() for e in self.entries],
        }


# -- looking ---------------------------------------------------------------------------------------------
class _Owners:
    """Owners and their resolved limits, looked up once per uid per pass."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cache: dict[str, tuple[User, Limits]] = {}

    def get(self, labels: Any) -> tuple[User, Limits]:
        uid = str(labels.get(naming.LABEL_UID, ""))
        if uid not in self.cache:
            name = str(labels.get(naming.LABEL_USER, "") or uid or "unknown")
            try:
                user = lookup_user(uid) if uid.isdigit() else lookup_user(name)
            except NotFound:  # an account gone from the host: the default group's limits apply
                user = User(
                    name=name, uid=int(uid) if uid.isdigit() else -1, gid=-1, home=Path("/nonexistent")
                )
            self.cache[uid] = (user, resolve_limits(self.ctx.config, user).limits)
        return self.cache[uid]


def _inspect_all(gateway: Gateway, summaries: list[ContainerSummary]) -> dict[str, dict[str, Any]]:
    def one(cid: str) -> tuple[str, dict[str, Any] | None]:
        try:
            return cid, gateway.inspect(cid)
        except NotFound:  # removed since the listing
            return cid, None

    if not summaries:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(summaries))) as pool:
        found = dict(pool.map(one, [c.id for c in summaries]))
    return {cid: d for cid, d in found.items() if d is not None}


def _probe(ctx: Context) -> tuple[Inventory | None, str | None]:
    from ds01.gpu.probe import probe_inventory

    try:
        inventory = probe_inventory(ctx.config.gpu)
    except Ds01Error as err:  # no GPU readings this pass: GPU signals count as unknown, not busy
        return None, f"GPU probe failed: {err}"
    return inventory, inventory.notice


def _record(records: dict[str, ContainerState], seen: Seen) -> ContainerState:
    """The container's record for this pass. A (re)start begins a fresh idle record; the first start seen
    is kept for good (max_runtime_h counts from it), whatever stops and starts come after."""
    record = copy.deepcopy(records.get(seen.id)) or ContainerState(id=seen.id)
    if seen.live and record.started_at != seen.started_raw:  # new, or restarted since
        record.reset(seen.started_raw)
    started = seen.started_at
    first = parse_iso(record.first_started_at)
    if started is not None and (first is None or started < first):
        record.first_started_at = iso(started)
    record.name = seen.summary.name
    return record


def _first_start(seen: Seen, record: ContainerState, now: datetime) -> datetime:
    first = parse_iso(record.first_started_at)
    started = seen.started_at or now
    return min(first, started) if first is not None else started


def _decide_running(
    seen: Seen,
    record: ContainerState,
    now: datetime,
    ctx: Context,
    high_demand: bool,
    inventory: Inventory | None,
    activity: Activity | None,
    grants: Grants,
) -> list[Decision]:
    started = seen.started_at or now
    exemption = grants.exemption(seen.owner.name, now)
    if exemption is not None:  # an admin's grant: no runtime or idle stop until it ends by itself
        return [
            Decision(
                NONE,
                f"exempt until {exemption.until} ({exemption.reason}, granted by {exemption.by})",
                {"exempt_until": exemption.until},
            )
        ]
    limits = seen.limits
    extra_h = grants.extra_h(seen.id)
    if extra_h and limits.max_runtime_h is not None:  # container-extend, within the owner's budget
        limits = dataclasses.replace(limits, max_runtime_h=limits.max_runtime_h + extra_h)
    runtime = judge_runtime(record, now, _first_start(seen, record, now), limits)
    if not seen.holds_gpu:
        return [runtime]
    policies = ctx.config.policies
    mtime = notify.keepalive_mtime(seen.workspace)
    if seen.paused:  # a frozen container does no work: every check while paused is an idle one
        activity = Activity(cpu_percent=0.0, source="paused")
    inputs = IdleInputs(
        now=now,
        started_at=started,
        timeout_h=seen.limits.idle_timeout_h,
        high_demand=high_demand,
        gpu=read_slots(seen.labels, inventory, policies.gpu_idle_threshold),
        activity=activity,
        keepalive_mtime=datetime.fromtimestamp(mtime, UTC) if mtime is not None else None,
        paused=seen.paused,
    )
    idle = judge_idle(record, inputs, policies)
    if runtime.action == RUNTIME_STOP:
        return [runtime]
    if idle.action == IDLE_STOP:
        return [idle]
    acting = [d for d in (idle, runtime) if d.acts]
    if acting:
        return acting
    return [Decision(idle.action, idle.reason, {**runtime.values, **idle.values})]


def _decide(
    seen: Seen,
    record: ContainerState | None,
    now: datetime,
    ctx: Context,
    dem: Demand,
    inventory: Inventory | None,
    activity: Activity | None,
    grants: Grants,
) -> list[Decision]:
    status = seen.status
    if seen.live and record is not None:
        return _decide_running(seen, record, now, ctx, dem.high, inventory, activity, grants)
    if status == "created" and seen.started_at is None:
        return [judge_created(now, seen.created_at, ctx.config.policies)]
    if status in ("exited", "dead"):
        return [judge_stopped(now, seen.finished_at, seen.holds_gpu, seen.limits)]
    return [Decision(NONE, f"{status}: not checked")]


def _needs_sample(seen: Seen, now: datetime, ctx: Context) -> bool:
    if seen.status != "running" or not seen.holds_gpu or seen.limits.idle_timeout_h is None:
        return False
    return not in_grace(seen.started_at or now, now, ctx.config.policies)


# -- acting ---------------------------------------------------------------------------------------------
def _recipient(gateway: Gateway, seen: Seen) -> notify.Recipient:
    owner = seen.owner
    try:
        groups = tuple(os.getgrouplist(owner.name, owner.gid)) if owner.gid >= 0 else ()
    except OSError:
        groups = (owner.gid,)
    pids = tuple(container_pids(gateway, seen.id, seen.pid)) if seen.live else ()
    return notify.Recipient(owner.uid, owner.gid, groups, seen.workspace, pids)


def _notice(entry: Entry, ctx: Context) -> notify.Notice:
    d, name = entry.decision, entry.seen.short_name
    if d.action == IDLE_WARNING:
        return notify.idle_warning(name, d.level or 0, d.values, ctx.config.policies.keepalive_max_duration_h)
    if d.action == RUNTIME_WARNING:
        return notify.runtime_warning(name, d.level or 0, d.values)
    if d.action == IDLE_STOP:
        return notify.idle_stopped(name, d.values)
    if d.action == RUNTIME_STOP:
        return notify.runtime_stopped(name, d.values)
    return notify.cleaned_up(name, d.reason)


def _deliver(entry: Entry, ctx: Context, now: datetime, recipient: notify.Recipient | None = None) -> None:
    if entry.seen.owner.uid < 0:
        return
    recipient = recipient or _recipient(ctx.gateway, entry.seen)
    entry.delivered = notify.deliver(_notice(entry, ctx), recipient, now, ctx.config.notify)


def _log(ctx: Context, entry: Entry, **extra: Any) -> None:
    d, s = entry.decision, entry.seen
    details = {"reason": d.reason, "name": s.short_name, "values": d.values, **extra}
    if d.level is not None:
        details["level"] = d.level
    if entry.delivered is not None:
        details["delivered"] = entry.delivered.as_dict()
    ctx.log(d.action, s.summary.name, user=s.owner.name, **details)


def _remove(entry: Entry, ctx: Context) -> None:
    """Through the one remove path (events `remove` and `release`, reason = the action, by the reaper)."""
    from ds01.atomic.container_view import ContainerView
    from ds01.atomic.removal import remove_and_release

    view = ContainerView.from_inspect(entry.seen.details)
    if not view.id:
        view = ContainerView.from_summary(entry.seen.summary)
    remove_and_release(ctx, view, reason=entry.decision.action, by="reaper", force=False)


def _stop(entry: Entry, ctx: Context) -> bool:
    """Stop (SIGTERM, then SIGKILL after the grace) and, for an idle stop, remove. True when removed.
    Runs in a worker thread, so it only talks to the engine; notices and events follow in the caller."""
    gateway, seen = ctx.gateway, entry.seen
    try:
        if seen.paused:  # a frozen process cannot act on SIGTERM: thaw it first, so it can save its work
            gateway.unpause(seen.id)
        gateway.stop(seen.id, timeout=ctx.config.policies.sigterm_grace_s)
    except Ds01Error as err:
        entry.error = str(err)
        return False
    entry.done = True
    try:
        code = gateway.inspect(seen.id).get("State", {}).get("ExitCode")
        entry.exit_code = int(code) if code is not None else None
    except Ds01Error:
        pass
    return entry.decision.action == IDLE_STOP  # removed by the caller, through the one remove path


def _cleanup(entry: Entry, ctx: Context, now: datetime) -> None:
    try:
        _remove(entry, ctx)
    except NotFound:
        entry.error = "already gone"
        return
    except Ds01Error as err:
        entry.error = str(err)
        return
    entry.done = True
    _deliver(entry, ctx, now)
    _log(ctx, entry, removed=True, status=entry.seen.status)


def _warn(entry: Entry, ctx: Context, now: datetime) -> None:
    _deliver(entry, ctx, now)
    entry.done = True
    _log(ctx, entry)


def _carry_out(entries: list[Entry], ctx: Context, now: datetime) -> None:
    for entry in entries:
        if entry.decision.action in (IDLE_WARNING, RUNTIME_WARNING):
            _warn(entry, ctx, now)
        elif entry.decision.action == CLEANUP:
            _cleanup(entry, ctx, now)
    stops = [e for e in entries if e.decision.action in STOPS]
    if not stops:
        return
    recipients = [_recipient(ctx.gateway, e.seen) for e in stops]  # before the stop: its shells go with it
    with ThreadPoolExecutor(max_workers=min(8, len(stops))) as pool:  # each may wait out the whole grace
        to_remove = list(pool.map(lambda e: _stop(e, ctx), stops))
    grace = ctx.config.policies.sigterm_grace_s
    for entry, recipient, remove in zip(stops, recipients, to_remove, strict=True):
        gone = False
        if remove:
            try:
                _remove(entry, ctx)
                gone = True
            except Ds01Error as err:  # stopped but still there: the hold rules remove it later
                entry.error = f"stopped, but not removed: {err}"
        if entry.done:
            from ds01.atomic.slurm_jobs import cancel_job_of  # cluster mode: Slurm frees the GPUs at once

            seen = entry.seen
            cancel_job_of(ctx, seen.labels, seen.summary.name, seen.owner.name, entry.decision.action)
            _deliver(entry, ctx, now, recipient)
            _log(ctx, entry, exit_code=entry.exit_code, removed=gone, signal="SIGTERM", grace_s=grace)


def _save(
    store: StateStore,
    entries: list[Entry],
    records: dict[str, ContainerState],
    stored: dict[str, ContainerState],
    listed: set[str],
) -> None:
    gone = {
        e.seen.id for e in entries if e.done and e.decision.action in (IDLE_STOP, CLEANUP) and not e.error
    }
    for cid, record in records.items():
        if cid not in gone and record != stored.get(cid):
            store.save(record)
    store.prune({cid for cid in listed if cid not in gone})


def _refresh_totals(ctx: Context, seen: list[Seen]) -> None:
    """Per-user totals as the config says now, written to the parents of the users seen (a config edit
    reaches the containers that already run)."""
    from ds01.atomic.user_cgroup import refresh

    owners = {s.owner.uid: s.limits for s in seen if s.owner.uid >= 0}
    refresh(ctx, ctx.config, list(owners.items()))


def _prune_images(ctx: Context) -> None:
    from ds01.atomic.images import prune_images

    try:
        prune_images(ctx)
    except Ds01Error as err:  # the engine busy or gone: the next pass tries again
        import logging

        logging.getLogger("ds01d").warning("image prune: %s", err)


def _log_outside(ctx: Context, uses: list[OutsideUse]) -> None:
    """One `gpu_outside` event when a process outside ds01 is first seen on a slot (not at every pass)."""
    from ds01.lifecycle.state import load_seen_outside, save_seen_outside

    state_dir = ctx.config.paths.state_dir
    before = load_seen_outside(state_dir)
    now_seen = {f"{u.slot.uuid}:{','.join(map(str, u.pids)) or '?'}": u for u in uses}
    for key, use in now_seen.items():
        if key not in before:
            user = use.users[0] if use.users and use.users[0] != "?" else "root"
            ctx.log(
                "gpu_outside",
                None,
                user=user,
                slot=use.slot.id,
                uuid=use.slot.uuid,
                pids=list(use.pids),
                users=list(use.users),
                reason=f"GPU slot {use.slot.id} {use.describe()}: nobody is given it while this runs",
            )
    if set(now_seen) != before:
        save_seen_outside(state_dir, set(now_seen))


# -- the pass and the loop ------------------------------------------------------------------------------
def run_pass(ctx: Context, clock: Clock, options: ReaperOptions | None = None) -> PassReport:
    options = options or ReaperOptions()
    started = time.monotonic()
    now = clock.now()
    gateway = ctx.gateway
    summaries = gateway.containers(labels=[naming.MANAGED_FILTER])
    details = _inspect_all(gateway, summaries)
    owners = _Owners(ctx)
    seen = [Seen(c, details[c.id], *owners.get(c.labels)) for c in summaries if c.id in details]
    wants_probe = ctx.config.gpu.backend != "none" or any(s.holds_gpu for s in seen)
    inventory, notice = _probe(ctx) if wants_probe else (None, None)
    holdings = gpu_holdings(
        gateway, ctx.config, now=now, containers=[s.summary for s in seen], inventory=inventory
    )
    dem = demand(holdings, inventory, ctx.config.policies)
    store = StateStore(ctx.config.paths.state_dir)
    stored = store.load_all()
    records = {s.id: _record(stored, s) for s in seen if s.started_at is not None}
    to_sample = {s.id: s.pid for s in seen if _needs_sample(s, now, ctx)}
    activity = gather_activity(gateway, to_sample, options.sample_s, use_cgroups=options.use_cgroups)
    grants = Grants(ctx.config.paths.state_dir)
    report = PassReport(now, options.dry_run, dem if inventory else None, gpu_notice=notice)
    report.outside = outside_uses(inventory, summaries) if inventory else []
    for s in seen:
        try:
            decisions = _decide(s, records.get(s.id), now, ctx, dem, inventory, activity.get(s.id), grants)
        except Ds01Error as err:
            decisions = [Decision(ERROR, str(err))]
        report.entries += [Entry(s, d) for d in decisions]
    if not options.dry_run:
        _refresh_totals(ctx, seen)
        _carry_out(report.actions, ctx, now)
        _save(store, report.entries, records, stored, {s.id for s in seen})
        _log_outside(ctx, report.outside)
        _prune_images(ctx)
    report.elapsed_s = time.monotonic() - started
    return report


def locked_pass(ctx: Context, clock: Clock, options: ReaperOptions) -> PassReport:
    """A pass under the reaper's lock; a dry run reads only, so it neither waits for nor takes the lock."""
    if options.dry_run:
        return run_pass(ctx, clock, options)
    with StateStore(ctx.config.paths.state_dir).lock():
        return run_pass(ctx, clock, options)
