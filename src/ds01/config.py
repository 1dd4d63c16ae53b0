"""Load and validate `resource-limits.yaml` into frozen dataclasses (CONTRACT §3).

Validation errors carry `file:line: dotted.key: problem`; unknown keys get the closest valid key.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ds01 import units
from ds01.errors import ConfigError

SYSTEM_CONFIG = Path("/etc/ds01/resource-limits.yaml")


def shipped_dir(name: str) -> Path:
    """A data folder shipped with ds01 (`config`, `images`): in the wheel, else in the source tree."""
    here = Path(__file__).resolve().parent
    packaged = here / "_shipped" / name
    return packaged if packaged.is_dir() else here.parents[1] / name


# key -> parser; each parser takes the raw YAML value and returns the typed value or raises ValueError.
def _opt(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else parse(v)


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"expected a number, got {v!r}")
    if not math.isfinite(v):
        raise ValueError(f"expected a finite number, got {v!r} (null means unlimited)")
    if v < 0:
        raise ValueError(f"must not be negative, got {v}")
    return float(v)


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"expected a whole number, got {v!r}")
    if v < 0:
        raise ValueError(f"must not be negative, got {v}")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ValueError(f"expected a non-empty string, got {v!r}")
    return v


def _size(v: Any) -> int:
    if isinstance(v, str) and v.strip().startswith("-"):
        raise ValueError(f"a size cannot be negative, got {v!r}")
    return units.parse_size(v)


def _priority(v: Any) -> int:
    n = _int(v)
    if n > 100:
        raise ValueError(f"priority is 0-100, got {n}")
    return n


def _str_list(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str | int) for x in v):
        raise ValueError("expected a list of names")
    return tuple(str(x) for x in v)


LIMIT_PARSERS: dict[str, Callable[[Any], Any]] = {
    "max_gpu_equivalents": _opt(_float),
    "max_gpu_slots_per_container": _opt(_int),
    "allow_full_gpu": _bool,
    "max_cpus": _opt(_float),
    "memory": _opt(_size),
    "memory_swap": _opt(_size),
    "shm_size": _opt(_size),
    "pids_limit": _opt(_int),
    "max_containers_per_user": _opt(_int),
    "max_runtime_h": _opt(_float),
    "idle_timeout_h": _opt(_float),
    "gpu_hold_after_stop_h": _opt(_float),
    "container_hold_after_stop_h": _opt(_float),
    "priority": _priority,
    "max_cpus_total": _opt(_float),
    "memory_total": _opt(_size),
    "extension_budget_h": _opt(_float),
}

# The names the reference system's YAML used for the same limits (a lab's existing file keeps working;
# `ds01d --check-config` says what to write instead), and its keys ds01 has no use for (accepted, ignored,
# and said so, never a silent knob).
LIMIT_ALIASES = {
    "max_gpus": "max_gpu_equivalents",
    "max_gpu_slots": "max_gpu_equivalents",
    "max_gpus_per_user": "max_gpu_equivalents",
    "max_mig_instances": "max_gpu_equivalents",
    "max_gpus_per_container": "max_gpu_slots_per_container",
    "max_mig_per_container": "max_gpu_slots_per_container",
    "cpus": "max_cpus",
}
LIMIT_IGNORED = {
    "max_tasks", "gpu_memory", "io_read_bps", "io_write_bps", "ulimit_nofile", "storage_workspace",
    "storage_data", "storage_tmp",
}  # fmt: skip

POLICY_PARSERS: dict[str, Callable[[Any], Any]] = {
    "gpu_idle_threshold": _float,
    "cpu_idle_threshold": _float,
    "idle_detection_window": _int,
    "grace_period_m": _float,
    "keepalive_max_duration_h": _float,
    "sigterm_grace_s": _int,
    "created_container_timeout_m": _float,
    "high_demand_threshold": _float,
    "high_demand_idle_reduction": _float,
    "events_max_mb": _float,
    "events_keep": _int,
    "check_interval_m": _float,
}

GROUP_EXTRA = {"members", "os_groups", "admin"}
TOP_LEVEL = {
    "defaults",
    "default_group",
    "groups",
    "user_overrides",
    "policies",
    "gpu",
    "paths",
    "containers",
    "images",
    "monitoring",
    "notify",
    "queue",
    "cluster",
}
CLUSTER_KEYS = {"backend", "partition", "registry", "node_name", "account"}
QUEUE_KEYS = {"fair_share_window_h", "max_bypass", "max_waiting_per_user"}
MONITORING_KEYS = {"listen"}
NOTIFY_KEYS = {"smtp", "sender", "domain", "addresses", "starttls"}
IMAGE_KEYS = {"ca_bundle", "http_proxy", "https_proxy", "no_proxy"} | {
    "build_network", "build_timeout_m", "max_context_mb", "min_free_gb",
}  # fmt: skip
NETWORK_MODES = ("per-user", "bridge", "none")
BUILD_NETWORKS = ("none", "bridge", "per-user")
GPU_KEYS = {"backend", "inventory", "attach", "nvml_library", "deter_host_use"}
PATH_KEYS = {"workspace_root", "data_roots", "socket", "state_dir", "log_dir", "run_dir"}
CONTAINER_KEYS = {"network", "init", "env"}
BACKENDS = ("auto", "nvml", "simulated", "none")
ATTACH_MODES = ("device-request", "env")


@dataclass(frozen=True)
class Limits:
    max_gpu_equivalents: float | None = 1.0
    max_gpu_slots_per_container: int | None = 1
    allow_full_gpu: bool = True
    max_cpus: float | None = 8.0
    memory: int | None = 32 * 1024**3
    memory_swap: int | None = 32 * 1024**3
    shm_size: int | None = 8 * 1024**3
    pids_limit: int | None = 4096
    max_containers_per_user: int | None = 3
    max_runtime_h: float | None = 24.0
    idle_timeout_h: float | None = 0.5
    gpu_hold_after_stop_h: float | None = 0.25
    container_hold_after_stop_h: float | None = 0.5
    priority: int = 10
    # across all of a user's containers (one cgroup parent per user; null = no total)
    max_cpus_total: float | None = None
    memory_total: int | None = None
    extension_budget_h: float | None = 0.0  # container-extend hours per rolling 7 days; 0 = none


@dataclass(frozen=True)
class Policies:
    gpu_idle_threshold: float = 5.0
    cpu_idle_threshold: float = 2.0
    idle_detection_window: int = 3
    grace_period_m: float = 30.0
    keepalive_max_duration_h: float = 24.0
    sigterm_grace_s: int = 60
    created_container_timeout_m: float = 30.0
    high_demand_threshold: float = 0.8
    high_demand_idle_reduction: float = 0.5
    check_interval_m: float = 5.0
    events_max_mb: float = 64.0  # events.jsonl is rotated at this size (events.jsonl.1, .2, ...)
    events_keep: int = 5  # rotated files kept


@dataclass(frozen=True)
class Group:
    name: str
    values: Mapping[str, Any]
    members: tuple[str, ...] = ()
    os_groups: tuple[str, ...] = ()
    admin: bool = False


@dataclass(frozen=True)
class GpuSettings:
    backend: str = "auto"
    inventory: Path | None = None
    attach: str = "device-request"
    # the NVML library the probe loads: a bare name goes through the dynamic loader's search (ld.so.cache
    # included), a path loads that file and nothing else
    nvml_library: str = "libnvidia-ml.so.1"
    # true: logins of non-admins get CUDA_VISIBLE_DEVICES="" (profile.d), so GPU work happens in containers
    deter_host_use: bool = False


@dataclass(frozen=True)
class PathSettings:
    """Where things live on the host (CONTRACT §2, §3). Absolute paths only: ds01d never expands `~`."""

    workspace_root: Path = Path("/srv/ds01/workspaces")
    data_roots: tuple[Path, ...] = ()
    socket: Path = Path("/run/ds01/ds01.sock")
    state_dir: Path = Path("/var/lib/ds01")
    log_dir: Path = Path("/var/log/ds01")
    run_dir: Path | None = None  # None: the socket's folder (per-user sockets in <run_dir>/users/<uid>)

    def run_root(self) -> Path:
        """Where the per-user sockets (Jupyter, ports) live: `<run_dir>/users/<uid>/<project>/`."""
        return self.run_dir if self.run_dir is not None else self.socket.parent

    def workspace_root_for(self, name: str) -> Path:
        """`<workspace_root>/<user>`: root-owned, so the user cannot swap a project folder for a link."""
        return self.workspace_root / name


@dataclass(frozen=True)
class ContainerDefaults:
    # per-user: one bridge network per user (`ds01-u<uid>`), so a user's containers reach each other and
    # no one else's; bridge: the engine's shared default bridge; none: no network at all
    network: str = "per-user"
    init: bool = True
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageSettings:
    """What builds need behind a lab's intercepting proxy (builds run in ds01d, not in the user's shell)."""

    ca_bundle: Path | None = None
    http_proxy: str | None = None
    https_proxy: str | None = None
    no_proxy: str | None = None
    build_network: str | None = None  # None: `none`, or the owner's network when a proxy is configured
    build_timeout_m: float = 60.0
    max_context_mb: float = 4096.0
    min_free_gb: float = 2.0  # a build or create needs this much free on the engine's data root; 0 = no check

    @property
    def max_context_bytes(self) -> int:
        return int(self.max_context_mb * (1 << 20))

    def effective_build_network(self) -> str:
        """The network of a build's RUN steps: none, unless configured or a proxy needs one."""
        if self.build_network:
            return self.build_network
        return "per-user" if (self.http_proxy or self.https_proxy) else "none"

    def proxy_args(self) -> dict[str, str]:
        pairs = (
            ("HTTP_PROXY", self.http_proxy),
            ("HTTPS_PROXY", self.https_proxy),
            ("NO_PROXY", self.no_proxy),
        )
        return {k: v for name, v in pairs if v for k in (name, name.lower())}


