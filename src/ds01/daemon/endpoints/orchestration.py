"""Endpoints: the L3 orchestrators, deploy and retire, run inside ds01d so that a client killed half-way
leaves nothing behind (the operation finishes here, or a failed deploy is undone here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ds01.daemon.routes import Request, route
from ds01.daemon.schema import limit
from ds01.errors import NoCapacity, QuotaExceeded, UsageError

if TYPE_CHECKING:
    from ds01.context import Context

NAME = limit(max_len=128)
USER = limit(max_len=64)


@dataclass(frozen=True)
class DeployBody:
    name: str = field(metadata=NAME)
    image: str | None = field(default=None, metadata=limit(max_len=512))
    gpus: int | None = field(default=None, metadata=limit(min=0, max=64))
    mig_profile: str | None = field(default=None, metadata=limit(max_len=32))
    cpu_only: bool = False
    user: str | None = field(default=None, metadata=USER)
    interface: str = field(default="orchestration", metadata=limit(choices=("orchestration", "wizard")))
    wait: bool = False  # no slot free: join the queue (daemon/queue.py) instead of exit 4
    timeout_s: int | None = field(default=None, metadata=limit(min=1, max=30 * 24 * 3600))
    detach: bool = False  # with wait: answer at once; ds01d deploys when granted and tells the owner


@route("POST", "/deploy", DeployBody)
def deploy(req: Request[DeployBody]) -> dict[str, Any]:
    from ds01 import naming
    from ds01.atomic.container_create import CreateRequest
    from ds01.daemon.reconcile import journaled
    from ds01.orchestrators.deploy import deploy_container

    ctx, b = req.ctx, req.body
    owner = ctx.target_user(b.user)
    request = CreateRequest(
        name=b.name, image=b.image, gpus=b.gpus, mig_profile=b.mig_profile, cpu_only=b.cpu_only,
        interface=b.interface,
    )  # fmt: skip
    docker_name = naming.container_name(naming.normalise_name(b.name), owner.uid)
    if ctx.config.cluster.slurm and not b.cpu_only and (b.gpus or b.mig_profile):
        from ds01.daemon.endpoints.cluster import cluster_deploy  # a Slurm job the client submits

        plan = cluster_deploy(ctx, owner, b.name, b.gpus or 0, b.mig_profile)
        if plan is not None:
            return plan
    if (b.detach or b.timeout_s) and not b.wait:
        raise UsageError("--detach and --timeout go with --wait", hint="add --wait")
    if b.wait:
        from ds01.daemon.queue import queue_of, wait_for_grant

        fields = {k: getattr(b, k) for k in ("name", "image", "gpus", "mig_profile", "cpu_only", "interface")}
        if queue_of(req.daemon).has_waiting():  # others wait already: in line behind them, never past them
            return wait_for_grant(req, owner, fields, NoCapacity("others are waiting for a GPU"))
        try:
            with journaled(ctx, "deploy", docker_name, user=owner.name):
                d = deploy_container(ctx, owner, request)
        except NoCapacity as err:
            return wait_for_grant(req, owner, fields, err)
        except QuotaExceeded as err:  # the user's own quota: no grant would change that
            raise QuotaExceeded(
                f"{err.message}: waiting would not help unless you retire something", hint=err.hint
            ) from err
    else:
        with journaled(ctx, "deploy", docker_name, user=owner.name):  # a restart finishes or undoes it
            d = deploy_container(ctx, owner, request)
    return {
        "action": d.action,
        "entry": d.entry,
        "idle_timeout_h": d.idle_timeout_h,
        "max_runtime_h": d.max_runtime_h,
    }


@dataclass(frozen=True)
class RetireBody:
    name: str = field(metadata=NAME)
    save_changes: bool = False
    user: str | None = field(default=None, metadata=USER)


@route("POST", "/retire", RetireBody)
def retire(req: Request[RetireBody]) -> dict[str, Any]:
    from ds01.atomic.containers import find_container
    from ds01.daemon.reconcile import journaled
    from ds01.orchestrators.deploy import one_at_a_time
    from ds01.orchestrators.retire import retire_container

    ctx, b = req.ctx, req.body
    elsewhere = _job_elsewhere(ctx, b.name) if b.user is None and ctx.config.cluster.slurm else None
    if elsewhere is not None:  # the client retires it there, through the job (Slurm lets only the owner in)
        return {"elsewhere": elsewhere}
    view = find_container(ctx, b.name, user=b.user)
    with one_at_a_time(view.docker_name):
        view = find_container(ctx, view.docker_name, user=b.user)  # as it is now, after a deploy under way
        with journaled(  # a restart completes it (the workspace stays)
            ctx, "retire", view.docker_name, user=view.user, container_id=view.id, save=b.save_changes
        ):
            r = retire_container(ctx, view, save=b.save_changes)
    from ds01.atomic.slurm_jobs import cancel_job_of

    # cluster mode: Slurm frees the GPUs at once
    job = cancel_job_of(ctx, view.labels, view.docker_name, view.user or ctx.user.name, "retire")
    return {
        **({"slurm_job": job} if job else {}),
        "retired": r.view.name,
        "container": r.view.docker_name,
        "user": r.view.user,
        "stopped": r.stopped,
        "saved": {"image": r.saved.image, "packages": r.saved.packages} if r.saved else None,
        "freed_gpus": r.gpu_slots,
        "workspace": r.view.labels.get("ds01.workspace") or None,
    }


def _job_elsewhere(ctx: Context, name: str) -> dict[str, str] | None:
    """Cluster mode: the caller's running Slurm job of NAME when it runs on another node than this one
    (its container is there, made by that node's ds01d); None otherwise, and when Slurm cannot be asked:
    a container here can always be retired."""
    from ds01 import naming
    from ds01.atomic import slurm_jobs
    from ds01.errors import Ds01Error

    project = naming.normalise_name(name.split("._.")[0])
    here = ctx.config.cluster.this_node()
    try:
        jobs = slurm_jobs.list_jobs(ctx.user.name)
    except Ds01Error:  # squeue missing or slurmctld not answering
        return None
    for job in jobs:
        if job.name == f"ds01:{project}" and job.state == "RUNNING" and job.nodes and job.nodes != here:
            return {"job_id": job.job_id, "node": job.nodes}
    return None
