"""Prometheus metrics: ds01d serves `/metrics` on `monitoring.listen` (default 127.0.0.1:9101; null = off).

Two kinds of figures:
- read at scrape time from what ds01d already knows (slots and holders from the containers' labels, quotas
  from the config, utilisation and memory from the GPU probe, containers by state): gauges, cached for a
  second so that several scrapers cost one look;
- counted as things happen: request latency per endpoint (the server calls `observe_request`), and the event
  log read forward from where it stood when ds01d started (reaper actions by kind and reason, builds and
  their durations, denied requests, events by type).

Labels stay bounded: users, groups, slot ids, endpoint patterns, event types and short reason words. Container
names appear only on the `ds01_slot_holder` gauge (one series per held slot), never on a counter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from ds01 import __version__

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from ds01.daemon.service import Daemon

log = logging.getLogger("ds01d")

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(namespace="ds01d", registry=REGISTRY)

REQUEST_SECONDS = Histogram(
    "ds01_request_seconds",
    "Time ds01d took to answer a request, by endpoint pattern",
    ["endpoint"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
EVENTS = Counter("ds01_events", "Events written to the event log, by type", ["type"], registry=None)
REAPER_ACTIONS = Counter(
    "ds01_reaper_actions",
    "Lifecycle actions (warnings, stops, clean-ups, reclaims) by kind and reason",
    ["action", "reason"],
    registry=None,
)
REMOVALS = Counter("ds01_container_removals", "Containers removed, by reason", ["reason"], registry=None)
DENIED = Counter(
    "ds01_denied_requests", "Requests refused as not permitted, by endpoint", ["endpoint"], registry=None
)
BUILD_SECONDS = Histogram(
    "ds01_build_seconds",
    "Image build durations",
    registry=None,
    buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
QUEUE_WAIT_SECONDS = Histogram(
    "ds01_queue_wait_seconds",
    "How long granted requests waited in the GPU queue",
    registry=None,
    buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400),
)
FROM_EVENTS = (
    EVENTS,
    REAPER_ACTIONS,
    REMOVALS,
    DENIED,
    BUILD_SECONDS,
    QUEUE_WAIT_SECONDS,
)  # collected after the log is read
REAPER_KINDS = ("idle_warning", "idle_stop", "runtime_warning", "runtime_stop", "cleanup", "reclaim")
_WORD = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
CACHE_S = 1.0


CHANGED = threading.Event()  # set after a request that may have changed something (the greetings follow)


def observe_request(endpoint: str, seconds: float) -> None:
    """Called by the server for every answered request (`endpoint` is the route pattern, never a path)."""
    REQUEST_SECONDS.labels(endpoint=endpoint).observe(seconds)
    if not endpoint.startswith(("GET ", "?")):
        CHANGED.set()


_RULE_KEY = re.compile(r"\b([a-z]+(?:_[a-z]+)+)\b")


def reason_word(reason: object) -> str:
    """A bounded label value from an event's reason: the word itself when it is one (`retire`), else the
    config key the reason names (`idle_timeout_h`, `max_runtime_h`, ...), else its first word."""
    text = str(reason or "").strip().lower()
    if _WORD.match(text):
        return text
    key = _RULE_KEY.search(text)
    if key and len(key.group(1)) <= 32:
        return key.group(1)
    first = re.split(r"[^a-z0-9_-]", text, maxsplit=1)[0]
    return first if _WORD.match(first) else "other"


class EventTail:
    """Reads events.jsonl forward from where it stood at start; a rotated (new inode) or cut file restarts
    at its beginning."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._ino, self._pos = self._stat()
        self._lock = threading.Lock()

    def _stat(self) -> tuple[int, int]:
        try:
            st = os.stat(self.log_dir / "events.jsonl")
        except OSError:
            return 0, 0
        return st.st_ino, st.st_size

    def new_records(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            ino, size = self._stat()
            if ino != self._ino or size < self._pos:
                self._ino, self._pos = ino, 0
            if size == self._pos:
                return
            try:
                fd = os.open(self.log_dir / "events.jsonl", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                return
            with os.fdopen(fd, "rb") as f:
                f.seek(self._pos)
                data = f.read(size - self._pos)
            end = data.rfind(b"\n") + 1  # a line still being written waits for the next scrape
            self._pos += end
            lines = data[:end].splitlines()
        for raw in lines:
            with contextlib.suppress(ValueError):
                record = json.loads(raw)
                if isinstance(record, dict):
                    yield record


def count_event(record: dict[str, Any]) -> None:
    kind = str(record.get("event_type") or "")
    if not _WORD.match(kind):
        return
    details = record.get("details") if isinstance(record.get("details"), dict) else {}
    assert isinstance(details, dict)
    EVENTS.labels(type=kind).inc()
    if kind in REAPER_KINDS:
        REAPER_ACTIONS.labels(action=kind, reason=reason_word(details.get("reason"))).inc()
    elif kind == "remove":
        REMOVALS.labels(reason=reason_word(details.get("reason"))).inc()
    elif kind == "denied":
        DENIED.labels(endpoint=str(details.get("endpoint") or "?")[:64]).inc()
    elif kind == "image_build":
        with contextlib.suppress(TypeError, ValueError):
            BUILD_SECONDS.observe(float(details.get("seconds") or 0))
    elif kind == "queue_grant":
        with contextlib.suppress(TypeError, ValueError):
            QUEUE_WAIT_SECONDS.observe(float(details.get("waited_s") or 0))


class StateCollector(Collector):
    """Gauges read from the engine's labels, the config and the GPU probe at scrape time."""

    def __init__(self, daemon: Daemon, tail: EventTail | None) -> None:
        self.daemon = daemon
        self.tail = tail
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] = (0.0, [])

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            if self.tail is not None:
                for record in self.tail.new_records():
                    count_event(record)
            at, metrics = self._cached
            if time.monotonic() - at > CACHE_S:
                metrics = self._gather()
                self._cached = (time.monotonic(), metrics)
            counted = [m for c in FROM_EVENTS for m in c.collect()]
        return [*counted, *metrics]

    def _gather(self) -> list[Metric]:
        started = time.monotonic()
        daemon = self.daemon
        up = GaugeMetricFamily("ds01d_up", "1 while ds01d answers scrapes")
        up.add_metric([], 1)
        info = GaugeMetricFamily("ds01d_info", "ds01d's version", labels=["version"])
        info.add_metric([__version__], 1)
        start = GaugeMetricFamily("ds01d_start_time_seconds", "When ds01d started (Unix time)")
        start.add_metric([], daemon.started)
        cfg = GaugeMetricFamily(
            "ds01d_config_error", "1 while a config edit was rejected (the last good one serves)"
        )
        cfg.add_metric([], 1 if daemon.config_error else 0)
        out: list[Metric] = [up, info, start, cfg, *_event_write_failures(), *_queue_metrics(daemon)]
        engine = GaugeMetricFamily("ds01d_engine_up", "1 when the Docker engine answered the last scrape")
        try:
            out += _engine_metrics(daemon)
            engine.add_metric([], 1)
        except Exception as exc:  # the engine away: the other figures still go out
            log.debug("metrics: engine figures unavailable: %s", exc)
            engine.add_metric([], 0)
        took = GaugeMetricFamily("ds01d_scrape_seconds", "Time the last gathering of ds01's state took")
        took.add_metric([], time.monotonic() - started)
        return [*out, engine, took]


def _queue_metrics(daemon: Daemon) -> list[Metric]:
    """Who waits for a GPU: the queue's length by request shape, and the longest wait so far."""
    from ds01.daemon.queue import queue_of

    waiting = queue_of(daemon).snapshot()
    length = GaugeMetricFamily("ds01_queue_length", "Requests waiting for a GPU, by shape", labels=["shape"])
    for shape in sorted({w.shape for w in waiting}):
        length.add_metric([shape], sum(1 for w in waiting if w.shape == shape))
    oldest = GaugeMetricFamily(
        "ds01_queue_oldest_wait_seconds", "How long the longest-waiting request has waited"
    )
    now = time.time()
    oldest.add_metric([], max((now - w.arrived for w in waiting), default=0.0))
    return [length, oldest]


def _event_write_failures() -> list[Metric]:
    from ds01.events import write_failures

    g = GaugeMetricFamily("ds01d_event_write_failures", "Event lines this ds01d could not write")
    g.add_metric([], write_failures()[0])
    return [g]


def _engine_metrics(daemon: Daemon) -> list[Metric]:
    from ds01.atomic.holdings import FOREIGN_USER, foreign_holdings, gpu_holdings
    from ds01.gpu.probe import probe_inventory

    config = daemon.config
    gateway = daemon.gateway()
    containers = gateway.containers()
    inventory = probe_inventory(config.gpu)
    holdings = gpu_holdings(gateway, config, containers=containers, inventory=inventory)
    foreign = foreign_holdings(gateway, containers, inventory)

    slot = GaugeMetricFamily(
        "ds01_slot_gpueq", "GPU-equivalents of each slot", labels=["slot", "kind", "gpu", "profile"]
    )
    util = GaugeMetricFamily(
        "ds01_slot_utilization_percent", "Utilisation of each slot (whole GPUs)", labels=["slot"]
    )
    mem = GaugeMetricFamily("ds01_slot_memory_mib", "Memory of each slot", labels=["slot"])
    used = GaugeMetricFamily("ds01_slot_memory_used_mib", "Memory in use on each slot", labels=["slot"])
    procs = GaugeMetricFamily("ds01_slot_processes", "Compute processes on each slot", labels=["slot"])
    for s in inventory.slots():
        slot.add_metric([s.id, s.kind, str(s.gpu_index), s.profile or ""], s.gpueq)
        mem.add_metric([s.id], s.memory_mib)
        procs.add_metric([s.id], s.processes)
        if s.utilization is not None:
            util.add_metric([s.id], s.utilization)
        if s.memory_used_mib is not None:
            used.add_metric([s.id], s.memory_used_mib)

    holder = GaugeMetricFamily(
        "ds01_slot_holder",
        "1 for each held slot, with its holder",
        labels=["slot", "user", "container", "status"],
    )
    outside = GaugeMetricFamily(
        "ds01_slot_busy_outside", "1 for a slot busy with work ds01 did not start", labels=["slot"]
    )
    per_user: dict[str, float] = {}
    for h in holdings:
        holder.add_metric([h.slot_id, h.user, h.container, h.status], 1)
        if not h.reclaimable:
            per_user[h.user] = per_user.get(h.user, 0.0) + h.gpueq
    for h in foreign:
        if h.user == FOREIGN_USER:
            outside.add_metric([h.slot_id], 1)

    states = GaugeMetricFamily(
        "ds01_containers", "ds01 containers by owner and state", labels=["user", "state"]
    )
    counts: dict[tuple[str, str], int] = {}
    users: set[str] = set(per_user)
    from ds01 import naming

    for c in containers:
        if c.labels.get(naming.LABEL_MANAGED) != "true":
            continue
        who = c.labels.get(naming.LABEL_USER, "?")
        users.add(who)
        counts[who, c.state] = counts.get((who, c.state), 0) + 1
    for (who, state), n in sorted(counts.items()):
        states.add_metric([who, state], n)

    out: list[Metric] = [slot, util, mem, used, procs, holder, outside, states]
    out += _quota_metrics(config, users, per_user)
    total = GaugeMetricFamily("ds01_gpueq_total", "GPU-equivalents on this host")
    total.add_metric([], inventory.total_gpueq)
    held = GaugeMetricFamily("ds01_gpueq_allocated", "GPU-equivalents held by ds01 containers")
    held.add_metric([], sum(per_user.values()))
    return [*out, total, held]


def _quota_metrics(config: Any, users: set[str], per_user: dict[str, float]) -> list[Metric]:
    from ds01.errors import Ds01Error
    from ds01.identity import lookup_user
    from ds01.limits import resolve_limits

    held = GaugeMetricFamily("ds01_user_gpueq", "GPU-equivalents a user holds", labels=["user", "group"])
    quota = GaugeMetricFamily(
        "ds01_user_gpueq_quota", "A user's max_gpu_equivalents", labels=["user", "group"]
    )
    by_group: dict[str, float] = {}
    for name in sorted(users):
        group = ""
        limit = None
        with contextlib.suppress(Ds01Error, KeyError, OSError):
            resolved = resolve_limits(config, lookup_user(name))
            group, limit = resolved.group, resolved.limits.max_gpu_equivalents
        held.add_metric([name, group], per_user.get(name, 0.0))
        if limit is not None:
            quota.add_metric([name, group], limit)
        by_group[group] = by_group.get(group, 0.0) + per_user.get(name, 0.0)
    group_held = GaugeMetricFamily(
        "ds01_group_gpueq", "GPU-equivalents a group's members hold", labels=["group"]
    )
    group_quota = GaugeMetricFamily(
        "ds01_group_gpueq_quota", "A group's max_gpu_equivalents (per member)", labels=["group"]
    )
    for g in config.groups:
        group_held.add_metric([g.name], by_group.get(g.name, 0.0))
        value = g.values.get("max_gpu_equivalents", config.defaults.get("max_gpu_equivalents"))
        if value is not None:
            group_quota.add_metric([g.name], float(value))
    return [held, quota, group_held, group_quota]


class MetricsServer:
    """Serves the registry on `monitoring.listen`, and follows that key when the config changes."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.listen: tuple[str, int] | None = None
        self._server: WSGIServer | None = None
        REGISTRY.register(StateCollector(daemon, EventTail(daemon.config.paths.log_dir)))

    def apply(self) -> None:
        wanted = self.daemon.config.monitoring.listen
        if wanted == self.listen and (self._server is not None or wanted is None):
            return
        self.close()
        self.listen = wanted
        if wanted is None:
            return
        try:
            self._server, _ = start_http_server(wanted[1], addr=wanted[0], registry=REGISTRY)
            log.info("metrics on http://%s:%d/metrics", *wanted)
        except OSError as exc:
            log.error("metrics: cannot listen on %s:%d: %s (monitoring.listen)", wanted[0], wanted[1], exc)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def watch(self, every_s: float = 2.0) -> threading.Thread:
        def run() -> None:
            while not self.daemon.stopping.wait(every_s):
                try:
                    self.apply()
                except Exception:
                    log.exception("metrics: applying monitoring.listen failed")
            self.close()

        self.apply()
        thread = threading.Thread(target=run, name="metrics", daemon=True)
        thread.start()
        return thread


def start_metrics(daemon: Daemon) -> MetricsServer:
    server = MetricsServer(daemon)
    server.watch()
    return server
