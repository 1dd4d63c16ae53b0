"""Per-project images inside ds01d: list, info, build (from a context the client uploads), delete.

An image is `ds01-<uid>/<name>:latest`; ownership is its `ds01.uid` label, which ds01d sets last on every
build. The client edits the recipe in the workspace with the user's own rights and uploads the context;
ds01d never opens a path in a workspace. Before a build, every image the Dockerfile reads (`FROM`,
`COPY --from`, `--mount=from=`, `ONBUILD`) is inspected: another user's image is refused (exit 5).
Another user's container never blocks deleting one's own image: the tag goes, their layers stay.
"""

from __future__ import annotations

import os
import re
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ds01 import naming
from ds01.config import ImageSettings
from ds01.context import Context
from ds01.docker_gateway import ContainerSummary
from ds01.errors import Ds01Error, NoCapacity, NotFound, OperationFailed, PermissionDenied, UsageError
from ds01.identity import User, lookup_user
from ds01.project import dockerfile as recipe

if TYPE_CHECKING:
    from ds01.project.catalogue import Catalogue

DOCKERFILE = "Dockerfile"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
CA_BUNDLE_ENV = "DS01_CA_BUNDLE"
_FULL_REF = re.compile(r"^ds01-(\d+)/([a-z0-9][a-z0-9_.-]*)(:latest)?$")
_OWNED_NAME = re.compile(r"^ds01-(\d+)/")  # any tag in a user's namespace
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")


@dataclass(frozen=True)
class ImageRef:
    owner: User
    name: str

    @property
    def ref(self) -> str:
        return naming.image_name(self.name, self.owner.uid)


@dataclass(frozen=True)
class ImageInfo:
    name: str
    image: str
    id: str
    size: int
    created: str
    framework: str
    project_type: str
    user: str
    uid: int | None
    containers: tuple[str, ...]
    dockerfile: str

    labels: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "image": self.image, "id": self.id, "size": self.size, "created": self.created,
            "framework": self.framework, "type": self.project_type, "user": self.user, "uid": self.uid,
            "containers": list(self.containers), "dockerfile": self.dockerfile, "labels": dict(self.labels),
        }  # fmt: skip


@dataclass
class DeleteResult:
    ref: ImageRef
    image_id: str
    removed_containers: list[str] = field(default_factory=list)
    dockerfile: str = ""
    untagged_only: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "deleted": True, "image": self.ref.ref, "id": self.image_id,
            "removed_containers": self.removed_containers, "untagged_only": self.untagged_only,
            "dockerfile_kept": self.dockerfile,
        }  # fmt: skip


# -- names and ownership --------------------------------------------------------------------------------


def resolve_ref(ctx: Context, raw: str, *, user: str | None = None) -> ImageRef:
    """NAME of the acting user (or of `--user` for admins), or a full `ds01-<uid>/<name>[:latest]`.

    Someone else's image: exit 5 unless an admin. Not a ds01 image name at all: exit 2.
    """
    text = raw.strip()
    match = _FULL_REF.fullmatch(text)
    if match:
        uid, name = int(match[1]), naming.normalise_name(match[2])
        if uid != ctx.user.uid and not ctx.is_admin:
            raise PermissionDenied(f"image {text} is not yours", hint="you may act only on your own images")
        try:
            owner = ctx.user if uid == ctx.user.uid else lookup_user(str(uid))
        except NotFound:
            owner = User(name=str(uid), uid=uid, gid=uid, home=Path("/nonexistent"))
        return ImageRef(owner, name)
    if "/" in text or ":" in text:
        raise UsageError(
            f"{text!r} is not a ds01 image", hint="give a project name, e.g. image-delete thesis"
        )
    return ImageRef(ctx.target_user(user), naming.normalise_name(text))


def _check_owner(ctx: Context, ref: ImageRef, raw: Mapping[str, Any]) -> None:
    labels = (raw.get("Config") or {}).get("Labels") or {}
    label_uid = labels.get(naming.LABEL_UID)
    if ctx.is_admin:
        return
    if ref.owner.uid != ctx.user.uid or (label_uid is not None and label_uid != str(ctx.user.uid)):
        raise PermissionDenied(f"image {ref.ref} is not yours", hint="you may act only on your own images")


