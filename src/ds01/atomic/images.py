"""Per-project images: image-create, image-list, image-update, image-delete.

An image is `ds01-<uid>/<name>:latest`, built from the Dockerfile in the project's workspace (the source of
truth). Ownership is the image's `ds01.uid` label. No command here ever deletes or overwrites anything in a
workspace: edits keep a `.bak`, and deleting an image leaves the Dockerfile where it is.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ds01 import naming
from ds01.project import dockerfile as recipe
from ds01.atomic import user_files
from ds01.atomic.build import BuildResult, BuildView, follow
from ds01.project.catalogue import Catalogue, load_catalogue
from ds01.atomic.project_files import ensure_workspace, workspace_path
from ds01.config import ImageSettings
from ds01.context import Context
from ds01.docker_gateway import ContainerSummary
from ds01.errors import NotFound, OperationFailed, PermissionDenied, UsageError
from ds01.identity import User, lookup_user

DOCKERFILE = "Dockerfile"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
CA_BUNDLE_ENV = "DS01_CA_BUNDLE"
_FULL_REF = re.compile(r"^ds01-(\d+)/([a-z0-9][a-z0-9_.-]*)(:latest)?$")
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")

DOCKERIGNORE = """\
# ds01: what an image build does not need (keeps data and results out of the build context)
data/
models/
results/
checkpoints/
wandb/
mlruns/
.git/
.cache/
**/__pycache__/
**/.ipynb_checkpoints/
*.bak
"""

ViewFactory = Callable[[str], BuildView]


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "image": self.image, "id": self.id, "size": self.size, "created": self.created,
            "framework": self.framework, "type": self.project_type, "user": self.user, "uid": self.uid,
            "containers": list(self.containers), "dockerfile": self.dockerfile,
        }  # fmt: skip


@dataclass(frozen=True)
class CreateRequest:
    name: str
    framework: str | None = None
    project_type: str | None = None
    dockerfile: Path | None = None
    base: str | None = None
    pip: tuple[str, ...] = ()
    apt: tuple[str, ...] = ()
    build: bool = True
    no_cache: bool = False
    interface: str = "atomic"


@dataclass
class CreateResult:
    ref: ImageRef
    dockerfile: Path
    wrote_dockerfile: bool = False
    regenerated: bool = False
    backup: Path | None = None
    build: BuildResult | None = None
    build_command: str = ""
    info: ImageInfo | None = None


@dataclass(frozen=True)
class UpdateRequest:
    add: tuple[str, ...] = ()
    add_system: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    requirements_file: Path | None = None
    rebuild: bool = False
    no_cache: bool = False


@dataclass
class UpdateResult:
    ref: ImageRef
    dockerfile: Path
    edited: list[Path] = field(default_factory=list)
    backups: list[Path] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    build: BuildResult | None = None
    old_image_id: str | None = None
    stale: list[ContainerSummary] = field(default_factory=list)


@dataclass
class DeleteResult:
    ref: ImageRef
    image_id: str
    removed_containers: list[str] = field(default_factory=list)
    dockerfile: str = ""


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


def build_command(ref: ImageRef, dockerfile: Path) -> str:
    args = " ".join(f"--build-arg {k}={v}" for k, v in build_args(ref.owner, {}).items())
    return f"docker build -t {ref.ref} {args} -f {dockerfile} {dockerfile.parent}"


def build_image(
    ctx: Context,
    ref: ImageRef,
    dockerfile: Path,
    make_view: ViewFactory,
    *,
    no_cache: bool = False,
    interface: str = "atomic",
) -> BuildResult:
    """Build `ds01-<uid>/<name>:latest` from the Dockerfile; its folder is the build context."""
    from ds01.docker_gateway import context_archive

    owner = ref.owner
    labels = naming.base_labels(
        user=owner.name,
        uid=owner.uid,
        project=ref.name,
        interface=interface,
        workspace=str(workspace_path(ctx, owner, ref.name)),
    )
    labels[naming.LABEL_DOCKERFILE] = str(dockerfile)
    args = build_args(owner, settings=ctx.config.images)
    with user_files.as_owner(owner):  # the context holds only what the owner may read
        archive, name_in_context = context_archive(str(dockerfile.parent), str(dockerfile))
    try:
        events = ctx.gateway.build_archive(
            archive, dockerfile=name_in_context, tag=ref.ref, buildargs=args, labels=labels, nocache=no_cache
        )
        result = follow(events, make_view(ref.ref))
    finally:
        archive.close()
    ctx.log(
        "image_build",
        None,
        user=owner.name,
        image=ref.ref,
        image_id=result.image_id,
        seconds=round(result.seconds, 1),
        dockerfile=str(dockerfile),
        no_cache=no_cache,
    )
    return result


# -- image-create ----------------------------------------------------------------------------------------


def _resolve_dockerfile_arg(owner: User, raw: Path) -> Path:
    path = Path(os.path.abspath(raw.expanduser()))
    with user_files.as_owner(owner), contextlib.suppress(OSError):  # unreadable: read_text says so below
        if path.is_dir():
            path = path / DOCKERFILE
    user_files.read_text(owner, path)  # exists and the owner may read it
    return path


def _base_for(catalogue: Catalogue, req: CreateRequest, old: Mapping[str, str]) -> tuple[str, str]:
    """(base image, framework label): the flags, else the old recipe's, else the catalogue's default."""
    if req.framework:
        choice = catalogue.resolve(req.framework)
        return req.base or choice.image, choice.label
    if req.base:
        return req.base, old.get(naming.LABEL_FRAMEWORK) or "custom"
    if old.get(naming.LABEL_BASE_IMAGE):
        return old[naming.LABEL_BASE_IMAGE], old.get(naming.LABEL_FRAMEWORK) or "custom"
    choice = catalogue.resolve(catalogue.default_framework)
    return choice.image, choice.label


def _spec(
    catalogue: Catalogue, req: CreateRequest, ref: ImageRef, workspace: Path, old: Mapping[str, str]
) -> recipe.DockerfileSpec:
    base_image, framework = _base_for(catalogue, req, old)
    kind = catalogue.project_type(
        req.project_type or old.get(naming.LABEL_PROJECT_TYPE) or catalogue.default_type
    )
    requirements = user_files.exists(ref.owner, workspace / recipe.REQUIREMENTS)
    apt, pip = catalogue.packages(kind.name)
    return recipe.DockerfileSpec(
        project=ref.name,
        base_image=base_image,
        framework=framework,
        project_type=kind.name,
        apt=tuple(dict.fromkeys(apt + req.apt)),
        pip=tuple(
            dict.fromkeys((() if requirements else pip) + req.pip)
        ),  # a requirements.txt replaces the set
        requirements=requirements,
    )


def _check_base_present(ctx: Context, catalogue: Catalogue, base: str) -> None:
    """A lab base that was never built cannot be pulled from anywhere: say who can fix it."""
    if any(lab.image == base for lab in catalogue.lab_images) and ctx.gateway.image_inspect(base) is None:
        raise OperationFailed(
            f"the lab base image {base} is not built on this host",
            hint="ask an admin to run `ds01 image build-base`, or pass --base IMAGE",
        )


def create_image(ctx: Context, owner: User, req: CreateRequest, make_view: ViewFactory) -> CreateResult:
    ref = ImageRef(owner, naming.normalise_name(req.name))
    recipe.check_pip(req.pip)
    recipe.check_apt(req.apt)
    catalogue = load_catalogue(ctx.config.source)
    if req.dockerfile is not None:
        result = CreateResult(ref, _resolve_dockerfile_arg(owner, req.dockerfile))
    else:
        result = _write_recipe(ctx, catalogue, ref, req)
    result.build_command = build_command(ref, result.dockerfile)
    if not req.build:
        return result
    if result.wrote_dockerfile or result.regenerated:
        base = recipe.read_labels(user_files.read_text(owner, result.dockerfile)).get(
            naming.LABEL_BASE_IMAGE, ""
        )
        _check_base_present(ctx, catalogue, base)
    result.build = build_image(
        ctx, ref, result.dockerfile, make_view, no_cache=req.no_cache, interface=req.interface
    )
    result.info = image_info(ctx, ref)
    return result


def _write_recipe(ctx: Context, catalogue: Catalogue, ref: ImageRef, req: CreateRequest) -> CreateResult:
    owner = ref.owner
    workspace, _ = ensure_workspace(ctx, owner, ref.name)
    path = workspace / DOCKERFILE
    result = CreateResult(ref, path)
    asked = req.framework or req.project_type or req.base or req.pip or req.apt
    if user_files.exists(owner, path):
        old = user_files.read_text(owner, path)
        if not (asked and recipe.is_generated(old)):
            return result  # the user's recipe wins; it is built as it is
        spec = _spec(catalogue, req, ref, workspace, recipe.read_labels(old))
        spec = recipe.DockerfileSpec(**{**spec.__dict__, "additions": recipe.additions(old)})
        result.backup = user_files.replace_with_backup(owner, path, recipe.render(spec))
        result.regenerated = True
        return result
    spec = _spec(catalogue, req, ref, workspace, {})
    result.wrote_dockerfile = user_files.write_new(owner, path, recipe.render(spec))
    user_files.write_new(owner, workspace / ".dockerignore", DOCKERIGNORE)
    return result


# -- image-list ------------------------------------------------------------------------------------------


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        containers=tuple(sorted(naming.split_container_name(c.name)[0] for c in containers)),
        dockerfile=labels.get(naming.LABEL_DOCKERFILE, ""),
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


# -- image-update ------------------------------------------------------------------------------------------


def find_dockerfile(ctx: Context, ref: ImageRef) -> Path:
    """The recipe of an image: where its label says it was built from, else the project's workspace."""
    raw = ctx.gateway.image_inspect(ref.ref)
    if raw is not None:
        _check_owner(ctx, ref, raw)
        labelled = ((raw.get("Config") or {}).get("Labels") or {}).get(naming.LABEL_DOCKERFILE)
        if labelled and user_files.exists(ref.owner, Path(labelled)):
            return Path(labelled)
    elif ref.owner.uid != ctx.user.uid and not ctx.is_admin:
        raise PermissionDenied(f"image {ref.ref} is not yours", hint="you may act only on your own images")
    path = workspace_path(ctx, ref.owner, ref.name) / DOCKERFILE
    if not user_files.exists(ref.owner, path):
        raise NotFound(
            f"no Dockerfile for {ref.name!r} at {path}", hint=f"create one with image-create {ref.name}"
        )
    return path


