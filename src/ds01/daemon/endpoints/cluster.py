"""Endpoints of cluster mode (`cluster.backend: slurm`): a GPU deploy is a Slurm job the user submits; the
job's step asks this node's ds01d for the container with the GPUs Slurm assigned. ds01d believes only
slurmctld (`atomic/slurm_jobs.py`): the job must run here, be the caller's, and hold exactly those GPUs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ds01.daemon.routes import Request, route
from ds01.daemon.schema import Empty, limit
from ds01.errors import Ds01Error, EngineUnavailable, NotFound, OperationFailed, UsageError

if TYPE_CHECKING:
    from ds01.atomic.container_view import ContainerView
    from ds01.context import Context
    from ds01.identity import User

NAME = limit(max_len=128)
JOB = limit(max_len=12)
MIN_TIME_M = 1


def submission_plan(
    ctx: Context, owner: User, name: str, gpus: int, mig_profile: str | None
) -> dict[str, Any]:
    """What the client passes to sbatch, from the owner's resolved limits (`POST /deploy` in cluster mode)."""
    from ds01 import naming
    from ds01.atomic.slurm_jobs import MIG_TYPE

    if owner.uid != ctx.user.uid:
        raise UsageError(
            "in cluster mode a deploy is a Slurm job of its owner: it cannot be submitted for another user",
            hint=f"ask {owner.name} to run container-deploy, or use sbatch as an admin",
        )
    if mig_profile is not None and not MIG_TYPE.fullmatch(mig_profile):
        raise UsageError(
            f"--mig-profile {mig_profile!r} is not a MIG profile name", hint="e.g. --mig-profile 3g.40gb"
        )
    cluster = ctx.config.cluster
    lim = ctx.limits_for(owner).limits
    project = naming.normalise_name(name)
    count = max(gpus, 1)
    cap = lim.max_gpu_slots_per_container
    if cap is not None and count > cap:  # Slurm's quotas count GPUs per user; this cap is ds01's
        from ds01.errors import QuotaExceeded

        raise QuotaExceeded(
            f"a container may hold at most {cap} GPU slot{'s' if cap != 1 else ''}, you asked for {count}",
            hint=f"ask for --gpus {cap} or fewer",
        )
    gres = f"gpu:{mig_profile}:{count}" if mig_profile else f"gpu:{count}"  # MIG: a typed gres
    minutes = None if lim.max_runtime_h is None else max(MIN_TIME_M, math.floor(lim.max_runtime_h * 60))
    return {
        "name": project,
        "job_name": f"ds01:{project}",
        "gres": gres,
        "gpus": count,
        "mig_profile": mig_profile,
        "time_m": minutes,
        "cpus": None if lim.max_cpus is None else max(1, math.ceil(lim.max_cpus)),
        "mem_mb": None if lim.memory is None else max(1, lim.memory // (1024 * 1024)),
        "partition": cluster.partition,
        "account": cluster.account,
        "max_runtime_h": lim.max_runtime_h,
        "idle_timeout_h": lim.idle_timeout_h,
    }


def cluster_deploy(
    ctx: Context, owner: User, name: str, gpus: int, mig_profile: str | None
) -> dict[str, Any] | None:
    """`POST /deploy` of a GPU container in cluster mode: the sbatch plan, or None when NAME already runs
    here (the ordinary deploy reports it)."""
    from ds01 import naming
    from ds01.atomic.containers import RUNNING

    view = _job_container(ctx, naming.container_name(naming.normalise_name(name), owner.uid))
    if view is not None and view.uid == owner.uid and view.state in RUNNING:
        return None
    return {"action": "submit", "plan": submission_plan(ctx, owner, name, gpus, mig_profile)}


@route("GET", "/cluster", Empty)
def settings(req: Request[Empty]) -> dict[str, Any]:
    c = req.ctx.config.cluster
    return {"backend": c.backend, "partition": c.partition, "account": c.account, "registry": c.registry,
            "node": c.this_node() if c.slurm else None}  # fmt: skip


def _require_slurm(ctx: Context) -> None:
    if not ctx.config.cluster.slurm:
        raise UsageError("this server is not in cluster mode", hint="an admin sets cluster.backend: slurm")


def _job_container(ctx: Context, name: str) -> ContainerView | None:
    from ds01.atomic.containers import find_container

    try:
        return find_container(ctx, name)
    except NotFound:
        return None


@dataclass(frozen=True)
class StepStartBody:
    job_id: str = field(metadata=JOB)
    name: str = field(metadata=NAME)
    gpu_indices: tuple[int, ...] = field(default=(), metadata=limit(max_len=64))
    image: str | None = field(default=None, metadata=limit(max_len=512))
    mig_profile: str | None = field(default=None, metadata=limit(max_len=32))  # the job's gres Type
    # the user's own login to `cluster.registry`, for the pull of this start alone (never logged or kept)
    username: str | None = field(default=None, metadata=limit(max_len=256))
    password: str | None = field(default=None, metadata=limit(max_len=4096))
    identitytoken: str | None = field(default=None, metadata=limit(max_len=8192))


def registry_ref(registry: str, owner: User, name: str, image: str | None) -> str:
    """Where a node pulls from: the project's image as `image-push` put it, `<registry>/<user>/<name>:latest`
    (the name project-export uses too); an explicit image without a registry host, `<registry>/<image>`."""
    if image is None:
        return f"{registry}/{owner.name}/{name}:latest"
    first, slash, _ = image.partition("/")
    has_host = bool(slash) and ("." in first or ":" in first or first == "localhost")
    return image if has_host else f"{registry}/{image}"


def node_image(ctx: Context, owner: User, name: str, b: StepStartBody) -> str | None:
    """Cluster mode with `cluster.registry`: an image not on this node is pulled from the lab registry
    (with the user's login when the step sent one) before the create. The project's image is then named
    here as on the node that built it (`ds01-<uid>/<name>:latest`); the image to create from."""
    from ds01 import naming
    from ds01.atomic.container_create import check_image_owner
    from ds01.atomic.image_transfer import Login
    from ds01.docker_gateway import engine_errors

    registry = ctx.config.cluster.registry
    local = b.image or naming.image_name(name, owner.uid)
    if not registry or ctx.gateway.image_inspect(local) is not None:
        return b.image
    remote = registry_ref(registry, owner, name, b.image)
    if not remote.startswith(f"{registry}/"):
        return b.image  # only the lab registry is pulled from (another host's image: "not on this host")
    if ctx.gateway.image_inspect(remote) is not None:
        raise OperationFailed(
            f"{remote} already names an image on this node; ds01 will not move that name",
            hint="an admin removes that tag on this node",
        )
    login = Login(b.username, b.password, b.identitytoken)
    last = remote.rsplit("/", 1)[-1]
    repository, tag = remote.rsplit(":", 1) if ":" in last else (remote, "latest")
    ctx.out.info(f"{local} is not on this node: pulling {remote}")
    auth = login.auth_config(registry) or {}  # `{}`, never None: else docker-py sends ds01d's stored login
    try:
        with engine_errors(f"pull {remote}"):
            for item in ctx.gateway.api.pull(repository, tag=tag, stream=True, decode=True, auth_config=auth):
                if isinstance(item, dict) and (item.get("error") or item.get("errorDetail")):
                    raise OperationFailed(str(item.get("error") or item.get("errorDetail")))
    except EngineUnavailable:
        raise
    except Ds01Error as err:
        first = (err.message.strip().splitlines() or ["no reason given"])[0][:300]
        raise NotFound(
            f"{local} is not on this node and the pull of {remote} failed: {first}",
            hint=f"push it from the node that built it: image-push {name} {remote}",
        ) from None
    raw = ctx.gateway.image_inspect(remote)
    if raw is None:
        raise OperationFailed(f"the pull of {remote} left no image", hint="try again")
    try:
        check_image_owner(owner, remote, raw)  # someone else's image under this user's name: refused
    except Ds01Error:
        ctx.gateway.remove_image(remote)
        raise
    ctx.log("image_pull", None, user=owner.name, image=remote)
    if b.image is not None:
        return remote
    ctx.gateway.tag_image(remote, repository=naming.image_repository(name, owner.uid), tag="latest")
    ctx.gateway.remove_image(remote)  # only the registry's name goes; the image stays as the project's
    return None


@route("POST", "/cluster/start", StepStartBody)
def step_start(req: Request[StepStartBody]) -> dict[str, Any]:
    """The job's step: create and start NAME with the job's GPUs, after slurmctld vouched for the job."""
    from ds01 import naming
    from ds01.atomic import slurm_jobs
    from ds01.atomic.container_create import CreateRequest
    from ds01.atomic.containers import RUNNING
    from ds01.atomic.removal import remove_and_release
    from ds01.daemon.reconcile import journaled
    from ds01.orchestrators.deploy import deploy_container, one_at_a_time

    ctx, b = req.ctx, req.body
    _require_slurm(ctx)
    owner = ctx.user
    job = slurm_jobs.show_job(slurm_jobs.check_job_id(b.job_id))
    node = ctx.config.cluster.this_node()
    slurm_jobs.verify_job(job, uid=owner.uid, node=node, gpu_indices=b.gpu_indices, mig_profile=b.mig_profile)
    if not b.gpu_indices:
        raise UsageError(f"Slurm job {job.job_id} holds no GPU", hint="cluster mode runs GPU containers only")
    slurm_jobs.check_gres_layout(ctx.config.gpu, node)
    name = naming.normalise_name(b.name)
    docker_name = naming.container_name(name, owner.uid)
    with one_at_a_time(docker_name):
        old = _job_container(ctx, docker_name)
        if old is not None:
            if old.labels.get(naming.LABEL_SLURM_JOB) == job.job_id and old.state in RUNNING:
                return {"action": "running", "container": docker_name, "job_id": job.job_id}
            if old.state in RUNNING:
                raise OperationFailed(
                    f"{name} already runs (outside job {job.job_id})",
                    hint=f"retire it first: container-retire {name}",
                )
            remove_and_release(ctx, old, reason="cluster-restart", by="ds01d")  # a new job: new GPUs
    image = node_image(ctx, owner, name, b)
    request = CreateRequest(
        name=name, image=image, gpus=len(b.gpu_indices), interface="orchestration",
        gpu_indices=tuple(b.gpu_indices), slurm_job=job.job_id, mig_profile=b.mig_profile,
    )  # fmt: skip
    with journaled(ctx, "deploy", docker_name, user=owner.name):
        d = deploy_container(ctx, owner, request)
    ctx.log("slurm-start", docker_name, user=owner.name, job=job.job_id, node=node, gpus=list(b.gpu_indices))
    return {
        "action": d.action,
        "container": docker_name,
        "job_id": job.job_id,
        "entry": d.entry,
        "idle_timeout_h": d.idle_timeout_h,
        "max_runtime_h": d.max_runtime_h,
    }


@dataclass(frozen=True)
class StepStopBody:
    job_id: str = field(metadata=JOB)
    name: str = field(metadata=NAME)


@route("POST", "/cluster/stop", StepStopBody)
def step_stop(req: Request[StepStopBody]) -> dict[str, Any]:
    """The job ends (time limit, scancel): stop the caller's container of that job; its workspace stays."""
    from ds01 import naming
    from ds01.atomic import slurm_jobs
    from ds01.atomic.containers import find_container, stop_container
    from ds01.errors import PermissionDenied

    ctx, b = req.ctx, req.body
    _require_slurm(ctx)
    slurm_jobs.check_job_id(b.job_id)
    view = find_container(ctx, b.name)  # the caller's own (another's: exit 5)
    if view.labels.get(naming.LABEL_SLURM_JOB) != b.job_id:
        raise PermissionDenied(
            f"{view.name} does not run in Slurm job {b.job_id}",
            hint="a step stops only its own job's container",
        )
    stopped = stop_container(ctx, view, timeout=5)
    return {"stopped": stopped, "container": view.docker_name, "job_id": b.job_id}


@route("GET", "/cluster/jobs", Empty)
def jobs(req: Request[Empty]) -> list[dict[str, Any]]:
    """ds01's Slurm jobs of the caller (of everyone for an admin): state, pending reason, node, GPUs."""
    from ds01.atomic import slurm_jobs

    ctx = req.ctx
    _require_slurm(ctx)
    who = None if ctx.is_admin else ctx.user.name
    return [
        {"job_id": j.job_id, "name": j.name.removeprefix("ds01:"), "user": j.user, "state": j.state,
         "reason": j.reason, "node": j.nodes, "gres": j.gres}
        for j in slurm_jobs.list_jobs(who)
    ]  # fmt: skip