def _inspect(ctx: Context, ref: ImageRef) -> dict[str, Any]:
    raw = ctx.gateway.image_inspect(ref.ref)
    if raw is None:
        whose = "you have" if ref.owner.uid == ctx.user.uid else f"{ref.owner.name} has"
        raise NotFound(
            f"{whose} no image {ref.name!r} ({ref.ref})", hint=f"build it with image-create {ref.name}"
        )
    _check_owner(ctx, ref, raw)
    return raw


# -- build arguments ------------------------------------------------------------------------------------


def ca_bundle_pem(path: str | None) -> str:
    """Only the certificates of an admin's CA bundle file (never anything else it might hold)."""
    if not path:
        return ""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise OperationFailed(
            f"cannot read the CA bundle {path}: {exc.strerror}",
            hint=f"fix images.ca_bundle in the config (or {CA_BUNDLE_ENV})",
        ) from exc
    return "\n".join(_PEM_CERT.findall(text))


def build_args(
    owner: User, env: Mapping[str, str] | None = None, settings: ImageSettings | None = None
) -> dict[str, str]:
    """The user to bake in; the proxy and CA bundle from the config's `images:`, else the environment."""
    env = os.environ if env is None else env
    settings = settings or ImageSettings()
    args = {
        recipe.BUILD_ARG_UID: str(owner.uid),
        recipe.BUILD_ARG_GID: str(owner.gid),
        recipe.BUILD_ARG_USER: owner.safe_name,
    }
    args.update({k: env[k] for k in PROXY_VARS if env.get(k)})
    args.update(settings.proxy_args())
    pem = ca_bundle_pem(str(settings.ca_bundle) if settings.ca_bundle else env.get(CA_BUNDLE_ENV))
    if pem:
        args[recipe.BUILD_ARG_CA] = pem
    return args


# -- builds (the context is uploaded by the client) ----------------------------------------------------

MAX_UPLOAD = 4 << 30  # the most ds01d ever reads of an upload (images.max_context_mb is the cap in force)
MAX_DOCKERFILE = 1 << 20
_CHUNK = 1 << 16
# Keys only ds01d sets on a build: never taken from the client, always set last (over any Dockerfile LABEL).
RESERVED_LABELS = (
    naming.LABEL_MANAGED, naming.LABEL_USER, naming.LABEL_UID, naming.LABEL_PROJECT, naming.LABEL_INTERFACE,
    naming.LABEL_CREATED_AT, naming.LABEL_WORKSPACE, naming.LABEL_GPU_SLOTS, naming.LABEL_GPU_UUIDS,
    naming.LABEL_GPU_GPUEQ, naming.LABEL_COMMITTED_FROM,
)  # fmt: skip
INTERFACES = ("atomic", "orchestration", "wizard")
ONBUILD_DEPTH = 4


@dataclass(frozen=True)
class BuildRequest:
    name: str
    dockerfile: str = DOCKERFILE
    labels: Mapping[str, str] = field(default_factory=dict)
    interface: str = "atomic"
    no_cache: bool = False