def _requirements_to_add(owner: User, req: UpdateRequest) -> list[str]:
    if req.requirements_file is None:
        return []
    return recipe.requirement_lines(user_files.read_text(owner, req.requirements_file.expanduser()))


def update_image(ctx: Context, ref: ImageRef, req: UpdateRequest, make_view: ViewFactory) -> UpdateResult:
    owner = ref.owner
    dockerfile = find_dockerfile(ctx, ref)
    result = UpdateResult(ref, dockerfile)
    pip = [*recipe.split_packages(req.add), *_requirements_to_add(owner, req)]
    apt = list(recipe.check_apt(recipe.split_packages(req.add_system)))
    remove = recipe.split_packages(req.remove)
    text = user_files.read_text(owner, dockerfile)
    requirements = dockerfile.parent / recipe.REQUIREMENTS
    in_requirements = recipe.uses_requirements(text) and user_files.exists(owner, requirements)
    if not in_requirements:
        recipe.check_pip(pip)
    new_text = _edit_dockerfile(result, text, pip=[] if in_requirements else pip, apt=apt, remove=remove)
    if in_requirements:
        _edit_requirements(result, requirements, pip, remove)
    result.not_found = [r for r in remove if r not in result.removed]
    if new_text != text:
        result.backups.append(user_files.replace_with_backup(owner, dockerfile, new_text))
        result.edited.append(dockerfile)
    if not (result.edited or req.rebuild or req.no_cache):
        return result
    old = ctx.gateway.image_inspect(ref.ref)
    result.old_image_id = str(old["Id"]) if old else None
    result.build = build_image(ctx, ref, dockerfile, make_view, no_cache=req.no_cache)
    if result.old_image_id and result.old_image_id != result.build.image_id:
        result.stale = ctx.gateway.containers_using(result.old_image_id)
    return result


