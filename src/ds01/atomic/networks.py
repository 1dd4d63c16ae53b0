"""The network a container (or a build's RUN steps) joins, from `containers.network` (CONTRACT §3).

- `per-user` (the default): one bridge network per user, `ds01-u<uid>`, made on demand by ds01d and
  labelled `ds01.managed`/`ds01.uid`. Inter-container traffic stays ON inside it (a user's own containers
  reach each other, by address or by name); two users' networks are separate bridges, which the engine keeps
  apart with its iptables isolation rules (dockerd's default `--iptables=true`). An engine started with
  `--iptables=false` routes between bridges: doctor reports the mode in force.
- `bridge`: the engine's shared default bridge (every user's containers reach each other).
- `none`: no network but loopback.

Where the engine cannot make a bridge network, a container gets `none` and the caller is told why.
"""

from __future__ import annotations

import threading

from ds01 import naming
from ds01.context import Context
from ds01.errors import Ds01Error, EngineUnavailable
from ds01.identity import User

PREFIX = "ds01-u"
_lock = threading.Lock()  # one ds01d: two first creates of the same user never race for the name


def user_network_name(uid: int) -> str:
    return f"{PREFIX}{uid}"


def _labels(owner: User) -> dict[str, str]:
    return {naming.LABEL_MANAGED: "true", naming.LABEL_UID: str(owner.uid), naming.LABEL_USER: owner.name}


def _usable(raw: dict[str, object], owner: User) -> bool:
    """Ours and the owner's: a network of that name made by someone else is never joined."""
    labels = raw.get("Labels") or {}
    return (
        isinstance(labels, dict)
        and labels.get(naming.LABEL_MANAGED) == "true"
        and labels.get(naming.LABEL_UID) == str(owner.uid)
        and raw.get("Driver") == "bridge"
    )


def ensure_user_network(ctx: Context, owner: User) -> str:
    """`ds01-u<uid>`, made when missing; raises when the engine cannot make it (or the name is taken)."""
    from ds01.errors import OperationFailed

    name = user_network_name(owner.uid)
    gateway = ctx.gateway
    with _lock:
        raw = gateway.network_inspect(name)
        if raw is None:
            gateway.network_create(name, labels=_labels(owner))
            raw = gateway.network_inspect(name)
        if raw is None or not _usable(raw, owner):
            raise OperationFailed(
                f"the network {name} exists but was not made by ds01 for {owner.name}",
                hint=f"an admin should remove it (docker network rm {name})",
            )
    return name


def container_network(ctx: Context, owner: User, mode: str | None = None) -> str:
    """The engine's NetworkMode for a container of `owner` under the configured mode; `per-user` falls
    back to `none` (with a notice) where the engine cannot make a bridge network."""
    mode = mode or ctx.config.containers.network
    if mode != "per-user":
        return mode
    try:
        return ensure_user_network(ctx, owner)
    except EngineUnavailable:
        raise
    except Ds01Error as exc:
        ctx.out.warn(
            f"no per-user network ({exc.message}): the container gets no network (containers.network)"
        )
        ctx.log("network_fallback", None, user=owner.name, reason=exc.message)
        return "none"


def build_network(ctx: Context, owner: User) -> str:
    """The network of a build's RUN steps: `none` unless `images.build_network` (or a proxy) says so."""
    return container_network(ctx, owner, ctx.config.images.effective_build_network())
