"""`ds01 admin export-quotas --to slurm`: the YAML quotas as `sacctmgr -i` commands (one a line).

One account per ds01 group; each lab account a user in its group's account (users with the same resolved
limits share a command). Per user association (the resolved limits, overrides included):
- `GrpTRES=gres/gpu=N` from `max_gpu_equivalents` (whole GPUs, rounded down; under 1 but over 0 is 1),
  `cpu=` from `max_cpus_total`, `mem=` from `memory_total` (the user's totals over all their jobs);
- `MaxTRESPerJob=gres/gpu=` from `max_gpu_slots_per_container`, `cpu=` from `max_cpus` (rounded up),
  `mem=` from `memory` (MiB);
- `MaxWall` from `max_runtime_h` (whole minutes), `MaxJobs` from `max_containers_per_user`, `Priority`.
The account gets the group's per-job values too (Slurm copies Max* limits to users added later); a null
limit (unlimited) is `-1`, which clears it. Every command can run again: adding what exists is a no-op.
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ds01.export.quotas import (
    Account,
    Lossy,
    QuotaSet,
    Report,
    is_whole,
    node_rules,
    where,
    whole_cpus,
    whole_gpus,
)

SACCTMGR = "sacctmgr"
MIB = 1 << 20
USERS_PER_COMMAND = 50  # users named in one sacctmgr command (one commit in slurmdbd each)
_ACCOUNT_NAME = re.compile(r"[^a-z0-9_.-]+")


@dataclass(frozen=True)
class SlurmExport:
    commands: tuple[str, ...]
    lossy: tuple[Lossy, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"commands": list(self.commands), "lossy": [x.as_dict() for x in self.lossy]}


def account_name(group: str) -> str:
    """Slurm keeps account names lower-case; anything but a-z 0-9 _ . - becomes `_`."""
    return _ACCOUNT_NAME.sub("_", group.lower()).strip("_") or "ds01"


def wall(hours: float | None) -> str:
    """`max_runtime_h` as Slurm's [days-]hours:minutes:seconds, whole minutes (rounded down); -1 clears."""
    if hours is None:
        return "-1"
    minutes = max(1, math.floor(hours * 60 + 1e-9))
    days, rest = divmod(minutes, 24 * 60)
    text = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}-{text}" if days else text


def _n(value: int | None) -> str:
    return "-1" if value is None else str(value)


