"""`ds01 cluster-step NAME`: the step of a ds01 Slurm job, on the node Slurm allocated, as the user.

It asks this node's ds01d for the container with the job's GPUs (`SLURM_JOB_ID`, `SLURM_JOB_GPUS`: the real
indices; ds01d checks them with slurmctld), then lives as long as the container runs. When Slurm ends the job
(time limit, scancel) it gets SIGTERM and asks ds01d to stop the container (the workspace stays); when the
container goes (retire, idle stop) the step ends, so the job ends and Slurm frees the GPUs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from ds01.errors import NotFound, UsageError

if TYPE_CHECKING:
    from ds01.client import Client

POLL_S = 2.0


def job_gpus(environ: dict[str, str]) -> tuple[str, tuple[int, ...]]:
    job_id = environ.get("SLURM_JOB_ID", "")
    if not job_id:
        raise UsageError(
            "cluster-step runs inside a Slurm job (no SLURM_JOB_ID)", hint="use container-deploy"
        )
    raw = environ.get("SLURM_JOB_GPUS", "")
    try:
        indices = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"SLURM_JOB_GPUS={raw!r} is not a list of GPU indices") from None
    return job_id, indices


def registry_login(client: Client, login_for: Callable[[str], dict[str, str]] | None) -> dict[str, str]:
    """The user's own login to the lab registry (`cluster.registry`), read with the user's rights by
    `login_for` (cli: from ~/.docker/config.json), for the node's pull of the image when it is not there
    yet; `{}` without one."""
    from ds01.client import path_of

    registry = client.call("GET", path_of("cluster")).get("registry")
    if not registry or login_for is None:
        return {}
    try:
        return login_for(str(registry))
    except UsageError as err:  # an unreadable config: try the pull without a login
        client.out.warn(f"{err.message}: pulling without a login")
        return {}


def run_step(
    client: Client,
    name: str,
    image: str | None,
    login_for: Callable[[str], dict[str, str]] | None = None,
    mig_profile: str | None = None,
) -> int:
    from ds01.client import path_of

    job_id, indices = job_gpus(dict(os.environ))
    ended = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        ended.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    body = {"job_id": job_id, "name": name, "gpu_indices": list(indices), "image": image,
            **({"mig_profile": mig_profile} if mig_profile else {}),
            **registry_login(client, login_for)}  # fmt: skip
    result = client.call("POST", path_of("cluster", "start"), body)
    container = result["container"]
    client.out.info(f"Slurm job {job_id}: {container} runs with GPUs {','.join(map(str, indices))}")
    while not ended.wait(POLL_S):
        try:
            entry = client.call("GET", path_of("containers", container), {})
        except NotFound:
            client.out.info(f"{container} is gone: the job ends")
            return 0
        if entry.get("slurm_job") != job_id or entry.get("status") not in ("running", "paused", "restarting"):
            client.out.info(f"{container} is {entry.get('status')}: the job ends")
            return 0
    client.out.info(f"Slurm ends job {job_id}: stopping {container} (its workspace stays)")
    with contextlib.suppress(NotFound):  # retired meanwhile
        client.call("POST", path_of("cluster", "stop"), {"job_id": job_id, "name": container})
    return 0
