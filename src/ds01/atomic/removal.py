"""The one remove path: every way a container goes (retire, a failed deploy's rollback, the reaper, the
reclaim of an expired GPU hold, container-remove) removes it here and logs the same two events:

- `remove`: `{reason, forced, by?}`;
- `release` (only when it held GPU slots): `{slots, uuids, gpueq, reason, by?}`.

`reason` says why (`retire`, `rollback`, `idle_stop`, `cleanup`, `reclaim`, `remove`, `reconcile`); `by`
names who asked when that is not the owner (an admin, `reaper`, `ds01d`). The container's anonymous volumes
(an image's `VOLUME`) go with it; the workspace (a bind mount) is never touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from ds01.atomic.container_view import ContainerView
from ds01.context import Context
from ds01.events import crash_point

_FREED: list[Callable[[], None]] = []


def on_capacity_freed(listener: Callable[[], None]) -> None:
    """Call `listener` (it must not block) after every removal: the wait queue looks for a grant."""
    if listener not in _FREED:
        _FREED.append(listener)


def capacity_freed() -> None:
    for listener in list(_FREED):
        with contextlib.suppress(Exception):
            listener()


def remove_and_release(
    ctx: Context, view: ContainerView, *, reason: str, by: str | None = None, force: bool = True
) -> list[str]:
    """Remove the container and log `remove` (and `release` when it held GPUs); the freed slot ids.

    A missing container raises `NotFound` (nothing is logged: it was not removed here)."""
    ctx.gateway.remove(view.id, force=force, volumes=True)
    crash_point("remove.after_engine")
    owner = view.user or ctx.user.name
    if by is None and owner != ctx.user.name:
        by = ctx.user.name
    extra = {"by": by} if by else {}
    ctx.log("remove", view.docker_name, user=owner, reason=reason, forced=force, **extra)
    slots = view.gpu_slots
    if slots:
        ctx.log(
            "release",
            view.docker_name,
            user=owner,
            slots=slots,
            uuids=view.gpu_uuids,
            gpueq=view.gpueq,
            reason=reason,
            **extra,
        )
    capacity_freed()
    return slots
