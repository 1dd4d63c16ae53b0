"""A GPU deploy in cluster mode: `sbatch` as the user, then wait for the job's container.

ds01d answers `POST /deploy` with a plan (`action: submit`): the job name `ds01:<project>`, the gres, the
time limit from `max_runtime_h`, CPUs and memory from the user's limits, the partition. The job's batch
script runs `ds01 cluster-step NAME` on the node Slurm picks; the step asks that node's ds01d for the
container. Without `--wait` a job Slurm cannot start at once is cancelled (exit 4, with Slurm's reason), as
a deploy without a free GPU is; with `--wait` the wait is Slurm's pending state.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ds01.errors import NoCapacity, OperationFailed, UsageError

if TYPE_CHECKING:
    from ds01.client import Client

IMMEDIATE_S = 10.0  # without --wait: how long a job may pend before it counts as "no GPU free"
START_S = 180.0  # from RUNNING until the step's container must be up
POLL_S = 0.25
ENDED = {
    "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL",
    "DEADLINE",
}  # fmt: skip


def ds01_program() -> str:
    """The `ds01` the job's step runs: the one next to this interpreter, or the one on PATH."""
    here = Path(sys.executable).parent / "ds01"
    return str(here) if here.exists() else (shutil.which("ds01") or "ds01")


def srun_argv(job_id: str, command: str, *args: str, pty: bool) -> list[str]:
    """The user's own `srun` into the job: a step that overlaps the running one, on the job's node, where
    that node's ds01d judges the caller again (the peer uid of its socket)."""
    program = str(Path(ds01_program()).with_name(command))
    return ["srun", f"--jobid={job_id}", "--overlap", "--quiet", *(["--pty"] if pty else []), program, *args]


def log_dir() -> Path:
    """Where the job's output goes: the user's own cache (the user's own rights, home on shared storage)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ds01" / "slurm"


def batch_script(name: str, image: str | None, mig_profile: str | None = None) -> str:
    argv = [ds01_program(), "cluster-step", name, *(["--image", image] if image else []),
            *(["--mig-profile", mig_profile] if mig_profile else [])]  # fmt: skip
    return (
        "#!/bin/sh\n# ds01: the container of this job lives as long as this step\nexec "
        + shlex.join(argv)
        + "\n"
    )


def sbatch_argv(plan: dict[str, Any], *, output: Path) -> list[str]:
    argv = ["sbatch", "--parsable", f"--job-name={plan['job_name']}", f"--gres={plan['gres']}", "--nodes=1",
            "--ntasks=1", f"--output={output}", f"--chdir={Path.home()}"]  # fmt: skip
    if plan.get("cpus"):
        argv.append(f"--cpus-per-task={plan['cpus']}")
    if plan.get("mem_mb"):
        argv.append(f"--mem={plan['mem_mb']}M")
    if plan.get("time_m"):
        argv.append(f"--time={plan['time_m']}")
    if plan.get("partition"):
        argv.append(f"--partition={plan['partition']}")
    if plan.get("account"):
        argv.append(f"--account={plan['account']}")
    return argv


def _slurm(argv: list[str], *, input: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise OperationFailed(
            f"{argv[0]} is not installed here", hint="cluster mode needs Slurm's client tools on this host"
        ) from None
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"{argv[0]} did not answer within 60 s", hint="is slurmctld up?") from None


def submit(plan: dict[str, Any], image: str | None) -> str:
    """sbatch the plan as the user; the job id."""
    out_dir = log_dir()
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    argv = sbatch_argv(plan, output=out_dir / "%j.out")
    done = _slurm(argv, input=batch_script(plan["name"], image, plan.get("mig_profile")))
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        raise OperationFailed(
            f"Slurm refused the job: {detail}", hint="check-limits shows what was asked for"
        )
    return done.stdout.strip().split(";")[0]


@dataclass(frozen=True)
class JobState:
    state: str
    reason: str
    nodes: str


def job_state(job_id: str) -> JobState | None:
    """The job in squeue (None once it left it)."""
    done = _slurm(["squeue", "-h", "-j", job_id, "-o", "%T|%r|%N"])
    line = done.stdout.strip()
    if done.returncode != 0 or not line:
        return None
    state, reason, nodes = [*line.split("|"), "", ""][:3]
    return JobState(state, reason, nodes)


def cancel(job_id: str) -> None:
    _slurm(["scancel", job_id])


def _output_tail(job_id: str) -> str:
    path = log_dir() / f"{job_id}.out"
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return f": {lines[-1]}" if lines else ""


def wait_running(
    job_id: str, *, wait: bool, timeout_s: float | None, on_pending: Callable[[JobState], None] | None = None
) -> JobState:
    """Until the job runs. Not waiting: a job still pending after IMMEDIATE_S is cancelled (exit 4)."""
    started = time.monotonic()
    limit = timeout_s if wait else IMMEDIATE_S
    last: JobState | None = None
    while True:
        st = job_state(job_id)
        if st is None or st.state in ENDED:
            raise OperationFailed(
                f"Slurm job {job_id} ended before its container started{_output_tail(job_id)}",
                hint=f"its output: {log_dir() / (job_id + '.out')}",
            )
        if st.state == "RUNNING":
            return st
        if on_pending and st != last:
            on_pending(st)
        last = st
        if limit is not None and time.monotonic() - started > limit:
            cancel(job_id)
            reason = st.reason if st.reason not in ("None", "") else st.state.lower()
            if wait:
                raise NoCapacity(f"gave up waiting for Slurm job {job_id} ({reason})", hint="try again later")
            raise NoCapacity(
                f"no GPU free in Slurm now ({reason}): job {job_id} cancelled",
                hint="add --wait to wait in Slurm's queue for one",
            )
        time.sleep(POLL_S)


def entry_on_node(job_id: str, name: str) -> dict[str, Any]:
    """NAME's container-list entry from the ds01d of the job's node (another node than this one): the user's
    own `srun --jobid ID --overlap container-list --json` there; `{}` while it is not there yet."""
    import json

    done = _slurm(srun_argv(job_id, "container-list", "--json", pty=False))
    try:
        entries = json.loads(done.stdout) if done.returncode == 0 else []
    except ValueError:
        entries = []
    return next((e for e in entries if isinstance(e, dict) and e.get("name") == name), {})


def wait_container(client: Client, name: str, job_id: str) -> dict[str, Any]:
    """The container's list entry once the job's step has it running on its node: from this ds01d when the
    job runs here, else from the job's node through `srun --overlap` (a deploy typed on a login node)."""
    from ds01.client import path_of
    from ds01.errors import NotFound

    here = client.call("GET", path_of("cluster")).get("node")
    deadline = time.monotonic() + START_S
    st = job_state(job_id)
    while time.monotonic() < deadline:
        elsewhere = st is not None and bool(st.nodes) and st.nodes != here
        if elsewhere:
            entry = entry_on_node(job_id, name)
        else:
            try:
                entry = client.call("GET", path_of("containers", name), {})
            except NotFound:
                entry = {}
        if entry.get("slurm_job") == job_id and entry.get("status") == "running":
            return entry
        st = job_state(job_id)
        if st is None or st.state in ENDED:
            raise OperationFailed(
                f"Slurm job {job_id} ended before its container started{_output_tail(job_id)}",
                hint=f"its output: {log_dir() / (job_id + '.out')}",
            )
        time.sleep(4 * POLL_S if elsewhere else POLL_S)
    cancel(job_id)
    raise OperationFailed(f"the container of Slurm job {job_id} did not start within {START_S:g} s")


