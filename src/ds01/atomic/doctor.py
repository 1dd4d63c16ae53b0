"""`ds01 doctor`: is this host ready, and is it safe to share?"""

from __future__ import annotations

import grp
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ds01.config import Config
from ds01.errors import Ds01Error

Status = Literal["ok", "warning", "failure"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class DaemonFacts:
    """What ds01d knows of itself: its socket, its config file and the last rejected edit of it."""

    socket: Path
    config_path: Path
    config_error: str | None = None


def _private_dir_check(name: str, path: Path) -> Check:
    """State and log dirs are ds01d's alone (CONTRACT §3): root-owned, no access for others."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Check(name, "ok", f"{path} does not exist yet; ds01d makes it 0700 when needed")
    except OSError as exc:
        return Check(name, "failure", f"{path}: {exc.strerror}", "check the path in paths.* of the config")
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISDIR(st.st_mode):
        return Check(name, "failure", f"{path} is not a directory", "remove it; ds01d makes it (mode 0700)")
    if st.st_uid != os.geteuid() or mode & 0o077:
        return Check(
            name,
            "warning",
            f"{path} is mode {mode:04o}, owner uid {st.st_uid}: others can read or plant files in it",
            f"chown root: {path} && chmod 700 {path}",
        )
    return Check(name, "ok", f"{path} is root-only ({mode:04o})")


def _private_file_check(name: str, path: Path) -> Check:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Check(name, "ok", f"{path} does not exist yet")
    except OSError as exc:
        return Check(name, "failure", f"{path}: {exc.strerror}")
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or mode & 0o077:
        return Check(
            name,
            "warning",
            f"{path} is mode {mode:04o}, owner uid {st.st_uid}",
            f"chown root: {path} && chmod 600 {path}",
        )
    return Check(name, "ok", f"{path} is root-only ({mode:04o})")


def _daemon_checks(facts: DaemonFacts) -> list[Check]:
    checks = []
    if os.geteuid() == 0:
        checks.append(Check("ds01d user", "ok", "ds01d runs as root"))
    else:
        checks.append(
            Check(
                "ds01d user",
                "warning",
                f"ds01d runs as uid {os.geteuid()}, not root: it cannot make workspaces for users",
                "run it as the ds01d.service unit (root)",
            )
        )
    try:
        mode = stat.S_IMODE(os.stat(facts.socket).st_mode)
    except OSError as exc:
        checks.append(Check("ds01d socket", "failure", f"{facts.socket}: {exc.strerror}", "restart ds01d"))
    else:
        if mode == 0o666:
            checks.append(Check("ds01d socket", "ok", f"{facts.socket} is mode 0666 (callers known by uid)"))
        else:
            checks.append(
                Check(
                    "ds01d socket",
                    "warning",
                    f"{facts.socket} is mode {mode:04o}: some users cannot reach ds01d",
                    f"chmod 666 {facts.socket} (ds01d judges every caller by its uid)",
                )
            )
    if facts.config_error:
        checks.append(
            Check(
                "config edit",
                "failure",
                f"the last edit of {facts.config_path} was rejected; ds01d keeps the last good config: "
                f"{facts.config_error}",
                f"fix the file (ds01d --check-config {facts.config_path}); ds01d re-reads it by itself",
            )
        )
    return checks


def _engine_checks(config: Config, *, admin: bool) -> list[Check]:
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
    if privileged and not admin:  # other users' container names are not for everyone
        privileged = [f"{len(privileged)} container(s)"]
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
            "remove them (gpasswd -d USER docker); ds01 needs no docker group",
        )
    return Check("docker group", "ok", "the docker group is empty")


def run_checks(config: Config, facts: DaemonFacts, *, admin: bool = False) -> list[Check]:
    """Inside ds01d: the config in force, ds01d itself, the engine, GPUs, state, hazards."""
    checks = [Check("config", "ok", f"{config.source} is valid ({len(config.groups)} groups)")]
    checks += _daemon_checks(facts)
    checks += _engine_checks(config, admin=admin)
    try:
        checks.append(_gpu_check(config))
    except Ds01Error as err:
        checks.append(Check("gpus", "failure", err.message, err.hint or ""))
    checks.append(_private_dir_check("state dir", config.paths.state_dir))
    checks.append(_private_dir_check("log dir", config.paths.log_dir))
    checks.append(_private_file_check("event log", config.paths.log_dir / "events.jsonl"))
    checks.append(_private_file_check("reservation lock", config.paths.state_dir / "gpu-reservation.lock"))
    checks.append(_docker_group_check())
    return checks
