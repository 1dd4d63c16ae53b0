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
    cleaned = raw_name.strip().lower()
    base, uid = naming.split_container_name(cleaned)
    base = cleaned if CONTAINER_ID.fullmatch(cleaned) else naming.normalise_name(base)
    docker_name = naming.container_name(base, uid if uid is not None else owner.uid)
    raw = ctx.gateway.find(docker_name)
    if raw is None and CONTAINER_ID.fullmatch(cleaned):
        raw = ctx.gateway.find(cleaned)
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
    from ds01.atomic.holdings import corruption

    for other in list_views(ctx, owner=None):
        if corruption(other.labels) is not None:
            continue  # corrupt labels hold nothing
        shared = set(other.gpu_uuids) & set(uuids)
        if other.id != view.id and shared:
            raise OperationFailed(
                f"{view.name} cannot start: {other.user}'s container {other.name} holds the same GPU",
                hint=f"remove it (container-remove {view.name}) and create it again; the workspace stays",
            )


def _owner_of(ctx: Context, view: ContainerView, raw: Mapping[str, object]) -> User:
    from ds01.identity import lookup_user

    config = raw.get("Config")
    labels = (config.get("Labels") if isinstance(config, dict) else None) or {}
    uid = str(labels.get(naming.LABEL_UID, ""))
    try:
        return lookup_user(uid) if uid.isdigit() else _no_owner(view, uid)
    except NotFound:
        return _no_owner(view, uid)


def _no_owner(view: ContainerView, uid: str) -> User:
    raise PermissionDenied(
        f"{view.name}: its owner (uid {uid or '?'}) is not an account on this host",
        hint="an admin may remove it (container-remove --user ...)",
    )


def _start_pinned(ctx: Context, view: ContainerView) -> None:
    """The engine's start with every bind source judged again and pinned to the judged folder (F4): a folder
    swapped for a link since create, or a workspace no longer the owner's, stops it; nothing is created."""
    from ds01.atomic.host_paths import pinned_mounts

    raw = ctx.gateway.inspect(view.id)
    owner = _owner_of(ctx, view, raw)
    with pinned_mounts(ctx.config.paths, owner, view.docker_name, raw) as pins:
        ctx.gateway.start(view.id)
        pid = int((ctx.gateway.inspect(view.id).get("State") or {}).get("Pid") or 0)
        wrong = pins.mismatched(pid) if pid > 0 else []
    if wrong:
        ctx.gateway.kill(view.id)
        raise OperationFailed(
            f"{view.name}: the engine did not mount the checked folder at {', '.join(wrong)}; stopped it",
            hint="ds01d and dockerd must share a mount namespace (no PrivateMounts/ProtectSystem for ds01d)",
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
    _start_pinned(ctx, view)
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
    from ds01.atomic.removal import remove_and_release

    remove_and_release(ctx, view, reason="remove", force=force)
    from ds01.atomic.host_paths import forget_staging

    forget_staging(ctx.config.paths, view.docker_name)


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
    """The main process's output; the iterator has `close()` (ends a followed stream) when the engine
    stream has one."""
    return ctx.gateway.logs(view.id, follow=follow, tail="all" if tail is None else tail)