def human_size(n: int) -> str:
    """`64 MiB`, `50 KiB`, `4 GiB` (one decimal when not whole)."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def _discard(upload: IO[bytes], length: int) -> None:
    """Read and drop a refused upload (never more than MAX_UPLOAD), so the client reads the answer."""
    left = length if length <= MAX_UPLOAD else 0
    while left > 0 and (chunk := upload.read(min(_CHUNK, left))):
        left -= len(chunk)


def receive_context(upload: IO[bytes], length: int, limit: int = MAX_UPLOAD) -> IO[bytes]:
    """The uploaded archive, spooled to an unnamed root-only file (exactly `length` bytes, capped: the
    announced length is checked before one byte is kept, and never more than it is read)."""
    if length <= 0:
        raise UsageError("the build context is empty", hint="send the project folder as a tar archive")
    limit = min(limit, MAX_UPLOAD)
    if length > limit:
        _discard(upload, length)
        raise UsageError(
            f"the build context is {human_size(length)}, over the {human_size(limit)} ds01d accepts"
            " (images.max_context_mb)",
            hint="list data, models and results in the project's .dockerignore",
        )
    spool = tempfile.TemporaryFile(prefix="ds01-build-")  # noqa: SIM115 - the caller closes it
    left = length
    try:
        while left:
            chunk = upload.read(min(_CHUNK, left))
            if not chunk:
                raise UsageError("the build context ended early", hint="the client went away; try again")
            spool.write(chunk)
            left -= len(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


def _member_name(name: str) -> str:
    return os.path.normpath(name).lstrip("/") if name not in ("", ".") else name


def dockerfile_from_context(archive: IO[bytes], name: str) -> str:
    """The Dockerfile's text as the builder will read it: a regular member of the archive, at most 1 MiB."""
    wanted = _member_name(name)
    if "/" in wanted or wanted in ("", ".", ".."):  # top level: no folder (or link) on the way to it
        raise UsageError(f"the Dockerfile {name!r} must be at the top of the build context")
    try:
        with tarfile.open(fileobj=archive, mode="r:") as tar:
            found = None
            for member in tar:
                if _member_name(member.name) == wanted:
                    found = member  # the last one wins, as in the engine
            if found is None:
                raise UsageError(f"the build context has no {name}", hint="put the Dockerfile in the project")
            if not found.isreg():
                raise UsageError(f"{name} in the build context is not a regular file", hint="no links")
            if found.size > MAX_DOCKERFILE:
                raise UsageError(f"{name} is over 1 MiB")
            extracted = tar.extractfile(found)
            assert extracted is not None
            data = extracted.read(MAX_DOCKERFILE + 1)
    except tarfile.TarError as exc:
        raise UsageError(f"the build context is not a valid tar archive: {exc}") from None
    finally:
        archive.seek(0)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{name} is not UTF-8 text") from None


def _labels_of(raw: Mapping[str, Any]) -> Mapping[str, str]:
    return (raw.get("Config") or {}).get("Labels") or {}


def check_references(
    ctx: Context, owner: User, refs: Sequence[str], catalogue: Catalogue | None = None, depth: int = 0
) -> None:
    """Refuse (exit 5) any image the build would read that carries another user's `ds01.uid`, however it
    is named (tag, id, short id, digest); the `ONBUILD` steps of the images it reads are checked too."""
    for ref in refs:
        raw = ctx.gateway.image_inspect(ref)
        # the owner label, set by ds01d last on every build, is what makes an image someone's; a name in
        # another user's namespace is refused as written (an absent one could not be theirs to read anyway)
        named = {int(m[1]) for m in [_OWNED_NAME.match(ref)] if m}
        uid = _labels_of(raw).get(naming.LABEL_UID) if raw is not None else None
        if uid not in (None, "", str(owner.uid)) or named - {owner.uid}:
            raise PermissionDenied(
                f"the build reads {ref}, another user's image",
                hint="build FROM your own images or public ones",
            )
        if raw is None:
            if catalogue is not None and any(lab.image == ref for lab in catalogue.lab_images):
                raise OperationFailed(
                    f"the lab base image {ref} is not built on this host",
                    hint="ask an admin to run `ds01 image build-base`, or build FROM another image",
                )
            continue  # not on this host: the builder pulls it from a registry
        onbuild = (raw.get("Config") or {}).get("OnBuild") or []
        if onbuild and depth < ONBUILD_DEPTH:
            triggers = "\n".join(f"ONBUILD {t!s}" for t in onbuild)
            check_references(ctx, owner, recipe.image_references(triggers), None, depth + 1)


def build_labels(ctx: Context, owner: User, req: BuildRequest) -> dict[str, str]:
    """The client's recipe labels (never a reserved key), then every ds01 key set by ds01d, last."""
    labels = {
        k: v for k, v in req.labels.items() if k not in RESERVED_LABELS and not k.startswith("ds01.gpu.")
    }
    labels.update(
        naming.base_labels(
            user=owner.name, uid=owner.uid, project=req.name, interface=req.interface,
            workspace=str(ctx.config.paths.workspace_root_for(owner.name) / req.name),
        )
    )  # fmt: skip
    labels.update({naming.LABEL_GPU_SLOTS: "", naming.LABEL_GPU_UUIDS: "", naming.LABEL_GPU_GPUEQ: ""})
    # the client's record of its recipe, set here too (blank if none came) so a base's never counts
    labels[naming.LABEL_RECIPE] = req.labels.get(naming.LABEL_RECIPE, "")
    return labels


