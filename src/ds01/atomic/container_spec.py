"""What a ds01 container is made of, built once and turned into engine arguments or a `docker create` line."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ds01.atomic.host_paths import WORKDIR as WORKDIR
from ds01.config import Limits

# The main process only keeps the container alive (work happens through attach, run and exec); under
# docker-init it ends at once on stop. Both coreutils and busybox `sleep` accept `infinity`.
IDLE_COMMAND = ("sleep", "infinity")
SECURITY_OPTS = ("no-new-privileges",)


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False

    def engine(self) -> dict[str, Any]:
        return {
            "Type": "bind",
            "Source": self.source,
            "Target": self.target,
            "ReadOnly": self.read_only,
            "BindOptions": {"Propagation": "rprivate"},
        }

    def flag(self) -> str:
        return f"type=bind,source={self.source},target={self.target}" + (
            ",readonly" if self.read_only else ""
        )


@dataclass(frozen=True)
class ContainerSpec:
    image: str
    name: str
    hostname: str
    user: str
    command: tuple[str, ...] | None
    labels: Mapping[str, str]
    environment: Mapping[str, str]
    mounts: tuple[Mount, ...]
    network: str
    init: bool
    nano_cpus: int | None = None
    mem_limit: int | None = None
    memswap_limit: int | None = None
    shm_size: int | None = None
    pids_limit: int | None = None
    gpu_device_ids: tuple[str, ...] = ()
    cgroup_parent: str | None = None  # the owner's parent, when they have per-user totals (user_cgroup.py)
    working_dir: str = WORKDIR
    security_opt: tuple[str, ...] = field(default=SECURITY_OPTS)

    def host_config(self) -> dict[str, Any]:
        """Keyword arguments for the engine's HostConfig (never privileged, no added capabilities)."""
        hc: dict[str, Any] = {
            # Mounts of type bind, never Binds: dockerd then refuses a missing source instead of making it
            # as root (and ds01d has checked every source without following links just before).
            "mounts": [m.engine() for m in self.mounts],
            "network_mode": self.network,
            "init": self.init,
            "privileged": False,
            "security_opt": list(self.security_opt),
        }
        for key in ("nano_cpus", "mem_limit", "memswap_limit", "shm_size", "pids_limit", "cgroup_parent"):
            value = getattr(self, key)
            if value is not None:
                hc[key] = value
        if self.gpu_device_ids:
            from ds01.docker_gateway import gpu_device_request

            hc["device_requests"] = [gpu_device_request(list(self.gpu_device_ids))]
        return hc

    def docker_create_argv(self) -> list[str]:
        """The equivalent `docker create` command line, for --dry-run and the benchmark."""
        argv = [
            "docker",
            "create",
            "--name",
            self.name,
            "--hostname",
            self.hostname,
            "--user",
            self.user,
            "--workdir",
            self.working_dir,
            "--network",
            self.network,
        ]
        if self.init:
            argv.append("--init")
        for opt in self.security_opt:
            argv += ["--security-opt", opt]
        for m in self.mounts:
            argv += ["--mount", m.flag()]
        for key, value in self.environment.items():
            argv += ["--env", f"{key}={value}"]
        for key, value in self.labels.items():
            argv += ["--label", f"{key}={value}"]
        argv += _limit_flags(self)
        if self.cgroup_parent:
            argv += ["--cgroup-parent", self.cgroup_parent]
        if self.gpu_device_ids:
            argv += ["--gpus", f'"device={",".join(self.gpu_device_ids)}"']
        argv.append(self.image)
        argv += list(self.command or ())
        return argv

    def docker_create_line(self) -> str:
        return shlex.join(self.docker_create_argv())


def _docker_size(n: int) -> str:
    """`32g` when exact, else bytes: what the docker CLI reads back as the same number."""
    for unit, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if n and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}b"


def _limit_flags(spec: ContainerSpec) -> list[str]:
    flags = []
    if spec.nano_cpus is not None:
        flags += ["--cpus", f"{spec.nano_cpus / 1e9:g}"]
    if spec.mem_limit is not None:
        flags += ["--memory", _docker_size(spec.mem_limit)]
    if spec.memswap_limit is not None:
        flags += ["--memory-swap", _docker_size(spec.memswap_limit)]
    if spec.shm_size is not None:
        flags += ["--shm-size", _docker_size(spec.shm_size)]
    if spec.pids_limit is not None:
        flags += ["--pids-limit", str(spec.pids_limit)]
    return flags


@dataclass(frozen=True)
class LimitArgs:
    nano_cpus: int | None
    mem_limit: int | None
    memswap_limit: int | None
    shm_size: int | None
    pids_limit: int | None


def limit_args(limits: Limits, host_cpus: int | None = None) -> LimitArgs:
    """The user's resolved limits as engine values; CPUs capped at the host's (the engine refuses more)."""
    cpus = limits.max_cpus
    host_cpus = host_cpus or os.cpu_count() or 1
    nano = int(min(cpus, host_cpus) * 1e9) if cpus else None
    memory = limits.memory
    # A swap limit needs a memory limit, and may not be below it.
    swap = max(limits.memory_swap, memory) if memory is not None and limits.memory_swap is not None else None
    return LimitArgs(nano, memory, swap, limits.shm_size, limits.pids_limit)