def _mib(size: int | None) -> str:
    return "-1" if size is None else str(max(1, size // MIB))


def _tres(**values: str) -> str:
    return ",".join(f"{k.replace('gres_gpu', 'gres/gpu')}={v}" for k, v in values.items())


def job_limits(acct: Account) -> list[str]:
    """The per-job and count limits, for an account (inherited by users added later) and each user."""
    per_job = _tres(
        cpu=_n(whole_cpus(acct.get("max_cpus"))),
        mem=_mib(acct.get("memory")),
        gres_gpu=_n(acct.get("max_gpu_slots_per_container")),
    )
    return [
        f"MaxTRESPerJob={per_job}",
        f"MaxWall={wall(acct.get('max_runtime_h'))}",
        f"MaxJobs={_n(acct.get('max_containers_per_user'))}",
        f"Priority={int(acct.get('priority') or 0)}",
    ]


def user_limits(user: Account) -> list[str]:
    total = whole_cpus(user.get("max_cpus_total"))
    grp = _tres(
        cpu=_n(total),
        mem=_mib(user.get("memory_total")),
        gres_gpu=_n(whole_gpus(user.get("max_gpu_equivalents"))),
    )
    return [f"GrpTRES={grp}", *job_limits(user)]


def _cmd(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in (SACCTMGR, "-i", *words))


def _batches(names: Sequence[str]) -> list[str]:
    return [",".join(names[i : i + USERS_PER_COMMAND]) for i in range(0, len(names), USERS_PER_COMMAND)]


def _user_commands(acct: str, members: Sequence[Account]) -> list[str]:
    """The members in `acct`, then their limits: users with the same limits share one command."""
    names = sorted(u.name for u in members)
    commands = []
    for batch in _batches(names):
        commands.append(_cmd("add", "user", batch, f"Account={acct}", f"DefaultAccount={acct}"))
        commands.append(_cmd("modify", "user", "where", f"name={batch}", "set", f"DefaultAccount={acct}"))
    alike: dict[tuple[str, ...], list[str]] = {}
    for user in members:
        alike.setdefault(tuple(user_limits(user)), []).append(user.name)
    for limits, users in alike.items():
        for batch in _batches(sorted(users)):
            where = ("where", f"name={batch}", f"account={acct}")
            commands.append(_cmd("modify", "user", *where, "set", *limits))
    return commands


def slurm_export(qs: QuotaSet) -> SlurmExport:
    report = Report()
    accounts = {g.name: account_name(g.name) for g in qs.groups}
    commands: list[str] = []
    for group in qs.groups:
        acct = accounts[group.name]
        if acct != group.name:
            report.add("group name", f"the Slurm account is {acct!r}", [group.name])
        commands.append(
            _cmd("add", "account", acct, f"Description=ds01 group {group.name}", "Organization=ds01")
        )
        commands.append(_cmd("modify", "account", "where", f"name={acct}", "set", *job_limits(group)))
    for group in qs.groups:
        commands += _user_commands(accounts[group.name], qs.members(group.name))
    left_out = [u.name for u in qs.users if u.group not in accounts]
    if left_out:
        report.add("users", "in no group of the config: left out", left_out)
    _lossy(report, qs)
    return SlurmExport(tuple(commands), tuple(report.lossy))


def _lossy(report: Report, qs: QuotaSet) -> None:
    report.add(
        "max_gpu_equivalents",
        "MIG slices count by weight in ds01 (a 1g slice of a 7-slice GPU is 1/7) but as 1 gres/gpu each in "
        "Slurm; the share becomes whole GPUs, rounded down (under 1 but over 0: 1)",
        where(qs, "max_gpu_equivalents", lambda v: v is not None and not is_whole(v)),
    )
    found = where(qs, "allow_full_gpu", lambda v: v is False)
    if found:
        report.add(
            "allow_full_gpu",
            "Slurm cannot refuse a full GPU to an account; give these users a partition or QOS of MIG "
            "nodes only (gres types such as gpu:1g.10gb)",
            found,
        )
    found = where(qs, "max_cpus", lambda v: v is not None and not is_whole(v))
    if found:
        report.add("max_cpus", "Slurm counts whole CPUs: rounded up, as a ds01 job asks for them", found)
    report.add(
        "max_runtime_h",
        "MaxWall limits each job; ds01 counts from a container's first start (a restart is a new job)",
        where(qs, "max_runtime_h", lambda v: v is not None),
    )
    report.add(
        "max_containers_per_user",
        "MaxJobs counts running jobs; ds01 counts stopped containers too (they hold no job in Slurm)",
    )
    report.add(
        "priority",
        "an association's Priority counts only with PriorityWeightAssoc in slurm.conf; Slurm's fair-share "
        "(PriorityDecayHalfLife) stands in for queue.fair_share_window_h",
    )
    for key, what in (("shm_size", "/dev/shm size"), ("memory_swap", "swap"), ("pids_limit", "pids limit")):
        report.add(key, f"the container's {what}: no Slurm limit; ds01d sets it on each container")
    node_rules(report, qs, "Slurm")
    report.add(
        "users",
        "only the accounts that exist now are exported; run the export again after adding users "
        "(a user with no association cannot submit under AccountingStorageEnforce=associations)",
    )


@dataclass(frozen=True)
class Applied:
    command: str
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 or "nothing new added" in self.output.lower()

    def as_dict(self) -> dict[str, Any]:
        return {"command": self.command, "ok": self.ok, "returncode": self.returncode, "output": self.output}


Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False)


def apply(commands: Sequence[str], run: Runner = _run) -> list[Applied]:
    """Run each command; an `add` of what exists ("Nothing new added") counts as done."""
    results = []
    for line in commands:
        try:
            done = run(shlex.split(line))
            code, text = done.returncode, (done.stdout + done.stderr).strip()
        except FileNotFoundError:
            code, text = 127, f"{SACCTMGR} not found: run --apply on a host with Slurm's client commands"
        except subprocess.TimeoutExpired:
            code, text = 124, "no answer in 120 s (is slurmdbd running?)"
        results.append(Applied(line, code, text))
    return results