# -- one previous image, rollback, pruning, free space ---------------------------------------------------
PREVIOUS = "previous"
_DATA_ROOTS: dict[str, str] = {}  # engine address -> its DockerRootDir


def previous_ref(ref: ImageRef) -> str:
    return f"{naming.image_name(ref.name, ref.owner.uid).rpartition(':')[0]}:{PREVIOUS}"


def check_free_space(ctx: Context, what: str) -> None:
    """Refuse (exit 4) a build or create when the engine's data root has less than `images.min_free_gb`
    free, saying how much is free. Only where the engine is on this host (its data root is ours to read)."""
    from ds01.engine_api import unix_socket_path

    need_gb = ctx.config.images.min_free_gb
    address = ctx.gateway.address
    if need_gb <= 0 or unix_socket_path(address) is None:
        return
    try:
        if address not in _DATA_ROOTS:  # asked once per engine: `info` is not free, the root never moves
            _DATA_ROOTS[address] = str(ctx.gateway.info().get("DockerRootDir") or "")
        root = _DATA_ROOTS[address]
        st = os.statvfs(root)
    except (OSError, Ds01Error):
        return  # no reading: the engine itself reports a full disk
    free_gb = st.f_bavail * st.f_frsize / (1 << 30)
    if free_gb < need_gb:
        raise NoCapacity(
            f"only {free_gb:.1f} GB free on the engine's data root {root}: a {what} needs "
            f"images.min_free_gb ({need_gb:g} GB)",
            hint="ask an admin to free space (docker system df; old images: image-delete NAME)",
        )


def _owned_by(raw: Mapping[str, Any], owner: User) -> bool:
    return str(_labels_of(raw).get(naming.LABEL_UID, "")) == str(owner.uid)


def prune_image(ctx: Context, image_id: str, *, reason: str) -> bool:
    """Remove a ds01 image that has no tag left and no container on it (any user's); True when it went."""
    raw = ctx.gateway.image_inspect(image_id)
    if raw is None:
        return False
    labels = _labels_of(raw)
    tags = [t for t in raw.get("RepoTags") or [] if t != "<none>:<none>"]
    if labels.get(naming.LABEL_MANAGED) != "true" or tags or ctx.gateway.containers_using(image_id):
        return False
    try:
        ctx.gateway.remove_image(image_id)
    except Ds01Error:  # in use by now, or a child image: a later pass tries again
        return False
    ctx.log(
        "image_prune", None, user=labels.get(naming.LABEL_USER) or "root", image_id=image_id,
        project=labels.get(naming.LABEL_PROJECT, ""), size=int(raw.get("Size", 0)), reason=reason,
    )  # fmt: skip
    return True


def prune_images(ctx: Context) -> list[str]:
    """The lifecycle loop's sweep: ds01 images with no tag (an older build) and no container go."""
    gone = []
    for image in ctx.gateway.images(labels=[naming.MANAGED_FILTER]):
        if any(t != "<none>:<none>" for t in image.tags):
            continue
        if prune_image(ctx, image.id, reason="untagged ds01 image without a container"):
            gone.append(image.id)
    return gone


def keep_previous(ctx: Context, ref: ImageRef, old_id: str | None, new_id: str) -> str | None:
    """After a build replaced `:latest`, the image it replaced becomes `:previous`: exactly one previous is
    kept, and the one before it goes unless a container still runs it (then the lifecycle loop prunes it
    once the container is gone)."""
    if not old_id or old_id == new_id:
        return None
    repository = previous_ref(ref).rpartition(":")[0]
    before = ctx.gateway.image_inspect(previous_ref(ref))
    ctx.gateway.tag_image(old_id, repository=repository, tag=PREVIOUS)
    if before is not None and str(before["Id"]) not in (old_id, new_id):
        prune_image(ctx, str(before["Id"]), reason=f"{ref.name}: replaced as the previous image")
    return old_id


