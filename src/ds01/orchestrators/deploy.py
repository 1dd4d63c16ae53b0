"""`container-deploy`: create + start through the L2 code, leaving nothing behind when it fails.

"Containers are temporary compute sessions; the workspace is permanent storage." A stopped container of the
same name is started again rather than recreated; a running one is reported as it is.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ds01 import naming
from ds01.atomic.container_create import CreateRequest, create_container
from ds01.atomic.container_view import ContainerView, list_entry
from ds01.atomic.containers import RUNNING, find_container, known_slots, start_container
from ds01.context import Context
from ds01.errors import NotFound, OperationFailed
from ds01.events import crash_point
from ds01.identity import User

Action = Literal["created", "started", "running"]
INIT_NAMES = {"docker-init", "tini", "tini-static"}


@dataclass(frozen=True)
class Deployment:
    view: ContainerView
    action: Action
    entry: dict[str, Any]
    idle_timeout_h: float | None
    max_runtime_h: float | None

    @property
    def name(self) -> str:
        return self.view.name


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def one_at_a_time(docker_name: str) -> Iterator[None]:
    """Deploys and retires of one container run one after the other inside ds01d: a client killed half-way
    and run again finds the first operation finished (or undone), never half done."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(docker_name, threading.Lock())
    with lock:
        yield


def _existing(ctx: Context, owner: User, name: str) -> ContainerView | None:
    try:
        return find_container(ctx, name, user=None if owner.uid == ctx.user.uid else owner.name)
    except NotFound:
        return None


def _refresh(ctx: Context, container_id: str) -> ContainerView:
    return ContainerView.from_inspect(ctx.gateway.inspect(container_id))


def _undo_create(ctx: Context, owner: User, container_id: str, reason: BaseException) -> None:
    """Remove what this deploy created: no container and no GPU may be left behind."""
    from ds01.atomic.removal import remove_and_release

    try:
        remove_and_release(ctx, _refresh(ctx, container_id), reason="rollback", by="deploy")
    except NotFound:
        return
    ctx.out.warn(f"the deploy failed ({type(reason).__name__}): removed the container it had made")


def _wait_until_up(ctx: Context, container_id: str, deadline_s: float = 3.0) -> ContainerView:
    """With an init process, `start` succeeds even when the command cannot run: init starts, its child
    fails and the container exits a moment later. Wait until a process other than init runs, or fail."""
    end = time.monotonic() + deadline_s
    while True:
        raw = ctx.gateway.inspect(container_id)
        state = raw.get("State") or {}
        if state.get("Status") != "running":
            code = state.get("ExitCode")
            tail = b"".join(ctx.gateway.logs(container_id, tail=3)).decode(errors="replace").strip()
            detail = f": {tail.splitlines()[-1]}" if tail else ""
            raise OperationFailed(
                f"the container stopped right after it started (exit code {code}){detail}",
                hint="check the image and its command (container-logs shows the output)",
            )
        processes = ctx.gateway.top(container_id).get("Processes") or []
        if any(p and p[-1] not in INIT_NAMES for p in processes) or time.monotonic() > end:
            return ContainerView.from_inspect(raw)
        time.sleep(0.02)


def _deployment(
    ctx: Context, owner: User, view: ContainerView, action: Action, entry: dict[str, Any] | None = None
) -> Deployment:
    limits = ctx.limits_for(owner).limits
    return Deployment(
        view=view,
        action=action,
        entry=entry or list_entry(view, known_slots(ctx, [view])),
        idle_timeout_h=limits.idle_timeout_h if view.gpu_slots else None,
        max_runtime_h=limits.max_runtime_h,
    )


def deploy_container(ctx: Context, owner: User, request: CreateRequest) -> Deployment:
    name = naming.normalise_name(request.name)
    with one_at_a_time(naming.container_name(name, owner.uid)):
        return _deploy(ctx, owner, name, request)


def _deploy(ctx: Context, owner: User, name: str, request: CreateRequest) -> Deployment:
    view = _existing(ctx, owner, name)
    if view is not None and view.state in RUNNING:
        return _deployment(ctx, owner, view, "running")
    if view is not None:
        start_container(ctx, view)
        return _deployment(ctx, owner, _wait_until_up(ctx, view.id), "started")
    created = create_container(ctx, owner, request)
    assert created.container_id is not None
    spec = created.spec
    crash_point("deploy.after_create")
    try:
        start_container(
            ctx, ContainerView(created.container_id, spec.name, "created", spec.image, spec.labels, spec.user)
        )
        crash_point("deploy.after_start")
        view = _wait_until_up(ctx, created.container_id)
    except BaseException as exc:  # KeyboardInterrupt and SIGTERM too: roll back, then re-raise
        _undo_create(ctx, owner, created.container_id, exc)
        raise
    # the reservation already knew the slots: no second GPU probe for the entry
    return _deployment(ctx, owner, view, "created", {**created.entry, "status": view.state})
