"""Slurm jobs as ds01d sees them: asked of slurmctld as root, never taken from the caller.

A job's step asks ds01d for a container with the GPUs Slurm gave it; ds01d believes only
`scontrol -o -d show job ID`: the job runs, on this node, for the caller's uid, and holds exactly the GPU
indices (`GRES=gpu:N(IDX:...)`) asked for. `verify_job` refuses anything else (exit 3).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ds01.errors import NotFound, OperationFailed, PermissionDenied, UsageError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ds01.config import GpuSettings
    from ds01.context import Context
    from ds01.gpu.model import Slot

TIMEOUT_S = 20.0
_JOB_ID = re.compile(r"^[0-9]{1,12}$")
_GRES_ENTRY = r"gpu(?::([A-Za-z0-9_.-]+))?:(\d+)\(IDX:([0-9,\-]*)\)"
_GRES = re.compile(rf"{_GRES_ENTRY}(?:,{_GRES_ENTRY})*")
_GRES_ONE = re.compile(_GRES_ENTRY)
MIG_TYPE = re.compile(r"^[1-9][0-9]?g\.[0-9]{1,4}gb$")  # a gres Type that names a MIG profile: 3g.40gb


@dataclass(frozen=True)
class SlurmJob:
    job_id: str
    name: str
    uid: int | None
    state: str
    reason: str
    nodes: tuple[str, ...]
    gpu_indices: tuple[int, ...]  # on all its nodes
    time_limit: str = ""
    gpus_by_node: tuple[tuple[str, tuple[int, ...]], ...] = ()
    gpu_types: tuple[str | None, ...] = ()  # the gres Types it holds GPUs of (None: untyped), one each

    def gpus_on(self, node: str) -> tuple[int, ...]:
        return next((idx for n, idx in self.gpus_by_node if n == node), ())


def check_job_id(job_id: str) -> str:
    if not _JOB_ID.match(job_id):
        raise UsageError(f"{job_id!r} is not a Slurm job id", hint="a job id is a number, e.g. 4711")
    return job_id


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except FileNotFoundError as exc:
        raise OperationFailed(
            f"{argv[0]} is not installed on this node", hint="install Slurm's client tools (slurm-client)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise OperationFailed(
            f"{argv[0]} did not answer within {TIMEOUT_S:g} s", hint="is slurmctld up?"
        ) from exc


def expand_indices(spec: str) -> tuple[int, ...]:
    """`0-1,3` -> (0, 1, 3)."""
    out: list[int] = []
    for part in spec.split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return tuple(out)


def expand_nodes(spec: str) -> tuple[str, ...]:
    """A Slurm node list (`n[1-3],gpu7`) as names, by `scontrol show hostnames` (no guessing)."""
    if not spec or spec == "(null)":
        return ()
    if "[" not in spec:
        return tuple(n for n in spec.split(",") if n)
    done = _run(["scontrol", "show", "hostnames", spec])
    return tuple(done.stdout.split()) if done.returncode == 0 else ()


# Keys a user-chosen value (job name, comment, output paths: spaces and newlines allowed) could fake. In
# the genuine description of a one-node job each is there exactly once; a second one means a value holds
# Slurm's own words, and the whole description is refused rather than guessed at.
_SINGLE = ("JobId", "UserId", "JobState", "NodeList", "NumNodes", "Nodes", "GRES")


def parse_job(text: str) -> SlurmJob | None:
    """`scontrol -o -d show job ID`, tokenised on whitespace; None when it is no single clear description
    of a one-node job (a faked key repeated, or a job on several nodes)."""
    fields: dict[str, str] = {}
    counts: dict[str, int] = {}
    for token in text.split():
        key, eq, value = token.partition("=")
        if not eq:
            continue
        counts[key] = counts.get(key, 0) + 1
        fields.setdefault(key, value)
    if "JobId" not in fields:
        return None
    running = fields.get("JobState") == "RUNNING"
    for key in _SINGLE:  # a pending job has no details (Nodes, GRES) yet
        seen = counts.get(key, 0)
        if seen > 1 or (running and key == "Nodes" and seen != 1):
            return SlurmJob(fields["JobId"], "", None, "AMBIGUOUS", f"{key} appears {seen} times", (), ())
    uid_match = re.fullmatch(r".*\((\d+)\)", fields.get("UserId", ""))
    nodes = expand_nodes(fields.get("NodeList", ""))
    detail_nodes = expand_nodes(fields.get("Nodes", ""))
    held, types = parse_gres(fields.get("GRES", ""))
    by_node = tuple((n, tuple(sorted(set(held)))) for n in detail_nodes if held)
    return SlurmJob(
        job_id=fields["JobId"],
        name=fields.get("JobName", ""),
        uid=int(uid_match.group(1)) if uid_match else None,
        state=fields.get("JobState", ""),
        reason=fields.get("Reason", ""),
        nodes=nodes,
        gpu_indices=tuple(sorted(set(held))),
        time_limit=fields.get("TimeLimit", ""),
        gpus_by_node=by_node,
        gpu_types=types,
    )


def parse_gres(raw: str) -> tuple[tuple[int, ...], tuple[str | None, ...]]:
    """A job's `GRES=` detail (`gpu:2(IDX:0-1)`, `gpu:3g.40gb:1(IDX:4)`, or one entry per type of the node,
    `gpu:a100:1(IDX:0),gpu:1g.10gb:0(IDX:)`): the indices held and the Types they are of; nothing when it
    is no such list."""
    if not _GRES.fullmatch(raw):
        return (), ()
    held: list[int] = []
    types: list[str | None] = []
    for m in _GRES_ONE.finditer(raw):
        indices = expand_indices(m.group(3))
        if len(indices) != int(m.group(2)):
            return (), ()  # a count that does not match its indices: not Slurm's own words
        if indices:
            held.extend(indices)
            types.append(m.group(1))
    return tuple(held), tuple(types)


def _squeue_view(job_id: str) -> tuple[int, str, tuple[str, ...]] | None:
    """uid, state and nodes from squeue, in a format without any user-chosen text (a second witness)."""
    done = _run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%i|%U|%T|%N"])
    lines = done.stdout.splitlines() if done.returncode == 0 else []
    if len(lines) != 1:
        return None
    parts = lines[0].split("|")
    if len(parts) != 4 or parts[0] != job_id or not parts[1].isdigit():
        return None
    return int(parts[1]), parts[2], expand_nodes(parts[3])


def show_job(job_id: str) -> SlurmJob:
    """The job as slurmctld knows it; NotFound when it knows none by that id. Owner, state and nodes must
    agree between `scontrol` and `squeue`, else the job is AMBIGUOUS (never served)."""
    check_job_id(job_id)
    done = _run(["scontrol", "-o", "-d", "show", "job", job_id])
    job = parse_job(done.stdout) if done.returncode == 0 else None
    if job is None or job.job_id != job_id:
        raise NotFound(f"Slurm knows no job {job_id}", hint="submit one with container-deploy --gpus N")
    if job.state == "AMBIGUOUS":
        return job
    witness = _squeue_view(job_id)
    if witness is None or witness != (job.uid, job.state, job.nodes):
        return SlurmJob(job.job_id, "", None, "AMBIGUOUS", "scontrol and squeue disagree", (), ())
    return job


def verify_job(
    job: SlurmJob, *, uid: int, node: str, gpu_indices: Sequence[int], mig_profile: str | None = None
) -> None:
    """The caller's job, running on this node, holding exactly these GPU indices, all of the gres Type
    `mig_profile` (MIG), or none of a MIG Type (whole GPUs); else PermissionDenied."""
    if job.state == "AMBIGUOUS":
        raise PermissionDenied(
            f"Slurm job {job.job_id} has a description ds01 cannot trust ({job.reason})",
            hint="submit it again through container-deploy, without Slurm's own words in its name or paths",
        )
    if job.uid != uid:
        raise PermissionDenied(f"Slurm job {job.job_id} is not yours", hint="name a job you submitted")
    if job.state != "RUNNING":
        raise PermissionDenied(
            f"Slurm job {job.job_id} is {job.state.lower() or 'unknown'}, not running",
            hint="the container starts inside the job, once Slurm runs it",
        )
    if node not in job.nodes:
        raise PermissionDenied(
            f"Slurm job {job.job_id} runs on {','.join(job.nodes) or 'no node'}, not on {node}",
            hint="the job's step asks the ds01d of the node Slurm gave it",
        )
    mine = job.gpus_on(node)
    if tuple(sorted(set(gpu_indices))) != mine or len(set(gpu_indices)) != len(gpu_indices):
        held = ",".join(map(str, mine)) or "none"
        asked = ",".join(map(str, gpu_indices)) or "none"
        raise PermissionDenied(
            f"Slurm job {job.job_id} holds GPU indices {held}, not {asked}",
            hint="ask for exactly the GPUs Slurm assigned (SLURM_JOB_GPUS)",
        )
    if mig_profile is not None and job.gpu_types != (mig_profile,):
        held = ",".join(t or "untyped" for t in job.gpu_types) or "none"
        raise PermissionDenied(
            f"Slurm job {job.job_id} holds GPUs of type {held}, not MIG {mig_profile}",
            hint=f"the job must ask for --gres=gpu:{mig_profile}:N (container-deploy --mig-profile does)",
        )
    if mig_profile is None and any(t is not None and MIG_TYPE.match(t) for t in job.gpu_types):
        raise PermissionDenied(
            f"Slurm job {job.job_id} holds MIG instances ({','.join(t or '' for t in job.gpu_types)}), "
            "not whole GPUs",
            hint="deploy with --mig-profile P for a MIG instance",
        )


# -- MIG: Slurm's typed gres devices and ds01's slots ---------------------------------------------------
#
# A node with MIG lists one gres device per ds01 slot, `Name=gpu Type=<profile> File=...` for a MIG instance
# (any other Type, or none, for a whole GPU), one line each, in ds01's slot order (`gpu-status`: GPU index,
# then the GPU's instances in the probe's order). slurmd merges the lines of one Type into one record, in the
# order each Type first appears, and numbers the devices (IDX) record after record: IDX N is the N-th slot
# of `gres_order`. ds01d checks the node's records against its own slots before it maps an index.


def gres_key(slot: Slot) -> str | None:
    """The gres Type a slot is listed under: its MIG profile; None for a whole GPU."""
    return slot.profile if slot.kind == "mig" else None


def gres_order(slots: Sequence[Slot]) -> list[Slot]:
    """ds01's slots in the order of Slurm's gres indices (IDX)."""
    keys: list[str | None] = []
    for slot in slots:
        if gres_key(slot) not in keys:
            keys.append(gres_key(slot))
    return sorted(slots, key=lambda slot: keys.index(gres_key(slot)))


def _records(pairs: Sequence[tuple[str | None, int]]) -> list[tuple[str | None, int]]:
    """Runs of one key merged: [(None, 1), (None, 1), ('3g.40gb', 2)] -> [(None, 2), ('3g.40gb', 2)]."""
    out: list[tuple[str | None, int]] = []
    for key, count in pairs:
        if out and out[-1][0] == key:
            out[-1] = (key, out[-1][1] + count)
        else:
            out.append((key, count))
    return out


def node_gres(node: str) -> list[tuple[str | None, int]]:
    """The node's gpu gres records as slurmctld knows them (`Gres=gpu:a100:1,gpu:3g.40gb:3`): (MIG profile
    or None for any other Type, count), in Slurm's order."""
    done = _run(["scontrol", "-o", "show", "node", node])
    fields = (
        dict(t.partition("=")[::2] for t in done.stdout.split() if "=" in t) if done.returncode == 0 else {}
    )
    raw = re.sub(r"\([^)]*\)", "", fields.get("Gres", ""))
    pairs: list[tuple[str | None, int]] = []
    for m in re.finditer(r"(?:^|,)gpu(?::([A-Za-z0-9_.-]+))?:(\d+)(?=,|$)", raw):
        kind = m.group(1) if m.group(1) and MIG_TYPE.match(m.group(1)) else None
        pairs.append((kind, int(m.group(2))))
    return _records(pairs)