def rollback_image(ctx: Context, ref: ImageRef) -> dict[str, Any]:
    """`image-update NAME --rollback`: `:previous` becomes `:latest` and the current one `:previous`."""
    latest = _inspect(ctx, ref)
    _check_owner(ctx, ref, latest)
    prev = ctx.gateway.image_inspect(previous_ref(ref))
    if prev is None or not _owned_by(prev, ref.owner):
        raise NotFound(
            f"image {ref.name} has no previous image to go back to",
            hint="image-update keeps one: the image a rebuild replaced",
        )
    latest_id, prev_id = str(latest["Id"]), str(prev["Id"])
    repository = previous_ref(ref).rpartition(":")[0]
    ctx.gateway.tag_image(prev_id, repository=repository, tag="latest")
    ctx.gateway.tag_image(latest_id, repository=repository, tag=PREVIOUS)
    ctx.log(
        "image_rollback", None, user=ref.owner.name, image=ref.ref, image_id=prev_id, previous_id=latest_id,
        **({"by": ctx.user.name} if ctx.user.uid != ref.owner.uid else {}),
    )  # fmt: skip
    stale = sorted(
        naming.split_container_name(c.name)[0]
        for c in ctx.gateway.containers_using(latest_id)
        if c.labels.get(naming.LABEL_UID) == str(ref.owner.uid)
    )
    return {
        "image": ref.ref, "id": prev_id, "previous_id": latest_id, "stale_containers": stale,
        "info": image_info(ctx, ref).as_dict(),
    }  # fmt: skip


