"""Endpoints: images (list, info, build from an uploaded context, delete), the lab's bases (admins) and the
image catalogue. Ownership is the image's `ds01.uid` label (`resolve_ref` / `_inspect`); `user` acts for
another user (admins only, never root or a system account)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ds01.daemon.routes import Request, route
from ds01.daemon.schema import limit
from ds01.errors import PermissionDenied, UsageError

NAME = limit(max_len=128)
USER = limit(max_len=64)


@dataclass(frozen=True)
class ListBody:
    all_users: bool = False
    user: str | None = field(default=None, metadata=USER)


@dataclass(frozen=True)
class OneBody:
    user: str | None = field(default=None, metadata=USER)


@dataclass(frozen=True)
class BuildBody:
    name: str = field(metadata=NAME)
    dockerfile: str = field(default="Dockerfile", metadata=limit(max_len=1024))
    labels: dict[str, str] | None = None
    user: str | None = field(default=None, metadata=USER)
    interface: str = field(default="atomic", metadata=limit(choices=("atomic", "orchestration", "wizard")))
    no_cache: bool = False


@dataclass(frozen=True)
class DeleteBody:
    user: str | None = field(default=None, metadata=USER)
    force: bool = False


@dataclass(frozen=True)
class BaseBody:
    offline: bool = False
    name: str | None = field(default=None, metadata=NAME)
    mirror: str | None = field(default=None, metadata=limit(max_len=512))
    suite: str | None = field(default=None, metadata=limit(max_len=64))


@route("GET", "/images", ListBody)
def list_images(req: Request[ListBody]) -> list[dict[str, Any]]:
    from ds01.atomic.images import list_images as listing

    ctx, b = req.ctx, req.body
    if b.all_users and not ctx.is_admin:
        raise PermissionDenied("only admins may list everyone's images", hint="drop --all-users")
    return [i.as_dict() for i in listing(ctx, None if b.all_users else ctx.target_user(b.user))]


def image_name(req: Request[Any]) -> str:
    """NAME, or a full `ds01-<uid>/<name>[:latest]` (its `/` splits the path into two parts)."""
    p = req.params
    return f"{p['repo']}/{p['name']}" if "repo" in p else p["name"]


@route("GET", "/images/{name}", OneBody)
@route("GET", "/images/{repo}/{name}", OneBody)
def image_info(req: Request[OneBody]) -> dict[str, Any]:
    from ds01.atomic.images import image_info as info
    from ds01.atomic.images import resolve_ref

    return info(req.ctx, resolve_ref(req.ctx, image_name(req), user=req.body.user)).as_dict()


@route("POST", "/images/build", BuildBody, upload=True)
def build(req: Request[BuildBody]) -> dict[str, Any]:
    from ds01 import naming
    from ds01.atomic.images import BuildRequest, build_upload, receive_context

    ctx, b = req.ctx, req.body
    if req.upload is None:
        raise UsageError("a build needs its context as the request body")
    # first: an early answer would cut the upload (an over-cap one is read and dropped, never kept)
    archive = receive_context(req.upload, req.upload_length, ctx.config.images.max_context_bytes)
    try:
        owner = ctx.target_user(b.user)
        name = naming.normalise_name(b.name)
        request = BuildRequest(name, b.dockerfile, dict(b.labels or {}), b.interface, b.no_cache)
        return build_upload(ctx, owner, request, archive, emit=lambda ev: req.emit("event", ev))
    finally:
        archive.close()


@route("DELETE", "/images/{name}", DeleteBody)
@route("DELETE", "/images/{repo}/{name}", DeleteBody)
def delete(req: Request[DeleteBody]) -> dict[str, Any]:
    from ds01.atomic.images import delete_image, resolve_ref

    ref = resolve_ref(req.ctx, image_name(req), user=req.body.user)
    return delete_image(req.ctx, ref, force=req.body.force).as_dict()


@route("POST", "/images/{name}/rollback", OneBody)
@route("POST", "/images/{repo}/{name}/rollback", OneBody)
def rollback(req: Request[OneBody]) -> dict[str, Any]:
    """`image-update NAME --rollback`: the previous image (kept by every rebuild) becomes the latest."""
    from ds01.atomic.images import resolve_ref, rollback_image

    return rollback_image(req.ctx, resolve_ref(req.ctx, image_name(req), user=req.body.user))


@route("POST", "/images/build-base", BaseBody, admin=True)
def build_base(req: Request[BaseBody]) -> list[dict[str, Any]]:
    from ds01.atomic.base_images import build_bases

    ctx, b = req.ctx, req.body
    results = build_bases(
        ctx, only=b.name, offline=b.offline, mirror=b.mirror, suite=b.suite, say=ctx.out.info,
        emit=lambda ev: req.emit("event", ev),
    )  # fmt: skip
    for r in results:
        ctx.log("image_build", None, image=r.image, method=r.method, seconds=round(r.seconds, 1), base=True)
    return [
        {"image": r.image, "method": r.method, "seconds": round(r.seconds, 1), "size": r.size}
        for r in results
    ]


@route("GET", "/catalogue")
def catalogue(req: Request[Any]) -> dict[str, Any]:
    from ds01.project.catalogue import catalogue_json, load_catalogue

    return catalogue_json(load_catalogue(req.ctx.config.source))


@route("GET", "/catalogue/bases")
def catalogue_bases(req: Request[Any]) -> dict[str, Any]:
    """What this server can build from: each catalogue base here or not (size), whether its registry
    answers the engine (checked at most every few minutes), and the build network."""
    from ds01.atomic.registry import bases_report

    return bases_report(req.ctx)
