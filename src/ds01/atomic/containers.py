"""The container verbs of L2: find (with ownership), list, start, stop, remove, pause, unpause, logs.

Ownership is the `ds01.uid` label: a user touches only containers whose label is their uid; admins touch any.
Creation lives in `container_create.py`, statistics in `container_stats.py`, shells in `shell.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ds01 import naming
from ds01.atomic.container_view import ContainerView
from ds01.context import Context
from ds01.errors import NotFound, OperationFailed, PermissionDenied, UsageError
from ds01.gpu.model import Slot
from ds01.identity import User

CONTAINER_ID = re.compile(r"^[0-9a-f]{12,64}$")
STATUSES = ("created", "running", "paused", "restarting", "exited", "dead")
STATUS_ALIASES = {"stopped": "exited", "up": "running"}
RUNNING = {"running", "restarting"}


def find_container(ctx: Context, raw_name: str, *, user: str | None = None) -> ContainerView:
    """NAME (a project name, `name._.uid`, or a container id) of the acting user, or of `--user` for admins.

    Not there: exit 3. There but someone else's: exit 5.
    """
    owner = ctx.target_user(user)
    name = naming.normalise_name(raw_name)
    base, uid = naming.split_container_name(name)
    docker_name = name if uid is not None else naming.container_name(name, owner.uid)
    raw = ctx.gateway.find(docker_name)
    if raw is None and CONTAINER_ID.fullmatch(name):
        raw = ctx.gateway.find(name)
    if raw is None:
        whose = "you have" if owner.uid == ctx.user.uid else f"{owner.name} has"
        raise NotFound(f"{whose} no container named {base!r}", hint="see container-list")
    view = ContainerView.from_inspect(raw)
    check_owner(ctx, view)
    return view


def check_owner(ctx: Context, view: ContainerView) -> None:
    if ctx.is_admin or (view.managed and view.uid == ctx.user.uid):
        return
    raise PermissionDenied(
        f"container {view.docker_name} is not yours",
        hint="you may act only on your own containers; see container-list",
    )


def owner_of(ctx: Context, view: ContainerView) -> str:
    return view.user or ctx.user.name


def log(ctx: Context, event: str, view: ContainerView, **details: object) -> None:
    owner = owner_of(ctx, view)
    if owner != ctx.user.name:
        details["by"] = ctx.user.name
    ctx.log(event, view.docker_name, user=owner, **details)


# -- listing ----------------------------------------------------------------------------------------
def parse_status(status: str | None) -> str | None:
    if not status:
        return None
    s = STATUS_ALIASES.get(status.lower(), status.lower())
    if s not in STATUSES:
        raise UsageError(f"unknown status {status!r}", hint=f"use one of {', '.join(STATUSES)} (or stopped)")
    return s


def list_views(ctx: Context, *, owner: User | None, status: str | None = None) -> list[ContainerView]:
    """One sparse listing filtered by labels (never one call per container); `owner=None` lists everyone's."""
    labels = [naming.MANAGED_FILTER]
    if owner is not None:
        labels.append(f"{naming.LABEL_UID}={owner.uid}")
    views = [ContainerView.from_summary(s) for s in ctx.gateway.containers(labels=labels)]
    wanted = parse_status(status)
    if wanted:
        views = [v for v in views if v.state == wanted]
    return sorted(views, key=lambda v: (v.user, v.name))


def known_slots(ctx: Context, views: list[ContainerView]) -> dict[str, Slot]:
    """uuid -> slot of the current inventory; probed only when some container holds a GPU."""
    if not any(v.gpu_slots for v in views):
        return {}
    from ds01.gpu.probe import probe_inventory

    return {s.uuid: s for s in probe_inventory(ctx.config.gpu).slots()}