def check_node_gres(node: str, slots: Sequence[Slot]) -> None:
    """Slurm's gpu records of this node and ds01's slots must line up (Types, counts, order), else an index
    could name another slot than Slurm meant: OperationFailed, for the admin."""
    mine = _records([(gres_key(s), 1) for s in gres_order(slots)])
    theirs = node_gres(node)
    if mine != theirs:

        def shown(r: list[tuple[str | None, int]]) -> str:
            return ",".join(f"{k or 'whole'}:{n}" for k, n in r) or "none"

        raise OperationFailed(
            f"Slurm's GPUs of node {node} ({shown(theirs)}) do not match its GPU slots ({shown(mine)})",
            hint="an admin lists one gres.conf line per slot of gpu-status, in its order (docs/cluster.md)",
        )


def check_gres_layout(gpu: GpuSettings, node: str) -> None:
    """A node with MIG instances: Slurm's gres records must line up with this node's slots before a gres
    index names a slot (`gres_order`). A node of whole GPUs only: the index is the GPU's."""
    from ds01.gpu.probe import probe_inventory

    slots = probe_inventory(gpu).slots()
    if any(s.kind == "mig" for s in slots):
        check_node_gres(node, slots)


def cancel_job(job_id: str, *, signal: str | None = None) -> bool:
    """`scancel` as root; False when Slurm refused (the job may be gone already)."""
    check_job_id(job_id)
    argv = ["scancel", *([f"--signal={signal}"] if signal else []), job_id]
    return _run(argv).returncode == 0


