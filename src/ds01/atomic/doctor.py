"""`ds01 doctor`: is this host ready, and is it safe to share?"""

from __future__ import annotations

import grp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ds01.config import Config, load_config
from ds01.errors import Ds01Error
from ds01.identity import User

Status = Literal["ok", "warning", "failure"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def _writable(path: Path) -> bool:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return os.access(probe, os.W_OK)


def _dir_check(name: str, path: Path, user: User) -> Check:
    if _writable(path):
        return Check(name, "ok", f"{path} is writable")
    if not user.is_root:
        return Check(
            name,
            "warning",
            f"{path} is not writable by {user.name}",
            "run ds01 through the lab's sudo rule, or set DS01_STATE_DIR / DS01_LOG_DIR",
        )
    return Check(name, "failure", f"{path} is not writable", f"mkdir -p {path} && chmod 755 {path}")


def _engine_checks(config: Config) -> list[Check]:
    from ds01.docker_gateway import connect

    try:
        gateway = connect(timeout=10)
        version = gateway.version()
        info = gateway.info()
    except Ds01Error as err:
        return [Check("docker engine", "failure", err.message, err.hint or "")]
    checks = [
        Check("docker engine", "ok", f"Docker {version.get('Version')} (API {version.get('ApiVersion')})")
    ]
    runtime = info.get("DefaultRuntime", "runc")
    if runtime == "nvidia":
        checks.append(
            Check(
                "default runtime",
                "warning",
                "the default runtime is nvidia: a plain `docker run` sees every GPU",
                "ds01 passes NVIDIA_VISIBLE_DEVICES=void to CPU-only containers; "
                "remove default-runtime from /etc/docker/daemon.json to close the hole for others",
            )
        )
    else:
        checks.append(Check("default runtime", "ok", f"default runtime is {runtime}"))
    privileged = []
    for c in gateway.containers(all=True):  # a created one is privileged the moment it starts
        host = gateway.inspect(c.id).get("HostConfig", {})
        if host.get("Privileged") or "SYS_ADMIN" in (host.get("CapAdd") or []):
            privileged.append(f"{c.name} ({c.state})")
    if privileged:
        checks.append(
            Check(
                "privileged containers",
                "warning",
                f"privileged: {', '.join(privileged)}",
                "remove them and recreate them without --privileged / SYS_ADMIN",
            )
        )
    else:
        checks.append(Check("privileged containers", "ok", "none"))
    return checks


def _gpu_check(config: Config) -> Check:
    from ds01.gpu.probe import probe_inventory

    inventory = probe_inventory(config.gpu)
    if inventory.backend == "none":
        return Check(
            "gpus",
            "warning",
            inventory.notice or "no GPU backend: CPU-only containers only",
            "install the NVIDIA driver, or set gpu.backend: simulated for demos",
        )
    driver = f", driver {inventory.driver_version}" if inventory.driver_version else ""
    return Check(
        "gpus",
        "ok",
        f"{inventory.backend}: {len(inventory.gpus)} GPUs, "
        f"{len(inventory.slots())} slots, {round(inventory.total_gpueq, 2):g} gpueq{driver}",
    )


def _docker_group_check() -> Check:
    try:
        members = grp.getgrnam("docker").gr_mem
    except KeyError:
        return Check("docker group", "ok", "no docker group on this host")
    if members:
        return Check(
            "docker group",
            "warning",
            f"in the docker group (root-equivalent, bypass quotas): {', '.join(members)}",
            "remove them (gpasswd -d USER docker) and use the ds01 sudo rule",
        )
    return Check("docker group", "ok", "the docker group is empty")


def run_checks(user: User) -> list[Check]:
    try:
        config = load_config()
    except Ds01Error as err:
        return [Check("config", "failure", err.message, "fix the file, then run `ds01 doctor` again")]
    checks = [Check("config", "ok", f"{config.source} is valid ({len(config.groups)} groups)")]
    checks += _engine_checks(config)
    try:
        checks.append(_gpu_check(config))
    except Ds01Error as err:
        checks.append(Check("gpus", "failure", err.message, err.hint or ""))
    checks.append(_dir_check("state dir", config.paths.state_dir, user))
    checks.append(_dir_check("log dir", config.paths.log_dir, user))
    checks.append(_docker_group_check())
    return checks