# -- start ------------------------------------------------------------------------------------------
def check_gpus_present(ctx: Context, view: ContainerView) -> None:
    """A container whose GPU left the inventory (e.g. a MIG re-layout) or is held by another may not start."""
    uuids = view.gpu_uuids
    if not uuids:
        return
    known = known_slots(ctx, [view])
    gone = [u for u in uuids if u not in known]
    if gone:
        raise OperationFailed(
            f"{view.name} cannot start: its GPU {', '.join(gone)} is no longer on this host "
            "(the GPU or MIG layout changed)",
            hint=f"remove it (container-remove {view.name}) and create it again; the workspace stays",
        )
    for other in list_views(ctx, owner=None):
        shared = set(other.gpu_uuids) & set(uuids)
        if other.id != view.id and shared:
            raise OperationFailed(
                f"{view.name} cannot start: {other.user}'s container {other.name} holds the same GPU",
                hint=f"remove it (container-remove {view.name}) and create it again; the workspace stays",
            )


@dataclass(frozen=True)
class StartResult:
    view: ContainerView
    action: str  # "started", "unpaused" or "already running"


def start_container(ctx: Context, view: ContainerView) -> StartResult:
    if view.state in RUNNING:
        return StartResult(view, "already running")
    if view.state == "paused":
        ctx.gateway.unpause(view.id)
        log(ctx, "unpause", view)
        return StartResult(view, "unpaused")
    check_gpus_present(ctx, view)
    ctx.gateway.start(view.id)
    log(ctx, "start", view)
    return StartResult(view, "started")


# -- stop / remove ----------------------------------------------------------------------------------
def gpu_hold_hours(ctx: Context, view: ContainerView) -> float | None:
    from ds01.identity import lookup_user

    if view.uid is None:
        return None
    try:
        owner = lookup_user(str(view.uid))
    except NotFound:
        hold = ctx.config.defaults.get("gpu_hold_after_stop_h")
        return float(hold) if hold is not None else None
    return ctx.limits_for(owner).limits.gpu_hold_after_stop_h


def stop_container(ctx: Context, view: ContainerView, *, timeout: int = 10, force: bool = False) -> bool:
    """Stop (or with force kill) a container; False when it was not running."""
    if view.state not in RUNNING and view.state != "paused":
        return False
    if force:
        ctx.gateway.kill(view.id)
    else:
        ctx.gateway.stop(view.id, timeout=timeout)
    log(ctx, "stop", view, forced=force)
    return True


def remove_container(ctx: Context, view: ContainerView, *, force: bool = False) -> None:
    """Remove the container (its GPU is free once it is gone); the workspace is never touched."""
    if (view.state in RUNNING or view.state == "paused") and not force:
        raise OperationFailed(
            f"{view.name} is {view.state}", hint=f"stop it first (container-stop {view.name}) or pass --force"
        )
    ctx.gateway.remove(view.id, force=force)
    log(ctx, "remove", view, forced=force)
    if view.gpu_slots:
        log(ctx, "release", view, slots=view.gpu_slots, uuids=view.gpu_uuids, gpueq=view.gpueq)


# -- pause / logs -----------------------------------------------------------------------------------
def pause_container(ctx: Context, view: ContainerView) -> None:
    if view.state != "running":
        raise OperationFailed(
            f"{view.name} is {view.state}, not running", hint=f"start it with container-start {view.name}"
        )
    ctx.gateway.pause(view.id)
    log(ctx, "pause", view)


def unpause_container(ctx: Context, view: ContainerView) -> None:
    if view.state != "paused":
        raise OperationFailed(f"{view.name} is {view.state}, not paused")
    ctx.gateway.unpause(view.id)
    log(ctx, "unpause", view)


def container_logs(
    ctx: Context, view: ContainerView, *, follow: bool = False, tail: int | None = None
) -> Iterator[bytes]:
    return ctx.gateway.logs(view.id, follow=follow, tail="all" if tail is None else tail)


def summary_counts(views: list[ContainerView]) -> Mapping[str, int]:
    counts: dict[str, int] = {}
    for v in views:
        counts[v.state] = counts.get(v.state, 0) + 1
    return counts