def build_upload(
    ctx: Context,
    owner: User,
    req: BuildRequest,
    archive: IO[bytes],
    emit: Callable[[Mapping[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Build `ds01-<uid>/<name>:latest` from an uploaded context, after checking every image it reads."""
    from ds01.atomic.build import run_build
    from ds01.project.catalogue import load_catalogue

    name = naming.normalise_name(req.name)
    req = BuildRequest(name, req.dockerfile, req.labels, req.interface, req.no_cache)
    ref = ImageRef(owner, name)
    args = build_args(owner, settings=ctx.config.images)
    text = dockerfile_from_context(archive, req.dockerfile)
    refs = recipe.image_references(text, args)
    check_references(ctx, owner, refs, load_catalogue(ctx.config.source))
    check_free_space(ctx, "build")
    from ds01.atomic.registry import pull_missing

    pull_missing(ctx, refs, emit)  # a base not on this host: downloaded first, its progress shown
    old = ctx.gateway.image_inspect(ref.ref)
    result = run_build(
        ctx, archive, dockerfile=_member_name(req.dockerfile), tag=ref.ref, buildargs=args,
        labels=build_labels(ctx, owner, req), nocache=req.no_cache, emit=emit, owner=owner,
    )  # fmt: skip
    ctx.log(
        "image_build", None, user=owner.name, image=ref.ref, image_id=result.image_id,
        seconds=round(result.seconds, 1), no_cache=req.no_cache,
        dockerfile=req.labels.get(naming.LABEL_DOCKERFILE, ""),
        **({"by": ctx.user.name} if ctx.user.uid != owner.uid else {}),
    )  # fmt: skip
    stale: list[str] = []
    old_id = str(old["Id"]) if old else None
    previous = keep_previous(ctx, ref, old_id, result.image_id) if old and _owned_by(old, owner) else None
    if old_id and old_id != result.image_id:
        stale = sorted(
            naming.split_container_name(c.name)[0]
            for c in ctx.gateway.containers_using(old_id)
            if c.labels.get(naming.LABEL_UID) == str(owner.uid)
        )
    return {
        "image": ref.ref, "id": result.image_id, "steps": result.steps, "seconds": round(result.seconds, 1),
        "old_id": old_id, "stale_containers": stale, "info": image_info(ctx, ref).as_dict(),
        "previous": previous_ref(ref) if previous else None,
    }  # fmt: skip


# -- image-list ------------------------------------------------------------------------------------------


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _own_names(containers: Sequence[ContainerSummary], uid: str) -> tuple[str, ...]:
    """The owner's containers only: other users' container names are theirs."""
    return tuple(
        sorted(
            naming.split_container_name(c.name)[0]
            for c in containers
            if c.labels.get(naming.LABEL_UID) == uid
        )
    )


def _info(
    name: str,
    image: str,
    image_id: str,
    size: int,
    created: int,
    labels: Mapping[str, str],
    containers: Sequence[ContainerSummary],
) -> ImageInfo:
    uid = labels.get(naming.LABEL_UID, "")
    return ImageInfo(
        name=name, image=image, id=image_id.removeprefix("sha256:")[:12], size=size, created=_iso(created),
        framework=labels.get(naming.LABEL_FRAMEWORK, ""),
        project_type=labels.get(naming.LABEL_PROJECT_TYPE, ""),
        user=labels.get(naming.LABEL_USER, ""), uid=int(uid) if uid.isdigit() else None,
        containers=_own_names(containers, uid),
        dockerfile=labels.get(naming.LABEL_DOCKERFILE, ""), labels=dict(labels),
    )  # fmt: skip


def list_images(ctx: Context, owner: User | None) -> list[ImageInfo]:
    """The user's images (`owner=None`: everyone's), with the containers created from each."""
    labels = [naming.MANAGED_FILTER] + ([f"{naming.LABEL_UID}={owner.uid}"] if owner is not None else [])
    out = []
    for image in ctx.gateway.images(labels=labels):
        for tag in image.tags:
            match = _FULL_REF.fullmatch(tag)
            if not match or (owner is not None and int(match[1]) != owner.uid):
                continue
            users = ctx.gateway.containers_using(image.id)
            out.append(_info(match[2], tag, image.id, image.size, image.created, image.labels, users))
    return sorted(out, key=lambda i: (i.user, i.name))


def image_info(ctx: Context, ref: ImageRef) -> ImageInfo:
    raw = _inspect(ctx, ref)
    labels = (raw.get("Config") or {}).get("Labels") or {}
    created = int(datetime.fromisoformat(str(raw.get("Created", ""))[:19]).replace(tzinfo=UTC).timestamp())
    return _info(
        ref.name,
        ref.ref,
        str(raw["Id"]),
        int(raw.get("Size", 0)),
        created,
        labels,
        ctx.gateway.containers_using(str(raw["Id"])),
    )


# -- image-delete ------------------------------------------------------------------------------------------


def _delete_previous(ctx: Context, ref: ImageRef) -> None:
    """The kept `:previous` image goes with its name; a container still on it keeps the layers."""
    previous = ctx.gateway.image_inspect(previous_ref(ref))
    if previous is None:
        return
    in_use = bool(ctx.gateway.containers_using(str(previous["Id"])))
    try:
        ctx.gateway.remove_image(previous_ref(ref), force=in_use)
    except Ds01Error as err:  # the name of the image is gone either way; say why the layers stay
        ctx.out.warn(f"{previous_ref(ref)} stays: {err}")


def delete_image(ctx: Context, ref: ImageRef, *, force: bool = False) -> DeleteResult:
    """Remove the image (never its Dockerfile). The owner's containers using it block unless `force`
    (then they are stopped and removed); other users' containers never block: only the tag goes, and
    the layers stay for them."""
    from ds01.atomic.container_view import ContainerView
    from ds01.atomic.containers import remove_container, stop_container

    raw = _inspect(ctx, ref)
    image_id = str(raw["Id"])
    users = ctx.gateway.containers_using(image_id)
    own = [c for c in users if c.labels.get(naming.LABEL_UID) == str(ref.owner.uid)]
    others = [c for c in users if c not in own]
    if own and not force:
        names = sorted(naming.split_container_name(c.name)[0] for c in own)
        raise OperationFailed(
            f"image {ref.name} is used by container(s): {', '.join(names)}",
            hint="retire them first (container-retire NAME), or pass --force",
        )
    result = DeleteResult(ref, image_id)
    for summary in own:
        view = ContainerView.from_summary(summary)
        stop_container(ctx, view, timeout=10)
        remove_container(ctx, view, force=True)
        result.removed_containers.append(naming.split_container_name(summary.name)[0])
    # With other users' containers on it, `force` makes the engine drop the tag only (never their layers).
    ctx.gateway.remove_image(ref.ref, force=bool(others))
    result.untagged_only = bool(others)
    _delete_previous(ctx, ref)
    labels = _labels_of(raw)
    result.dockerfile = labels.get(naming.LABEL_DOCKERFILE, "")
    ctx.log(
        "image_delete", None, user=ref.owner.name, image=ref.ref, image_id=image_id,
        removed_containers=result.removed_containers, untagged_only=result.untagged_only,
        **({"by": ctx.user.name} if ctx.user.uid != ref.owner.uid else {}),
    )  # fmt: skip
    return result
