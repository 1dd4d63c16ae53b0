"""`ds01 doctor`: is this host ready, and is it safe to share?"""

from __future__ import annotations

import grp
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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


def _daemon_checks(facts: DaemonFacts, *, admin: bool) -> list[Check]:
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
                f"the last edit of {facts.config_path} was rejected; ds01d keeps the last good config"
                + (f": {facts.config_error}" if admin else " (admins see why)"),
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
    checks.append(_userns_check(info))
    checks.append(_network_check(config, gateway))
    privileged = []
    everything = gateway.containers(all=True)
    checks.append(_corrupt_check(everything, admin=admin))
    for c in everything:  # a created one is privileged the moment it starts
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


def identity_corruption(name: str, labels: dict[str, str] | Any) -> str | None:
    """Why a ds01 container's labels (`ds01.uid`, `ds01.user`, `ds01.project`, its name) disagree, or None."""
    import pwd

    from ds01 import naming

    raw_uid = labels.get(naming.LABEL_UID, "")
    if not raw_uid.isdigit() or raw_uid != str(int(raw_uid)):
        return f"ds01.uid {raw_uid!r} is not a uid"
    uid = int(raw_uid)
    base, from_name = naming.split_container_name(name)
    if from_name is not None and from_name != uid:
        return f"ds01.uid {uid} but the name says {from_name}"
    if not labels.get(naming.LABEL_PROJECT) or labels.get(naming.LABEL_PROJECT) != base:
        return f"ds01.project {labels.get(naming.LABEL_PROJECT, '')!r} is not {base!r}"
    try:
        account = pwd.getpwuid(uid).pw_name
    except KeyError:
        return None  # an account since deleted: the reaper's business, not corruption
    if labels.get(naming.LABEL_USER) != account:
        return f"ds01.user {labels.get(naming.LABEL_USER, '')!r} is not uid {uid}'s account {account!r}"
    return None


def _corrupt_check(containers: list[Any], *, admin: bool) -> Check:
    """ds01 containers whose GPU labels do not parse (they hold nothing, never a free pass) or whose identity
    labels disagree with their name and the account of their uid: say so."""
    from ds01.atomic.holdings import corrupt_containers, is_managed

    bad = [(f"{c.user}/{c.container}", c.reason) for c in corrupt_containers(containers)]
    for c in containers:
        if is_managed(c):
            why = identity_corruption(c.name, c.labels)
            if why is not None:
                bad.append((f"{c.labels.get('ds01.user', '?')}/{c.name}", why))
    if not bad:
        return Check("corrupt labels", "ok", "every ds01 container's ds01.* labels parse and agree")
    shown = [f"{who}: {why}" for who, why in bad] if admin else [f"{len(bad)} container(s)"]
    return Check(
        "corrupt labels",
        "warning",
        f"ds01.* labels that do not parse or agree (GPU ones count as holding nothing): {'; '.join(shown)}",
        "remove them (container-remove NAME --user OWNER); ds01d writes every ds01.* label itself",
    )


def _userns_check(info: dict[str, Any]) -> Check:
    """Advice: with userns-remap, root in a container is not root on the host."""
    options = [str(o) for o in info.get("SecurityOptions") or []]
    if any(o == "name=userns" or o.startswith("name=userns,") for o in options):
        return Check("userns-remap", "ok", "the engine maps container root to an unprivileged host range")
    return Check(
        "userns-remap",
        "warning",
        "the engine runs without userns-remap: root in a container is root on the host's files it reaches",
        'advice: set "userns-remap": "default" in /etc/docker/daemon.json (then rebuild images)',
    )