@dataclass(frozen=True)
class MonitoringSettings:
    """`monitoring.listen`: where ds01d serves `/metrics` (host:port); None = no metrics endpoint."""

    listen: tuple[str, int] | None = ("127.0.0.1", 9101)


@dataclass(frozen=True)
class QueueSettings:
    """`queue:` the wait for GPUs (`--wait`): recent use counts over `fair_share_window_h`; a request passed
    over `max_bypass` times reserves the next capacity that fits it; each user waits with at most
    `max_waiting_per_user` requests."""

    fair_share_window_h: float = 168.0
    max_bypass: int = 5
    max_waiting_per_user: int = 10


@dataclass(frozen=True)
class NotifySettings:
    """`notify:` e-mail for lifecycle notices; `smtp` None = terminals and the alerts file only."""

    smtp: tuple[str, int] | None = None
    sender: str = "ds01@localhost"
    domain: str | None = None  # user@domain when `addresses` has no entry for the user
    addresses: Mapping[str, str] = field(default_factory=dict)
    starttls: bool = False

    def address_for(self, user: str) -> str | None:
        return self.addresses.get(user) or (f"{user}@{self.domain}" if self.domain else None)


@dataclass(frozen=True)
class ClusterSettings:
    """`cluster:` `none` = this one server; `slurm` = GPU deploys are Slurm jobs (sbatch as the user) whose
    step asks the allocated node's ds01d for the container; `node_name` is this host's Slurm NodeName
    (default: the short hostname); `partition`, `account` go to sbatch; `registry` is where images are pushed
    so every node can pull them."""

    backend: str = "none"
    partition: str | None = None
    registry: str | None = None
    node_name: str | None = None
    account: str | None = None

    @property
    def slurm(self) -> bool:
        return self.backend == "slurm"

    def this_node(self) -> str:
        import socket

        return self.node_name or socket.gethostname().split(".")[0]


