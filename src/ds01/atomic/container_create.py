"""`container-create`: a labelled, limited container of the user's project, with its GPUs reserved race-free.

The order matters: the engine is reached first (so a user without the sudo rule gets exit 6 before anything
is touched), everything the user can get wrong is checked before the GPU lock, and the container is created
inside the reservation so no other command can take the same slot meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ds01 import naming
from ds01.atomic.container_spec import IDLE_COMMAND, ContainerSpec, Mount, limit_args
from ds01.atomic.container_view import ContainerView, list_entry
from ds01.atomic.containers import list_views
from ds01.atomic.gpu_reservation import Reservation, reserve_gpus
from ds01.atomic.host_paths import (
    DATA_DIR,
    WORKDIR,
    check_data_dir,
    check_workspace,
    ensure_workspace,
    prepare_staging,
    staging_source,
    workspace_path,
)
from ds01.atomic.user_cgroup import check_fit
from ds01.atomic.user_cgroup import prepare as user_cgroup_parent
from ds01.context import Context
from ds01.docker_gateway import Gateway
from ds01.errors import NotFound, OperationFailed, PermissionDenied, QuotaExceeded, UsageError
from ds01.gpu.attach import Attachment
from ds01.gpu.model import Allocation
from ds01.identity import User, uid_min


@dataclass(frozen=True)
class CreateRequest:
    name: str
    image: str | None = None
    gpus: int | None = None
    mig_profile: str | None = None
    cpu_only: bool = False
    workspace: str | None = None  # a project name or a folder directly in <workspace_root>/<owner>
    data: str | None = None  # an absolute path under a data root or one of the owner's workspaces
    command: tuple[str, ...] | None = None  # None: stay idle; (): the image's own CMD
    interface: str = "atomic"
    gpu_indices: tuple[int, ...] | None = None  # cluster mode: exactly these whole GPUs (a Slurm job's IDX)
    slurm_job: str | None = None  # cluster mode: the job it runs in (label ds01.slurm_job)
    run_once: str = ""  # container-run --rm: its client process (label ds01.run_once, see naming)


@dataclass(frozen=True)
class CreateResult:
    spec: ContainerSpec
    allocation: Allocation
    entry: dict[str, Any]
    container_id: str | None  # None on a dry run
    workspace_created: bool


def gpu_request(req: CreateRequest) -> int:
    """How many slots to ask for: CPU-only unless --gpus or --mig-profile says otherwise."""
    if req.gpus is not None and req.gpus < 0:
        raise UsageError(f"--gpus {req.gpus}: a count cannot be negative", hint="use e.g. --gpus 1")
    if req.mig_profile is not None and not req.mig_profile.strip():
        raise UsageError("--mig-profile: empty profile", hint="name one, e.g. --mig-profile 1g.10gb")
    if req.cpu_only and (req.gpus or req.mig_profile):
        raise UsageError("--cpu-only cannot be combined with --gpus or --mig-profile", hint="pick one")
    if req.cpu_only:
        return 0
    if req.mig_profile and not req.gpus:
        return 1
    return req.gpus or 0


def check_image_reference(ref: str) -> str:
    """A reference the engine could parse (tag, digest, id or short id); anything else is exit 2."""
    ref = ref.strip()
    if naming.is_image_reference(ref):
        return ref
    shown = ref if len(ref) <= 60 else ref[:57] + "..."
    raise UsageError(
        f"--image {shown!r} is not a valid image reference",
        hint="use NAME[:TAG], NAME@sha256:DIGEST or an image id, e.g. --image ds01-1001/thesis:latest",
    )


def check_image_owner(owner: User, ref: str, inspect: Mapping[str, Any]) -> None:
    """Another user's image (its `ds01.uid` label), however it is named, is not the owner's to run."""
    labels = (inspect.get("Config") or {}).get("Labels") or {}
    uid = str(labels.get(naming.LABEL_UID, "") or "")
    if uid and uid != str(owner.uid):
        raise PermissionDenied(
            f"image {ref} belongs to another user",
            hint="use one of your own images (image-list) or a lab base image",
        )


def resolve_image(gateway: Gateway, image: str | None, name: str, owner: User) -> tuple[str, dict[str, str]]:
    """The image reference and the labels it carries (to blank its `ds01.*` ones)."""
    ref = check_image_reference(image) if image else naming.image_name(name, owner.uid)
    raw = gateway.image_inspect(ref)
    if raw is None:
        if image:
            raise NotFound(
                f"image {image!r} is not on this host",
                hint="see image-list, or build one with image-create NAME",
            )
        raise NotFound(
            f"project {name!r} has no image yet ({ref})",
            hint=f"build it with `image-create {name}`, or pass --image IMG",
        )
    check_image_owner(owner, ref, raw)
    return ref, dict((raw.get("Config") or {}).get("Labels") or {})


def _command(req: CreateRequest) -> tuple[str, ...] | None:
    if req.command is None:
        return IDLE_COMMAND
    return req.command or None


def _environment(ctx: Context, gpu_env: dict[str, str]) -> dict[str, str]:
    env = dict(ctx.config.containers.env)
    env.update(gpu_env)
    return env


def build_spec(
    ctx: Context,
    owner: User,
    *,
    name: str,
    image: str,
    workspace: Path,
    data: Path | None,
    command: tuple[str, ...] | None,
    interface: str,
    gpu_labels: dict[str, str],
    gpu_ids: tuple[str, ...],
    gpu_env: dict[str, str],
    inherited: Mapping[str, str] | None = None,
    network: str | None = None,
    cgroup_parent: str | None = None,
) -> ContainerSpec:
    own = naming.base_labels(
        user=owner.name, uid=owner.uid, project=name, interface=interface, workspace=str(workspace)
    )
    own.update(EMPTY_IMAGE_LABELS)
    own.update(EMPTY_GPU_LABELS)
    own[naming.LABEL_RUN_ONCE] = ""  # a one-shot run's comes with gpu_labels
    own.update(gpu_labels)
    labels = container_labels(inherited or {}, own)
    # the engine mounts ds01d's staging folders; the real ones are pinned onto them at each start
    docker_name = naming.container_name(name, owner.uid)
    paths = ctx.config.paths
    mounts = [Mount(str(staging_source(paths, docker_name, WORKDIR)), WORKDIR)]
    if data is not None:
        mounts.append(Mount(str(staging_source(paths, docker_name, DATA_DIR)), DATA_DIR, read_only=True))
    lim = limit_args(ctx.limits_for(owner).limits)
    defaults = ctx.config.containers
    return ContainerSpec(
        image=image,
        name=naming.container_name(name, owner.uid),
        hostname=name,
        user=f"{owner.uid}:{owner.gid}",
        command=command,
        labels=labels,
        environment=_environment(ctx, gpu_env),
        mounts=tuple(mounts),
        network=network or defaults.network,
        init=defaults.init,
        nano_cpus=lim.nano_cpus,
        mem_limit=lim.mem_limit,
        memswap_limit=lim.memswap_limit,
        shm_size=lim.shm_size,
        pids_limit=lim.pids_limit,
        gpu_device_ids=gpu_ids,
        cgroup_parent=cgroup_parent,
    )


# ds01d sets every ds01.* key, so a label inherited from the image never counts (CONTRACT §2).
EMPTY_GPU_LABELS = {naming.LABEL_GPU_SLOTS: "", naming.LABEL_GPU_UUIDS: "", naming.LABEL_GPU_GPUEQ: ""}
EMPTY_IMAGE_LABELS = {
    key: ""
    for key in (
        naming.LABEL_FRAMEWORK, naming.LABEL_PROJECT_TYPE, naming.LABEL_BASE_IMAGE, naming.LABEL_DOCKERFILE,
        naming.LABEL_COMMITTED_FROM,
    )
}  # fmt: skip


def container_labels(inherited: Mapping[str, str], own: Mapping[str, str]) -> dict[str, str]:
    """The container's labels: every `ds01.*` key the image carries is overwritten (blank unless ds01 sets
    it), so nothing a user wrote into an image can pose as ds01's."""
    labels = {k: "" for k in inherited if k.startswith(naming.LABEL_PREFIX)}
    labels.update(own)
    return labels


