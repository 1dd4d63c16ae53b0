"""Taking a user's image off the server: push to a registry with the user's own login, or stream it as a
`docker save` tarball.

Push tags the owner's image `ds01-<uid>/<name>:latest` as the target for the push alone and untags it
after. The target must not name an image already on this host (another user's, a lab base: tagging would
move that name) nor a ds01 image name. The login comes with the request, goes to the engine in the push's
`X-Registry-Auth` header and nowhere else: never logged, never written, never kept past the push.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ds01.atomic.images import ImageRef, image_info
from ds01.context import Context
from ds01.docker_gateway import engine_errors
from ds01.errors import OperationFailed, PermissionDenied, UsageError
from ds01.registry_ref import DOCKER_HUB, PushTarget

EventSink = Callable[[dict[str, Any]], None]
_DS01_NAME = re.compile(r"^(?:(?:docker\.io|index\.docker\.io)/)?(?:library/)?ds01-\d+/")
_UNAUTHORIZED = (
    "unauthorized",
    "authentication required",
    "no basic auth credentials",
    "denied",
    "401",
    "403",
    "forbidden",
)
PROGRESS_EVERY_S = 0.5

_busy: set[str] = set()
_busy_lock = threading.Lock()


@dataclass(frozen=True)
class Login:
    """The user's registry login for one push (never logged: its repr hides the secret)."""

    username: str | None = None
    password: str | None = None
    identitytoken: str | None = None

    def __repr__(self) -> str:
        return f"Login(username={self.username!r}, secret=***)"

    def auth_config(self, registry: str) -> dict[str, str] | None:
        server = "https://index.docker.io/v1/" if registry == DOCKER_HUB else registry
        if self.identitytoken:
            return {"identitytoken": self.identitytoken, "serveraddress": server}
        if self.username is not None and self.password is not None:
            return {"username": self.username, "password": self.password, "serveraddress": server}
        return None


@contextlib.contextmanager
def _claimed(ref: str) -> Iterator[None]:
    with _busy_lock:
        if ref in _busy:
            raise OperationFailed(f"a push to {ref} is already running", hint="wait for it to finish")
        _busy.add(ref)
    try:
        yield
    finally:
        with _busy_lock:
            _busy.discard(ref)


def _check_target(ctx: Context, target: PushTarget) -> None:
    if _DS01_NAME.match(target.repository):
        raise UsageError(
            f"{target.shown} is a ds01 image name, not a registry's",
            hint="push to REGISTRY/REPO[:TAG], e.g. registry.example.org/lab/my-model:v1",
        )
    if ctx.gateway.image_inspect(target.ref) is not None:
        raise UsageError(
            f"{target.ref} already names an image on this server; ds01 will not move that name",
            hint="push under another repository or tag",
        )


def push_image(
    ctx: Context, ref: ImageRef, target: PushTarget, login: Login, emit: EventSink
) -> dict[str, Any]:
    """Push the owner's image to `target` with `login` (or none); progress as events
    `{layer, status, current, total}`; the result `{image, target, digest, size, layers, seconds}`."""
    info = image_info(ctx, ref)  # missing: exit 3; someone else's: exit 5
    gateway = ctx.gateway
    started = time.monotonic()
    with _claimed(target.ref):
        _check_target(ctx, target)
        gateway.tag_image(info.id, repository=target.repository, tag=target.tag)
        try:
            digest, size, layers = _push(ctx, target, login, emit)
        finally:
            with contextlib.suppress(Exception):  # only the extra name goes; the image keeps its own
                gateway.remove_image(target.ref)
    seconds = round(time.monotonic() - started, 1)
    ctx.log("image_push", None, user=ref.owner.name, image=ref.ref, target=target.shown, digest=digest,
            seconds=seconds, **({"by": ctx.user.name} if ref.owner.uid != ctx.user.uid else {}))  # fmt: skip
    return {"image": ref.ref, "target": target.shown, "digest": digest, "size": size, "layers": layers,
            "seconds": seconds}  # fmt: skip


def _push(ctx: Context, target: PushTarget, login: Login, emit: EventSink) -> tuple[str, int, int]:
    auth = login.auth_config(target.registry)
    # `{}`, never None, without a login: docker-py would otherwise send ds01d's own stored login
    digest, size = "", 0
    layers: set[str] = set()
    last: dict[str, tuple[str, float]] = {}
    with engine_errors(f"push {target.shown}"):
        stream = ctx.gateway.api.push(
            target.repository, tag=target.tag, stream=True, decode=True, auth_config=auth or {}
        )
        for item in stream:
            if not isinstance(item, Mapping):
                continue
            if item.get("error") or item.get("errorDetail"):
                raise _push_error(target, str(item.get("error") or item.get("errorDetail")), bool(auth))
            aux = item.get("aux")
            if isinstance(aux, Mapping):
                digest, size = str(aux.get("Digest") or digest), int(aux.get("Size") or size)
                continue
            layer, status = str(item.get("id") or ""), str(item.get("status") or "")
            if not layer or not status or layer == target.tag:
                continue
            layers.add(layer)
            detail = item.get("progressDetail") or {}
            now = time.monotonic()
            before = last.get(layer)
            if before and before[0] == status and now - before[1] < PROGRESS_EVERY_S:
                continue
            last[layer] = (status, now)
            emit({"layer": layer, "status": status, "current": int(detail.get("current") or 0),
                  "total": int(detail.get("total") or 0)})  # fmt: skip
    if not digest:
        raise OperationFailed(f"the push to {target.shown} ended without a digest", hint="try it again")
    return digest, size, len(layers)


def _push_error(target: PushTarget, message: str, had_login: bool) -> OperationFailed | PermissionDenied:
    first = message.strip().splitlines()[0][:300] if message.strip() else "no reason given"
    if any(word in first.lower() for word in _UNAUTHORIZED):
        how = (
            "check the login for it in ~/.docker/config.json (or pass --username with --password-stdin)"
            if had_login
            else "add your login for it to ~/.docker/config.json, or pass --username with --password-stdin"
        )
        return PermissionDenied(f"{target.registry} refused the push of {target.shown}: {first}", hint=how)
    return OperationFailed(
        f"the push to {target.shown} failed: {first}",
        hint=f"check that this server can reach {target.registry}, and the name",
    )


def save_chunks(ctx: Context, ref: ImageRef, chunk: int = 1 << 20) -> tuple[Iterator[bytes], dict[str, Any]]:
    """The owner's image as a `docker save` tarball (`docker load` restores `ds01-<uid>/<name>:latest`)."""
    info = image_info(ctx, ref)  # missing: exit 3; someone else's: exit 5
    with engine_errors(f"save {ref.ref}"):
        raw = ctx.gateway.api.get_image(ref.ref, chunk_size=chunk)

    def chunks() -> Iterator[bytes]:
        with engine_errors(f"save {ref.ref}"):
            yield from raw

    return chunks(), {"image": ref.ref, "id": info.id, "size": info.size}