def _network_check(config: Config, gateway: Any) -> Check:
    """The network mode the config asks for, and whether the engine can give bridges at all."""
    mode = config.containers.network
    try:
        networks = gateway.http.request("GET", "/networks", what="networks") or []
    except Ds01Error as err:
        return Check("network", "warning", f"containers.network is {mode}; the engine's networks: {err}")
    drivers = {str(n.get("Driver")) for n in networks}
    bridge = "bridge" in drivers
    has = "the engine has bridge networking" if bridge else "the engine has no bridge networking"
    if mode == "none":
        return Check("network", "ok", f"containers.network is none (no network in containers); {has}")
    if not bridge and mode == "per-user":
        return Check(
            "network",
            "warning",
            f"containers.network is per-user but {has}: in force is none (containers get no network; "
            "each create says so)",
            "start dockerd with a bridge (remove --bridge=none), or set containers.network: none",
        )
    if not bridge:
        return Check(
            "network",
            "failure",
            f"containers.network is {mode} but {has}: containers cannot be created",
            "start dockerd with a bridge (remove --bridge=none), or set containers.network: none",
        )
    if mode == "bridge":
        return Check(
            "network",
            "warning",
            f"containers.network is bridge: every user's containers share one network and reach each other; "
            f"{has}",
            "set containers.network: per-user",
        )
    return Check(
        "network",
        "ok",
        f"containers.network is {mode} (in force); {has}; users are kept apart by dockerd's iptables "
        "rules (do not run dockerd with --iptables=false)",
    )


def _protected_symlinks_check(path: Path = Path("/proc/sys/fs/protected_symlinks")) -> Check:
    try:
        value = path.read_text().strip()
    except OSError as exc:
        return Check("protected symlinks", "warning", f"{path}: {exc.strerror or exc}")
    if value == "1":
        return Check("protected symlinks", "ok", "fs.protected_symlinks is 1")
    return Check(
        "protected symlinks",
        "warning",
        f"fs.protected_symlinks is {value}: root follows a link a user plants in a shared sticky "
        "folder (/tmp)",
        "sysctl -w fs.protected_symlinks=1 (and set it in /etc/sysctl.d/)",
    )


def _event_log_writes_check() -> Check:
    from ds01.events import write_failures

    count, last = write_failures()
    if not count:
        return Check("event log writes", "ok", "every event since ds01d started was written")
    return Check(
        "event log writes",
        "failure",
        f"{count} event(s) could not be written since ds01d started (last: {last})",
        "free space in the log dir (or make it writable); ds01d writes again by itself",
    )


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


def _gpu_outside_check(config: Config) -> Check:
    """Compute processes on a GPU or slice that belong to no ds01 container: the slot is busy for ds01."""
    from ds01.atomic.holdings import outside_uses
    from ds01.docker_gateway import connect
    from ds01.gpu.probe import probe_inventory

    inventory = probe_inventory(config.gpu)
    if not inventory.slots():
        return Check("gpu use outside ds01", "ok", "no GPUs to check")
    uses = outside_uses(inventory, connect(timeout=10).containers())
    if not uses:
        return Check("gpu use outside ds01", "ok", "every compute process on a GPU runs in a ds01 container")
    shown = "; ".join(f"slot {u.slot.id} {u.describe()}" for u in uses)
    return Check(
        "gpu use outside ds01",
        "warning",
        f"{shown}: ds01 gives these slots to nobody while this runs",
        "ask the owner to run GPU work through ds01 (container-deploy), or end the process",
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
    checks += _daemon_checks(facts, admin=admin)
    checks += _engine_checks(config, admin=admin)
    try:
        checks.append(_gpu_check(config))
        checks.append(_gpu_outside_check(config))
    except Ds01Error as err:
        checks.append(Check("gpus", "failure", err.message, err.hint or ""))
    checks.append(_private_dir_check("state dir", config.paths.state_dir))
    checks.append(_private_dir_check("log dir", config.paths.log_dir))
    checks.append(_private_file_check("event log", config.paths.log_dir / "events.jsonl"))
    checks.append(_private_file_check("reservation lock", config.paths.state_dir / "gpu-reservation.lock"))
    checks.append(_event_log_writes_check())
    checks.append(_protected_symlinks_check())
    checks.append(_docker_group_check())
    if config.cluster.slurm:
        from ds01.atomic.cluster_doctor import cluster_checks

        checks += cluster_checks(config)
    return checks