def _edit_dockerfile(
    result: UpdateResult, text: str, *, pip: Sequence[str], apt: Sequence[str], remove: Sequence[str]
) -> str:
    edit = recipe.add_packages(text, pip=pip, apt=apt) if (pip or apt) else recipe.Edit(text)
    result.added += edit.added
    result.replaced += edit.replaced
    dropped = recipe.remove_packages(edit.text, remove) if remove else recipe.Edit(edit.text)
    result.removed += [r for r in dropped.removed if r not in result.removed]
    return dropped.text


def _edit_requirements(result: UpdateResult, path: Path, pip: Sequence[str], remove: Sequence[str]) -> None:
    owner = result.ref.owner
    text = user_files.read_text(owner, path)
    added = recipe.add_requirements(text, pip)
    dropped = recipe.remove_requirements(added.text, remove)
    result.added += added.added
    result.replaced += added.replaced
    result.removed += [r for r in dropped.removed if r not in result.removed]
    if dropped.text != text:
        result.backups.append(user_files.replace_with_backup(owner, path, dropped.text))
        result.edited.append(path)


# -- image-delete ------------------------------------------------------------------------------------------


def delete_image(ctx: Context, ref: ImageRef, *, force: bool = False) -> DeleteResult:
    """Remove the image (never its Dockerfile); refuse while containers use it unless `force`."""
    from ds01.atomic.container_view import ContainerView
    from ds01.atomic.containers import remove_container, stop_container

    raw = _inspect(ctx, ref)
    image_id = str(raw["Id"])
    users = ctx.gateway.containers_using(image_id)
    names = sorted(naming.split_container_name(c.name)[0] for c in users)
    foreign = sorted(c.name for c in users if c.labels.get(naming.LABEL_UID) != str(ctx.user.uid))
    if users and force and foreign and not ctx.is_admin:
        raise PermissionDenied(
            f"image {ref.name} is used by containers that are not yours: {', '.join(foreign)}",
            hint="ask their owner or an admin",
        )
    if users and not force:
        raise OperationFailed(
            f"image {ref.name} is used by container(s): {', '.join(names)}",
            hint="retire them first (container-retire NAME), or pass --force",
        )
    result = DeleteResult(ref, image_id)
    for summary in users:
        view = ContainerView.from_summary(summary)
        stop_container(ctx, view, timeout=10)
        remove_container(ctx, view, force=True)
        result.removed_containers.append(naming.split_container_name(summary.name)[0])
    ctx.gateway.remove_image(ref.ref)
    labels = (raw.get("Config") or {}).get("Labels") or {}
    result.dockerfile = labels.get(naming.LABEL_DOCKERFILE, "")
    ctx.log(
        "image_delete",
        None,
        user=ref.owner.name,
        image=ref.ref,
        image_id=image_id,
        removed_containers=result.removed_containers,
        **({"by": ctx.user.name} if ctx.user.uid != ref.owner.uid else {}),
    )
    return result