@dataclass(frozen=True)
class QueueEntry:
    job_id: str
    name: str
    user: str
    state: str
    reason: str
    nodes: str
    gres: str


def list_jobs(user: str | None = None, *, name_prefix: str = "ds01:") -> list[QueueEntry]:
    """ds01's jobs in squeue (job names `ds01:<project>`), of one user or of all."""
    argv = ["squeue", "-h", "-o", "%i|%j|%u|%T|%r|%N|%b"]
    if user:
        argv += ["-u", user]
    done = _run(argv)
    if done.returncode != 0:
        return []
    out = []
    for line in done.stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 7 and parts[1].startswith(name_prefix):
            out.append(QueueEntry(*parts))
    return out


def with_slurm_jobs(
    entries: list[dict[str, Any]], user: str | None, *, pending: bool
) -> list[dict[str, Any]]:
    """container-list entries with their job (`slurm: {job_id, state, reason, node, gres}`), and, with
    `pending`, an entry (status `pending`) for each ds01 job that has no container yet."""
    jobs = {j.job_id: j for j in list_jobs(user)}
    out = []
    for entry in entries:
        job = jobs.pop(str(entry.get("slurm_job") or ""), None)
        out.append({**entry, "slurm": _job_doc(job)} if job else entry)
    if pending:
        for job in jobs.values():
            if job.state != "PENDING":
                continue
            out.append({
                "name": job.name.removeprefix("ds01:"), "container": "", "user": job.user, "uid": None,
                "status": "pending", "image": "", "gpus": [], "created_at": "", "workspace": "",
                "slurm_job": job.job_id, "slurm": _job_doc(job),
            })  # fmt: skip
    return out


def _job_doc(job: QueueEntry) -> dict[str, str]:
    return {"job_id": job.job_id, "state": job.state, "reason": job.reason, "node": job.nodes,
            "gres": job.gres.removeprefix("gres:")}  # fmt: skip


def cancel_job_of(ctx: Context, labels: Mapping[str, str], container: str, user: str, why: str) -> str | None:
    """A cluster container's job is cancelled once its container stops or goes (retire, idle stop): Slurm
    sees the GPUs free at once. The job id, or None for a container outside Slurm."""
    from ds01 import naming

    job_id = labels.get(naming.LABEL_SLURM_JOB) or ""
    if not job_id or not ctx.config.cluster.slurm:
        return None
    try:
        cancel_job(job_id)
    except (OperationFailed, UsageError) as err:
        ctx.out.warn(f"could not cancel Slurm job {job_id}: {err.message}")
        return None
    ctx.log("slurm-cancel", container, user=user, job=job_id, reason=why)
    return job_id