@dataclass(frozen=True)
class Config:
    source: Path
    defaults: Mapping[str, Any]
    default_group: str
    groups: tuple[Group, ...]
    user_overrides: Mapping[str, Mapping[str, Any]]
    policies: Policies
    gpu: GpuSettings
    paths: PathSettings
    containers: ContainerDefaults
    images: ImageSettings = field(default_factory=ImageSettings)
    monitoring: MonitoringSettings = field(default_factory=lambda: MonitoringSettings())
    notify: NotifySettings = field(default_factory=lambda: NotifySettings())
    queue: QueueSettings = field(default_factory=QueueSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    notices: tuple[str, ...] = ()  # old names read as their new ones, keys ignored: for --check-config

    def group(self, name: str) -> Group | None:
        return next((g for g in self.groups if g.name == name), None)


MAX_CONFIG_CHARS = 1 << 20
MAX_CONFIG_VALUES = 100_000


class _Doc:
    """A YAML document with the line of every dotted key, for error messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: dict[str, int] = {}
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the config: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: the config is not UTF-8 text ({exc.reason})") from exc
        if len(text) > MAX_CONFIG_CHARS:
            raise ConfigError(
                f"{path}: the config is over {MAX_CONFIG_CHARS // 1024} KiB; is it the right file?"
            )
        self._budget = MAX_CONFIG_VALUES
        self.notices: list[str] = []
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 5x faster
        self._constructor = yaml.SafeLoader("")
        try:
            node = yaml.compose(text, Loader=loader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{path}{line}: invalid YAML: {problem}") from exc
        self.data = self._convert(node, "") if node is not None else {}

    def _convert(self, node: yaml.Node, dotted: str) -> Any:
        self.lines.setdefault(dotted, node.start_mark.line + 1)
        self._budget -= 1
        if self._budget < 0:  # aliases can make a small file expand without end ("billion laughs")
            raise self.error(dotted, f"the config expands to over {MAX_CONFIG_VALUES} values (YAML aliases?)")
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    where = f"{self.path}:{key_node.start_mark.line + 1}: {dotted or 'top level'}"
                    raise ConfigError(f"{where}: a key must be a plain name")
                key = str(key_node.value)
                sub = f"{dotted}.{key}" if dotted else key
                if key in out:
                    where = f"{self.path}:{key_node.start_mark.line + 1}: {sub}"
                    raise ConfigError(f"{where}: duplicate key (the first is on line {self.lines[sub]})")
                self.lines[sub] = key_node.start_mark.line + 1
                out[key] = self._convert(value_node, sub)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(v, f"{dotted}[{i}]") for i, v in enumerate(node.value)]
        try:
            return self._constructor.construct_object(node)  # the scalar exactly as safe_load reads it
        except yaml.YAMLError as exc:  # e.g. a `!!python/...` tag: safe loading refuses it
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{self.path}:{node.start_mark.line + 1}: invalid YAML: {problem}") from exc

    def error(self, dotted: str, problem: str) -> ConfigError:
        line = self.lines.get(dotted) or self.lines.get(dotted.rsplit(".", 1)[0], 0)
        return ConfigError(f"{self.path}:{line}: {dotted or 'top level'}: {problem}")

    def unknown(self, dotted: str, valid: set[str] | list[str]) -> ConfigError:
        key = dotted.rsplit(".", 1)[-1]
        import difflib

        names = set(valid) | (set(LIMIT_ALIASES) if LIMIT_PARSERS.keys() <= set(valid) else set())
        close = difflib.get_close_matches(key, sorted(names), n=1)
        hint = f" (did you mean {LIMIT_ALIASES.get(close[0], close[0])!r}?)" if close else ""
        return self.error(dotted, f"unknown key{hint}")


def _mapping(doc: _Doc, value: Any, dotted: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise doc.error(dotted, "expected a mapping of keys to values")
    return value


def _parse_keys(
    doc: _Doc,
    raw: Mapping[str, Any],
    dotted: str,
    parsers: Mapping[str, Callable[[Any], Any]],
    extra: set[str],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    limits = parsers is LIMIT_PARSERS
    for key, value in raw.items():
        if key in extra:
            continue
        if limits and key in LIMIT_IGNORED:
            doc.notices.append(f"{dotted}.{key}: has no effect in ds01 and is ignored")
            continue
        if limits and key in LIMIT_ALIASES:
            new = LIMIT_ALIASES[key]
            if new in raw or any(LIMIT_ALIASES.get(k) == new for k in raw if k != key and k in out):
                raise doc.error(f"{dotted}.{key}", f"an old name of {new!r}, which is given too: keep one")
            doc.notices.append(f"{dotted}.{key}: an old name, read as {new!r} (write that instead)")
            key = new
        if key not in parsers:
            raise doc.unknown(f"{dotted}.{key}", set(parsers) | extra)
        try:
            out[key] = parsers[key](value)
        except ValueError as exc:
            raise doc.error(f"{dotted}.{key}", str(exc)) from exc
    return out


def _read_members_file(path: Path) -> tuple[str, ...]:
    try:
        text = path.read_text()
    except OSError:
        return ()
    names = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return tuple(n for n in names if n)


def _parse_groups(doc: _Doc, raw: dict[str, Any]) -> tuple[Group, ...]:
    groups = []
    for name, body in raw.items():
        dotted = f"groups.{name}"
        body = _mapping(doc, body, dotted)
        values = _parse_keys(doc, body, dotted, LIMIT_PARSERS, GROUP_EXTRA)
        try:
            members = _str_list(body.get("members") or [])
            os_groups = _str_list(body.get("os_groups") or [])
            admin = _bool(body.get("admin", False))
        except ValueError as exc:
            raise doc.error(dotted, str(exc)) from exc
        members += _read_members_file(doc.path.parent / "groups" / f"{name}.members")
        groups.append(Group(name, values, members, os_groups, admin))
    return tuple(groups)


def _parse_gpu(doc: _Doc, raw: dict[str, Any]) -> GpuSettings:
    for key in raw:
        if key not in GPU_KEYS:
            raise doc.unknown(f"gpu.{key}", GPU_KEYS)
    backend = os.environ.get("DS01_GPU_BACKEND") or raw.get("backend", "auto")
    if backend not in BACKENDS:
        raise doc.error("gpu.backend", f"{backend!r} is not one of {', '.join(BACKENDS)}")
    attach = raw.get("attach", "device-request")
    if attach not in ATTACH_MODES:
        raise doc.error("gpu.attach", f"{attach!r} is not one of {', '.join(ATTACH_MODES)}")
    inventory = os.environ.get("DS01_GPU_INVENTORY") or raw.get("inventory")
    inv_path = None
    if inventory:
        inv_path = Path(inventory)
        if not inv_path.is_absolute():
            inv_path = doc.path.parent / inv_path
    library = raw.get("nvml_library", "libnvidia-ml.so.1")
    if not isinstance(library, str) or not library or "\0" in library:
        raise doc.error("gpu.nvml_library", "give a library name or an absolute path")
    if "/" in library and not library.startswith("/"):
        raise doc.error("gpu.nvml_library", f"{library!r} is not an absolute path")
    try:
        deter = _bool(raw.get("deter_host_use", False))
    except ValueError as exc:
        raise doc.error("gpu.deter_host_use", str(exc)) from exc
    return GpuSettings(
        backend=backend, inventory=inv_path, attach=attach, nvml_library=library, deter_host_use=deter
    )


def _parse_paths(doc: _Doc, raw: dict[str, Any]) -> PathSettings:
    for key in raw:
        if key not in PATH_KEYS:
            raise doc.unknown(f"paths.{key}", PATH_KEYS)
    base = PathSettings()
    values: dict[str, Any] = {}
    for key in ("workspace_root", "socket", "state_dir", "log_dir", "run_dir"):
        if raw.get(key) is not None:
            values[key] = _abs_path(doc, f"paths.{key}", raw[key])
    try:
        roots = _str_list(raw.get("data_roots") or [])
    except ValueError as exc:
        raise doc.error("paths.data_roots", str(exc)) from exc
    values["data_roots"] = tuple(_abs_path(doc, "paths.data_roots", r) for r in roots)
    state = os.environ.get("DS01_STATE_DIR")
    log = os.environ.get("DS01_LOG_DIR")
    if state:
        values["state_dir"] = Path(state)
    if log:
        values["log_dir"] = Path(log)
    return PathSettings(**{**{f: getattr(base, f) for f in ("workspace_root",)}, **values})


def _abs_path(doc: _Doc, dotted: str, value: Any) -> Path:
    if not isinstance(value, str) or not value.startswith("/"):
        raise doc.error(dotted, f"{value!r} is not an absolute path")
    return Path(os.path.normpath(value))


def _parse_containers(doc: _Doc, raw: dict[str, Any]) -> ContainerDefaults:
    for key in raw:
        if key not in CONTAINER_KEYS:
            raise doc.unknown(f"containers.{key}", CONTAINER_KEYS)
    env = _mapping(doc, raw.get("env"), "containers.env")
    try:
        init = _bool(raw.get("init", True))
        network = _str(raw.get("network", "per-user"))
    except ValueError as exc:
        raise doc.error("containers", str(exc)) from exc
    if network not in NETWORK_MODES:
        raise doc.error("containers.network", f"{network!r} is not one of {', '.join(NETWORK_MODES)}")
    return ContainerDefaults(network=network, init=init, env={str(k): str(v) for k, v in env.items()})


def _parse_images(doc: _Doc, raw: dict[str, Any]) -> ImageSettings:
    for key in raw:
        if key not in IMAGE_KEYS:
            raise doc.unknown(f"images.{key}", IMAGE_KEYS)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue
        try:
            if key == "min_free_gb":
                values[key] = _float(value)
                if values[key] < 0:
                    raise ValueError(f"must be 0 or more, got {value}")
            elif key in ("build_timeout_m", "max_context_mb"):
                values[key] = _float(value)  # fractions allowed (e.g. 0.1 min in a test)
                if values[key] <= 0:
                    raise ValueError(f"must be more than 0, got {value}")
            else:
                values[key] = _str(value)
        except ValueError as exc:
            raise doc.error(f"images.{key}", str(exc)) from exc
    if values.get("build_network") not in (None, *BUILD_NETWORKS):
        raise doc.error(
            "images.build_network", f"{values['build_network']!r} is not one of {', '.join(BUILD_NETWORKS)}"
        )
    if "ca_bundle" in values:
        bundle = Path(values["ca_bundle"])
        values["ca_bundle"] = bundle if bundle.is_absolute() else doc.path.parent / bundle
    return ImageSettings(**values)


def _host_port(doc: _Doc, dotted: str, value: Any) -> tuple[str, int]:
    host, sep, port = str(value).rpartition(":")
    if not isinstance(value, str) or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise doc.error(dotted, f"{value!r} is not host:port (e.g. 127.0.0.1:9101)")
    return host.strip("[]"), int(port)


def _parse_monitoring(doc: _Doc, raw: dict[str, Any]) -> MonitoringSettings:
    for key in raw:
        if key not in MONITORING_KEYS:
            raise doc.unknown(f"monitoring.{key}", MONITORING_KEYS)
    if "listen" in raw and raw["listen"] is None:
        return MonitoringSettings(listen=None)
    listen = raw.get("listen", "127.0.0.1:9101")
    return MonitoringSettings(listen=_host_port(doc, "monitoring.listen", listen))


def _parse_queue(doc: _Doc, raw: dict[str, Any]) -> QueueSettings:
    for key in raw:
        if key not in QUEUE_KEYS:
            raise doc.unknown(f"queue.{key}", QUEUE_KEYS)
    base = QueueSettings()
    try:
        window = _float(raw.get("fair_share_window_h", base.fair_share_window_h))
        bypass = _int(raw.get("max_bypass", base.max_bypass))
        waiting = _int(raw.get("max_waiting_per_user", base.max_waiting_per_user))
    except ValueError as exc:
        raise doc.error("queue", str(exc)) from exc
    if not 0 < window <= 24 * 366:
        raise doc.error("queue.fair_share_window_h", f"must be over 0 and at most a year, got {window:g}")
    if not 1 <= bypass <= 1000:
        raise doc.error("queue.max_bypass", f"must be 1-1000, got {bypass}")
    if not 1 <= waiting <= 1000:
        raise doc.error("queue.max_waiting_per_user", f"must be 1-1000, got {waiting}")
    return QueueSettings(fair_share_window_h=window, max_bypass=bypass, max_waiting_per_user=waiting)


_SLURM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_REGISTRY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?(/[a-z0-9._/-]+)?$")


def _parse_cluster(doc: _Doc, raw: dict[str, Any]) -> ClusterSettings:
    for key in raw:
        if key not in CLUSTER_KEYS:
            raise doc.unknown(f"cluster.{key}", CLUSTER_KEYS)
    backend = raw.get("backend") or "none"
    if backend not in ("none", "slurm"):
        raise doc.error("cluster.backend", f"must be none or slurm, got {backend!r}")
    values: dict[str, str | None] = {}
    for key in ("partition", "node_name", "account", "registry"):
        value = raw.get(key)
        if value is None:
            values[key] = None
            continue
        pattern = _REGISTRY if key == "registry" else _SLURM_NAME
        if not isinstance(value, str) or not pattern.match(value):
            what = "a Slurm name (letters, digits, _.-)"
            if key == "registry":
                what = "a registry host[:port][/path]"
            raise doc.error(f"cluster.{key}", f"{value!r} is not {what}")
        values[key] = value
    return ClusterSettings(backend=str(backend), **values)


def _parse_notify(doc: _Doc, raw: dict[str, Any]) -> NotifySettings:
    for key in raw:
        if key not in NOTIFY_KEYS:
            raise doc.unknown(f"notify.{key}", NOTIFY_KEYS)
    addresses = _mapping(doc, raw.get("addresses"), "notify.addresses")
    for user, addr in addresses.items():
        if not isinstance(addr, str) or "@" not in addr or any(c in addr for c in "\r\n <>,"):
            raise doc.error(f"notify.addresses.{user}", f"{addr!r} is not an e-mail address")
    try:
        sender = _str(raw.get("sender") or "ds01@localhost")
        domain = _opt(_str)(raw.get("domain"))
        starttls = _bool(raw.get("starttls", False))
    except ValueError as exc:
        raise doc.error("notify", str(exc)) from exc
    if any(c in sender for c in "\r\n") or (domain and any(c in domain for c in "\r\n @")):
        raise doc.error("notify", "sender and domain must be one line (domain without @)")
    smtp = raw.get("smtp")
    return NotifySettings(
        smtp=None if smtp is None else _host_port(doc, "notify.smtp", smtp),
        sender=sender,
        domain=domain,
        addresses={str(k): str(v) for k, v in addresses.items()},
        starttls=starttls,
    )


def config_path() -> Path:
    env = os.environ.get("DS01_CONFIG")
    if env:
        return Path(env)
    if SYSTEM_CONFIG.exists():
        return SYSTEM_CONFIG
    return shipped_dir("config") / "resource-limits.yaml"


def load_config(path: Path | None = None) -> Config:
    doc = _Doc(path or config_path())
    data = _mapping(doc, doc.data, "")
    for key in data:
        if key not in TOP_LEVEL:
            raise doc.unknown(key, TOP_LEVEL)
    defaults = _parse_keys(
        doc, _mapping(doc, data.get("defaults"), "defaults"), "defaults", LIMIT_PARSERS, set()
    )
    groups = _parse_groups(doc, _mapping(doc, data.get("groups"), "groups"))
    default_group = data.get("default_group") or (groups[0].name if groups else "")
    if groups and default_group not in {g.name for g in groups}:
        raise doc.error("default_group", f"no group named {default_group!r}")
    overrides_raw = _mapping(doc, data.get("user_overrides"), "user_overrides")
    overrides = {
        str(user): _parse_keys(
            doc, _mapping(doc, body, f"user_overrides.{user}"), f"user_overrides.{user}", LIMIT_PARSERS, set()
        )
        for user, body in overrides_raw.items()
    }
    policies = _parse_keys(
        doc, _mapping(doc, data.get("policies"), "policies"), "policies", POLICY_PARSERS, set()
    )
    for key, least in (("events_max_mb", 0.0), ("events_keep", 1)):
        if key in policies and policies[key] < least:
            raise doc.error(f"policies.{key}", f"must be at least {least:g}, got {policies[key]}")
    if policies.get("events_max_mb") == 0:
        raise doc.error("policies.events_max_mb", "must be more than 0")
    config = Config(
        source=doc.path,
        defaults=defaults,
        default_group=default_group,
        groups=groups,
        user_overrides=overrides,
        policies=Policies(**policies),
        gpu=_parse_gpu(doc, _mapping(doc, data.get("gpu"), "gpu")),
        paths=_parse_paths(doc, _mapping(doc, data.get("paths"), "paths")),
        containers=_parse_containers(doc, _mapping(doc, data.get("containers"), "containers")),
        images=_parse_images(doc, _mapping(doc, data.get("images"), "images")),
        monitoring=_parse_monitoring(doc, _mapping(doc, data.get("monitoring"), "monitoring")),
        notify=_parse_notify(doc, _mapping(doc, data.get("notify"), "notify")),
        queue=_parse_queue(doc, _mapping(doc, data.get("queue"), "queue")),
        cluster=_parse_cluster(doc, _mapping(doc, data.get("cluster"), "cluster")),
        notices=tuple(doc.notices),
    )
    from ds01.events import set_rotation  # the whole file parsed: its rotation is the one in force

    set_rotation(int(config.policies.events_max_mb * (1 << 20)), config.policies.events_keep)
    return config