class _DryRun(Exception):
    """Leaves the reservation by an exception, so nothing is logged as allocated."""

    def __init__(self, result: CreateResult) -> None:
        self.result = result


def create_container(ctx: Context, owner: User, req: CreateRequest, *, dry_run: bool = False) -> CreateResult:
    if req.interface not in naming.INTERFACES:
        raise UsageError(f"unknown interface {req.interface!r}")
    name = naming.normalise_name(req.name)
    gpus = gpu_request(req)
    if owner.uid == 0 or owner.uid < uid_min():
        raise PermissionDenied(
            f"{owner.name} (uid {owner.uid}) cannot own a container: containers run as a lab member",
            hint="pass --user NAME to create one for a lab member",
        )
    gateway = ctx.gateway  # first contact: no engine (or no sudo) is exit 6 before anything is touched
    docker_name = naming.container_name(name, owner.uid)
    if gateway.find(docker_name) is not None:
        raise OperationFailed(
            f"{owner.name} already has a container named {name!r}",
            hint=f"start it with container-start {name}, or remove it first",
        )
    image, inherited = resolve_image(gateway, req.image, name, owner)
    paths = ctx.config.paths
    workspace = workspace_path(paths, owner, req.workspace, name)
    missing = False
    try:
        check_workspace(paths, owner, workspace)
    except NotFound:
        missing = True  # made below, inside the reservation (never on a dry run)
    data = check_data_dir(paths, owner, req.data) if req.data else None
    network = _network(ctx, owner, dry_run=dry_run)
    limits = ctx.limits_for(owner).limits
    check_fit(limits)  # a container over the user's totals could never run: exit 4 before anything
    if not dry_run:
        from ds01.atomic.images import check_free_space

        check_free_space(ctx, "container")
    parent = None if dry_run else user_cgroup_parent(ctx, owner, limits)
    try:
        with reserve_gpus(
            ctx, owner, gpus=gpus, mig_profile=req.mig_profile, container=docker_name, pinned=req.gpu_indices
        ) as r:
            _check_count(ctx, owner, r, limits.max_containers_per_user, docker_name)
            ids, env = _attachment(r.attachment)
            job = {naming.LABEL_SLURM_JOB: req.slurm_job} if req.slurm_job else {}
            job.update({naming.LABEL_RUN_ONCE: req.run_once} if req.run_once else {})
            spec = build_spec(ctx, owner, name=name, image=image, workspace=workspace, data=data,
                              command=_command(req), interface=req.interface, gpu_labels={**r.labels, **job},
                              gpu_ids=ids, gpu_env=env, inherited=inherited, network=network,
                              cgroup_parent=parent)  # fmt: skip
            known = {s.uuid: s for s in r.allocation.slots}
            if dry_run:
                view = ContainerView("", spec.name, "created", image, spec.labels)
                raise _DryRun(CreateResult(spec, r.allocation, list_entry(view, known), None, missing))
            ensure_workspace(paths, owner, workspace.name)
            sources = {WORKDIR: str(workspace), **({DATA_DIR: str(data)} if data is not None else {})}
            prepare_staging(paths, docker_name, sources)
            cid = _create(gateway, spec)
    except _DryRun as dry:
        return dry.result
    ctx.log("create", spec.name, user=owner.name, image=image, interface=req.interface,
            gpus=r.allocation.slot_ids, gpueq=r.allocation.gpueq, workspace=str(workspace),
            **({"by": ctx.user.name} if owner.uid != ctx.user.uid else {}))  # fmt: skip
    view = ContainerView(cid, spec.name, "created", image, spec.labels)
    return CreateResult(spec, r.allocation, list_entry(view, known), cid, missing)


