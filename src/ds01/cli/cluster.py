"""Cluster mode commands: `ds01 cluster-step` (hidden: the step of a ds01 Slurm job), the Slurm part of
`ds01 queue`, and the way to a container on another node (`on_its_node`: `srun --jobid ID --overlap`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ds01.cli.common import connect, handle_errors

if TYPE_CHECKING:
    from ds01.client import Client


@handle_errors
def cluster_step(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The project name.")],
    image: Annotated[
        str | None, typer.Option("--image", help="Image (default: ds01-UID/NAME:latest).")
    ] = None,
    mig_profile: Annotated[
        str | None, typer.Option("--mig-profile", help="The job's MIG gres Type (e.g. 3g.40gb).")
    ] = None,
) -> None:
    """The step of a ds01 Slurm job: runs the container on this node while the job lives (not for people)."""
    from ds01.cli.image_transfer import login_for
    from ds01.cluster.step import run_step

    raise typer.Exit(run_step(connect(False), name, image, login_for, mig_profile))


def slurm_jobs(client: Client) -> list[dict[str, Any]] | None:
    """ds01's Slurm jobs (state, pending reason, node, GPUs); None when the server is not in cluster mode."""
    found = _cluster_jobs(client)
    return None if found is None else found[1]


def _cluster_jobs(client: Client) -> tuple[str | None, list[dict[str, Any]]] | None:
    """(this ds01d's node, ds01's Slurm jobs); None when the server is not in cluster mode."""
    from ds01.client import path_of

    settings = client.call("GET", path_of("cluster"))
    if settings.get("backend") != "slurm":
        return None
    jobs: list[dict[str, Any]] = client.call("GET", path_of("cluster", "jobs"))
    return settings.get("node"), jobs


def show_jobs(client: Client, jobs: list[dict[str, Any]]) -> None:
    out = client.out
    if not jobs:
        out.say("No ds01 jobs in Slurm.")
        return
    rows = [
        (j["job_id"], j["user"], j["name"], j["state"].lower(), "" if j["reason"] == "None" else j["reason"],
         j["node"], j["gres"].removeprefix("gres:"))
        for j in jobs
    ]  # fmt: skip
    out.table(("job", "user", "name", "state", "reason", "node", "gres"), rows)


def job_elsewhere(client: Client, name: str) -> str | None:
    """Cluster mode: the id of the caller's running job of NAME when it runs on another node than this
    ds01d's; None when it runs here, there is no such job, or the server is not in cluster mode. Inside
    that job's own step (`SLURM_JOB_ID`) the container is here: None."""
    from ds01 import naming

    project = naming.normalise_name(name.split("._.")[0])
    return next((job_id for job, job_id in jobs_elsewhere(client) if job == project), None)


def jobs_elsewhere(client: Client) -> list[tuple[str, str]]:
    """Cluster mode: (project, job id) of each of the caller's running jobs on another node than this
    ds01d's (not the one this command runs inside); [] when the server is not in cluster mode."""
    import os

    found = _cluster_jobs(client)
    if found is None:
        return []
    (here, jobs), me = found, client_user()
    return [
        (str(j["name"]), str(j["job_id"]))
        for j in jobs
        if j["state"] == "RUNNING" and j["user"] == me and j["node"] != here
        and os.environ.get("SLURM_JOB_ID") != j["job_id"]
    ]  # fmt: skip


def client_user() -> str:
    import os
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def on_its_node(
    client: Client, name: str, command: str, *args: str, user: str | None, pty: bool
) -> int | None:
    """Run `command NAME ...` on the node of the caller's job of NAME (owners only: `--user` stays here);
    its exit code, or None when the container is here (the caller goes on locally)."""
    import shutil
    import subprocess

    from ds01.cluster.submit import srun_argv
    from ds01.errors import OperationFailed

    if user is not None:
        return None
    job_id = job_elsewhere(client, name)
    if job_id is None:
        return None
    if shutil.which("srun") is None:
        raise OperationFailed(
            f"{name} runs on another node (Slurm job {job_id}) and srun is not installed here",
            hint="install Slurm's client tools, or log in to that node",
        )
    client.out.info(f"{name.split('._.')[0]} runs on another node: joining Slurm job {job_id}")
    return subprocess.call(srun_argv(job_id, command, name.split("._.")[0], *args, pty=pty))


def retire_on_its_node(client: Client, name: str, job_id: str, *, save: bool) -> list[dict[str, Any]]:
    """`container-retire NAME` for the caller's container on another node (typed on a login node): the
    node's ds01d retires it, asked by the caller's own `srun --jobid ID --overlap container-retire --json`
    (that ds01d judges the caller by its socket's peer uid and cancels the job), then the caller's own
    `scancel` makes sure the job is over (`job_id`: the job of NAME on another node). What it retired, or
    its error raised here as it was there; its messages pass through on stderr."""
    import json
    import shutil
    import subprocess

    from ds01 import protocol
    from ds01.cluster.submit import cancel, srun_argv
    from ds01.errors import OperationFailed

    if shutil.which("srun") is None:
        raise OperationFailed(
            f"{name} runs on another node (Slurm job {job_id}) and srun is not installed here",
            hint=f"scancel {job_id} stops it (its workspace stays), or log in to that node",
        )
    project = name.split("._.")[0]
    client.out.info(f"{project} runs on another node: retiring it there (Slurm job {job_id})")
    args = ["--yes", "--json", *(["--save-changes"] if save else [])]
    done = subprocess.run(
        srun_argv(job_id, "container-retire", project, *args, pty=False), stdout=subprocess.PIPE, text=True
    )
    cancel(job_id)  # the job ends with its container; after a failed retire there, scancel stops it
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        answer = None
    if done.returncode == 0 and isinstance(answer, list):
        return answer
    error = answer.get("error") if isinstance(answer, dict) else None
    raise protocol.error_from_payload(
        error or {"message": f"the retire on Slurm job {job_id}'s node said {done.stdout.strip()[-200:]!r}"}
    )