def deploy(
    client: Client,
    plan: dict[str, Any],
    *,
    image: str | None,
    wait: bool,
    timeout_s: float | None,
    detach: bool,
) -> dict[str, Any]:
    """Submit, wait (Slurm's pending state), return a deploy result like ds01d's (`action` created, or
    `queued` for --detach)."""
    if detach and not wait:
        raise UsageError("--detach goes with --wait", hint="add --wait")
    out = client.out
    job_id = submit(plan, image)
    if detach:
        if out.json_mode:
            out.json({"action": "queued", "name": plan["name"], "slurm_job": job_id})
        else:
            out.say(
                f"[bold]{plan['name']}[/bold] waits in Slurm's queue as job {job_id}; "
                "it starts when Slurm runs it"
            )
            out.hint(f"ds01 queue shows it; scancel {job_id} takes it out")
        return {"action": "queued", "slurm_job": job_id}

    def pending(st: JobState) -> None:
        if not out.json_mode:
            reason = "" if st.reason in ("None", "") else f" ({st.reason})"
            out.info(f"Slurm job {job_id}: {st.state.lower()}{reason}")

    try:
        wait_running(job_id, wait=wait, timeout_s=timeout_s, on_pending=pending)
        entry = wait_container(client, plan["name"], job_id)
    except KeyboardInterrupt:
        cancel(job_id)
        raise
    return {
        "action": "created",
        "entry": entry,
        "slurm_job": job_id,
        "idle_timeout_h": plan.get("idle_timeout_h"),
        "max_runtime_h": plan.get("max_runtime_h"),
    }


def follow(
    client: Client,
    answer: dict[str, Any],
    *,
    image: str | None = None,
    wait: bool = False,
    timeout_s: float | None = None,
    detach: bool = False,
) -> dict[str, Any]:
    """ds01d's answer to `POST /deploy`, carried through: a cluster plan (`action: submit`) is submitted
    and waited for; anything else is returned as it is."""
    if answer.get("action") != "submit":
        return answer
    return deploy(client, answer["plan"], image=image, wait=wait, timeout_s=timeout_s, detach=detach)