def _network(ctx: Context, owner: User, *, dry_run: bool) -> str:
    """The container's network (`containers.network`); a dry run names the user's network, makes nothing."""
    from ds01.atomic.networks import container_network, user_network_name

    mode = ctx.config.containers.network
    if dry_run:
        return user_network_name(owner.uid) if mode == "per-user" else mode
    return container_network(ctx, owner, mode)


def _check_count(ctx: Context, owner: User, r: Reservation, limit: int | None, container: str) -> None:
    """`max_containers_per_user` (stopped ones count), under the reservation lock; the refusal names them."""
    if limit is None or r.container_count < limit:
        return
    held = ", ".join(f"{v.name} ({v.state})" for v in list_views(ctx, owner=owner))
    err = QuotaExceeded(
        f"{owner.name} already has {r.container_count} of {limit} containers: {held}",
        hint="remove one you no longer need (container-remove NAME)",
    )
    ctx.log("reject", container, user=owner.name, code=err.code, reason=err.message)
    raise err


def _create(gateway: Gateway, spec: ContainerSpec) -> str:
    return gateway.create(
        image=spec.image,
        name=spec.name,
        command=list(spec.command) if spec.command else None,
        labels=spec.labels,
        host_config=spec.host_config(),
        environment=spec.environment,
        user=spec.user,
        working_dir=spec.working_dir,
        hostname=spec.hostname,
    )


def _attachment(attachment: Attachment) -> tuple[tuple[str, ...], dict[str, str]]:
    return tuple(attachment.device_ids), dict(attachment.env)
