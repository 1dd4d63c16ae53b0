"""Endpoints: usage accounting, a user's summary (the login greeting), and the live view (`ds01 top`).

The greeting must cost a login nothing, so ds01d keeps each user's greeting text current in
`<run_dir>/users/<uid>/greeting` (root's, 0444, in the user's own 0700 folder: only that user reads it),
rewritten every `GREETING_EVERY_S` by a thread of ds01d; `/etc/profile.d/ds01.sh` only prints the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ds01.daemon.routes import Request, route
from ds01.daemon.schema import limit
from ds01.errors import Ds01Error, UsageError

if TYPE_CHECKING:
    from ds01.config import Config
    from ds01.context import Context
    from ds01.daemon.service import Daemon
    from ds01.docker_gateway import ContainerSummary
    from ds01.identity import User

log = logging.getLogger("ds01d")
USER = limit(max_len=64)
WHEN = limit(max_len=40)
GREETING_FILE = "greeting"
GREETING_EVERY_S = 30.0
ALERT_TYPES = ("idle_warning", "runtime_warning", "idle_stop", "runtime_stop", "cleanup", "reclaim")
ALERT_WINDOW = timedelta(hours=24)


# -- usage ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UsageBody:
    user: str | None = field(default=None, metadata=USER)
    since: str | None = field(default=None, metadata=WHEN)
    until: str | None = field(default=None, metadata=WHEN)
    month: str | None = field(default=None, metadata=limit(max_len=7))
    now: str | None = field(default=None, metadata=WHEN)


def _when(value: str, flag: str) -> datetime:
    from ds01.lifecycle.clock import parse_iso

    when = parse_iso(value)
    if when is None:
        raise UsageError(
            f"--{flag}: {value!r} is not a date or ISO-8601 time",
            hint="e.g. 2026-11-01 or 2026-11-23T14:05:00Z",
        )
    return when


def period(body: UsageBody, now: datetime) -> tuple[datetime, datetime]:
    from ds01.atomic.usage import month_bounds

    if body.month:
        if body.since or body.until:
            raise UsageError("--month and --since/--until do not go together", hint="give one or the other")
        try:
            return month_bounds(body.month)
        except ValueError as exc:
            raise UsageError(f"--month: {exc}", hint="e.g. --month 2026-11") from None
    until = _when(body.until, "until") if body.until else now
    since = (
        _when(body.since, "since")
        if body.since
        else until.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    )
    if since >= until:
        raise UsageError("--since must be before --until", hint="e.g. --since 2026-11-01 --until 2026-11-15")
    return since, until


@route("GET", "/usage", UsageBody)
def usage(req: Request[UsageBody]) -> dict[str, Any]:
    """A user's own figures; an admin everyone's (or `user`'s)."""
    from ds01.atomic.usage import all_events, usage_report
    from ds01.lifecycle.clock import ManualClock, SystemClock

    ctx, b = req.ctx, req.body
    clock = ManualClock(_when(b.now, "now")) if b.now else SystemClock()  # `now`: what-if for open intervals
    now = clock.now()
    since, until = period(b, now)
    who = ctx.target_user(b.user).name if (b.user or not ctx.is_admin) else None
    groups, cpus = _resolvers(ctx.config)
    report = usage_report(
        all_events(ctx.config.paths.log_dir), since=since, until=until, now=now,
        group_of=groups, cpus_of=cpus, user=who,
    )  # fmt: skip
    return {**report.as_dict(), "scope": who or "all"}


def _resolvers(config: Config) -> tuple[Any, Any]:
    from ds01.identity import lookup_user
    from ds01.limits import resolve_limits

    cache: dict[str, tuple[str, float | None]] = {}

    def resolved(name: str) -> tuple[str, float | None]:
        if name not in cache:
            try:
                r = resolve_limits(config, lookup_user(name))
                cache[name] = (r.group, r.limits.max_cpus)
            except Ds01Error:
                cache[name] = ("", None)
        return cache[name]

    return (lambda n: resolved(n)[0]), (lambda n: resolved(n)[1])


# -- a user's summary: quota, containers with countdowns, alerts ---------------------------------------------
def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _countdowns(
    config: Config, owner: User, c: ContainerSummary, state: Any, now: datetime
) -> dict[str, Any]:
    """Seconds left before the idle stop and the runtime stop, as the reaper would count them now."""
    from ds01.atomic.holdings import parse_time
    from ds01.limits import resolve_limits

    limits = resolve_limits(config, owner).limits
    out: dict[str, Any] = {"idle_left_s": None, "runtime_left_s": None}
    if c.state != "running" or state is None:
        return out
    started = parse_time(state.first_started_at or state.started_at or "")
    if limits.max_runtime_h is not None and started is not None:
        out["runtime_left_s"] = int(limits.max_runtime_h * 3600 - (now - started).total_seconds())
    last = parse_time(state.last_activity or state.started_at or "") if state.idle_streak else None
    if limits.idle_timeout_h is not None and last is not None:
        out["idle_left_s"] = int(limits.idle_timeout_h * 3600 - (now - last).total_seconds())
    return out


def summaries(
    config: Config, containers: Iterable[ContainerSummary], events: Iterable[dict[str, Any]], now: datetime,
    *, only_uid: int | None = None,
) -> dict[int, dict[str, Any]]:  # fmt: skip
    """Per uid: the user's GPU use against quota, containers with countdowns, alerts of the last day."""
    from ds01 import naming
    from ds01.atomic.holdings import HOLDING_STATES, corruption, parse_gpueq
    from ds01.identity import user_by_uid
    from ds01.lifecycle.state import StateStore
    from ds01.limits import resolve_limits

    records = StateStore(config.paths.state_dir).load_all()
    out: dict[int, dict[str, Any]] = {}
    for c in containers:
        if c.labels.get(naming.LABEL_MANAGED) != "true":
            continue
        try:
            uid = int(c.labels.get(naming.LABEL_UID, ""))
        except ValueError:
            continue
        if only_uid is not None and uid != only_uid:
            continue
        s = out.get(uid)
        if s is None:
            owner = user_by_uid(uid)
            resolved = resolve_limits(config, owner)
            s = out[uid] = {
                "user": owner.name, "uid": uid, "group": resolved.group, "at": _iso(now), "gpueq": 0.0,
                "quota": resolved.limits.max_gpu_equivalents, "containers": [], "alerts": [], "_owner": owner,
            }  # fmt: skip
        gpueq = (
            0.0 if corruption(c.labels) else (parse_gpueq(c.labels.get(naming.LABEL_GPU_GPUEQ, "")) or 0.0)
        )
        if c.state in HOLDING_STATES:
            s["gpueq"] += gpueq
        s["containers"].append({
            "name": naming.split_container_name(c.name)[0], "status": c.state,
            "gpus": [x for x in c.labels.get(naming.LABEL_GPU_SLOTS, "").split(",") if x], "gpueq": gpueq,
            **_countdowns(config, s["_owner"], c, records.get(c.id), now),
        })  # fmt: skip
    by_name = {s["user"]: s for s in out.values()}
    cutoff = _iso(now - ALERT_WINDOW)
    for e in events:
        if e.get("event_type") in ALERT_TYPES and str(e.get("timestamp", "")) >= cutoff:
            s = by_name.get(str(e.get("user")))
            if s is not None:
                d = e.get("details") if isinstance(e.get("details"), dict) else {}
                s["alerts"].append({
                    "at": e.get("timestamp"), "type": e.get("event_type"),
                    "container": naming.split_container_name(str(e.get("container") or ""))[0],
                    "reason": str((d or {}).get("reason", ""))[:200],
                })  # fmt: skip
    for s in out.values():
        s.pop("_owner")
        s["gpueq"] = round(s["gpueq"], 4)
        s["alerts"] = s["alerts"][-5:]
    return out


class RecentAlerts:
    """The alert events of the last day, read once in full and then forward (not the whole log per look)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tail: Any = None
        self._items: list[dict[str, Any]] = []

    def get(self, log_dir: Path, now: datetime) -> list[dict[str, Any]]:
        from ds01.daemon.metrics import EventTail
        from ds01.events import read_events

        with self._lock:
            if self._tail is None or self._tail.log_dir != log_dir:
                self._tail = EventTail(log_dir)
                fresh: Iterable[dict[str, Any]] = read_events(log_dir)
                self._items = []
            else:
                fresh = self._tail.new_records()
            self._items += [e for e in fresh if e.get("event_type") in ALERT_TYPES]
            cutoff = _iso(now - ALERT_WINDOW)
            self._items = [e for e in self._items if str(e.get("timestamp", "")) >= cutoff]
            return list(self._items)


ALERTS = RecentAlerts()


def _left(seconds: int | None) -> str:
    if seconds is None:
        return ""
    if seconds <= 0:
        return "due now"
    h, m = divmod(seconds // 60, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def greeting_text(s: dict[str, Any]) -> str:
    quota = "unlimited" if s["quota"] is None else f"{s['quota']:g}"
    lines = [
        f"ds01: {s['user']} holds {s['gpueq']:g} of {quota} GPU-equivalents (as of {s['at'][11:16]} UTC)"
    ]
    for c in s["containers"]:
        gpus = f" GPU {','.join(c['gpus'])}" if c["gpus"] else ""
        parts = [f"  {c['name']:<20} {c['status']:<8}{gpus}"]
        if c["idle_left_s"] is not None:
            parts.append(f"idle stop in {_left(c['idle_left_s'])}")
        if c["runtime_left_s"] is not None:
            parts.append(f"runtime limit in {_left(c['runtime_left_s'])}")
        lines.append("  ".join(parts))
    for a in s["alerts"]:
        lines.append(f"  ! {a['at'][:16].replace('T', ' ')} {a['type'].replace('_', ' ')}: {a['container']}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SummaryBody:
    user: str | None = field(default=None, metadata=USER)


@route("GET", "/summary", SummaryBody)
def summary(req: Request[SummaryBody]) -> dict[str, Any]:
    """The caller's summary (an admin: `user`'s), as the greeting shows it."""
    from ds01.lifecycle.clock import SystemClock

    ctx = req.ctx
    owner = ctx.target_user(req.body.user)
    now = SystemClock().now()
    found = summaries(
        ctx.config,
        ctx.gateway.containers(),
        ALERTS.get(ctx.config.paths.log_dir, now),
        now,
        only_uid=owner.uid,
    )
    s = found.get(owner.uid) or _empty(ctx, owner)
    return {**s, "text": greeting_text(s)}


def _empty(ctx: Context, owner: User) -> dict[str, Any]:
    from ds01.lifecycle.clock import SystemClock

    resolved = ctx.limits_for(owner)
    return {
        "user": owner.name, "uid": owner.uid, "group": resolved.group, "at": _iso(SystemClock().now()),
        "gpueq": 0.0, "quota": resolved.limits.max_gpu_equivalents, "containers": [], "alerts": [],
    }  # fmt: skip


# -- the live view ---------------------------------------------------------------------------------------
@route("GET", "/top")
def top(req: Request[Any]) -> dict[str, Any]:
    """Slots with holders and utilisation (everyone sees these, as in gpu-status); users against quotas and
    containers with countdowns: an admin everyone's, a user their own."""
    from ds01.atomic.gpu_status import gpu_status
    from ds01.lifecycle.clock import SystemClock

    ctx = req.ctx
    containers = ctx.gateway.containers()
    slots = gpu_status(ctx.config, reader=ctx.gateway)
    only = None if ctx.is_admin else ctx.user.uid
    now = SystemClock().now()
    found = summaries(ctx.config, containers, ALERTS.get(ctx.config.paths.log_dir, now), now, only_uid=only)
    if only is not None and only not in found:
        found[only] = _empty(ctx, ctx.user)
    return {
        "at": _iso(SystemClock().now()),
        "scope": "all" if only is None else ctx.user.name,
        "backend": slots["backend"],
        "totals": slots["totals"],
        "slots": slots["slots"],
        "users": [found[k] for k in sorted(found, key=lambda u: found[u]["user"])],
    }


# -- the greeting cache -----------------------------------------------------------------------------------
WALK = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


def _user_dir(run_root: Path, owner: User) -> int | None:
    """An open descriptor of `<run_dir>/users/<uid>` (made as the Jupyter/ports sockets make it: `users`
    root's 0755, the uid folder the owner's 0700), reached without following a link."""
    os.makedirs(run_root, mode=0o755, exist_ok=True)
    fd = os.open(run_root, WALK)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir("users", 0o755, dir_fd=fd)
        users = os.open("users", WALK, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        st = os.fstat(users)
        if st.st_uid != 0:
            return None
        with contextlib.suppress(FileExistsError):
            os.mkdir(str(owner.uid), 0o700, dir_fd=users)
            os.chown(str(owner.uid), owner.uid, owner.gid, dir_fd=users, follow_symlinks=False)
        mine = os.open(str(owner.uid), WALK, dir_fd=users)
    finally:
        os.close(users)
    st = os.fstat(mine)
    if st.st_uid != owner.uid or st.st_mode & 0o077:
        os.close(mine)
        return None  # not the owner's private folder: nothing is written there
    return mine


def write_greeting(run_root: Path, owner: User, text: str) -> bool:
    """Replace `greeting` in the user's folder whole (a new file renamed over it: a link planted there is
    replaced, never followed)."""
    try:
        fd = _user_dir(run_root, owner)
    except OSError:
        return False
    if fd is None:
        return False
    tmp = f".greeting.{os.getpid()}.{threading.get_ident()}"
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=fd)
        out = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444, dir_fd=fd
        )
        try:
            os.write(out, text.encode())
            os.fchmod(out, 0o444)
        finally:
            os.close(out)
        os.rename(tmp, GREETING_FILE, src_dir_fd=fd, dst_dir_fd=fd)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=fd)
        return False
    finally:
        os.close(fd)


def refresh_greetings(daemon: Daemon, known: set[int]) -> set[int]:
    """Write every user's greeting who has containers; a user who had some and has none now gets an
    empty greeting once. Returns the uids written with containers."""
    from ds01.identity import user_by_uid
    from ds01.lifecycle.clock import SystemClock

    config = daemon.config
    now = SystemClock().now()
    found = summaries(config, daemon.gateway().containers(), ALERTS.get(config.paths.log_dir, now), now)
    run_root = config.paths.run_root()
    for uid, s in found.items():
        write_greeting(run_root, user_by_uid(uid), greeting_text(s))
    for uid in known - set(found):
        write_greeting(run_root, user_by_uid(uid), "")
    return set(found)


def _greeted(run_root: Path) -> set[int]:
    """The uids that have a greeting file now."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for entry in os.scandir(run_root / "users"):
            if entry.name.isdigit() and os.path.lexists(os.path.join(entry.path, GREETING_FILE)):
                found.add(int(entry.name))
    return found


HOST_GPU_FILE = "deter-host-gpu"


def write_host_gpu_notice(config: Config) -> None:
    """With `gpu.deter_host_use`, `<run_dir>/deter-host-gpu` names who may use GPUs outside containers (the
    admins: users and Unix groups) for the login script, which hides the GPUs from everyone else; without
    it, the file goes. Written atomically, root's, world-readable (it holds only names from the config)."""
    path = config.paths.run_root() / HOST_GPU_FILE
    if not config.gpu.deter_host_use:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    admins = [g for g in config.groups if g.admin]
    users = sorted({"root", *(m for g in admins for m in g.members)})
    groups = sorted({o for g in admins for o in g.os_groups})
    text = f"users {' '.join(users)}\ngroups {' '.join(groups)}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{HOST_GPU_FILE}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def start_greeting_cache(daemon: Daemon, every_s: float = GREETING_EVERY_S) -> threading.Thread:
    """Rewrite the greetings every `every_s`, and soon after any request that may change something."""
    from ds01.daemon.metrics import CHANGED

    def run() -> None:
        known = _greeted(daemon.config.paths.run_root())  # a stale one from before a restart is emptied too
        while not daemon.stopping.is_set():
            CHANGED.clear()
            try:
                write_host_gpu_notice(daemon.config)
                known = refresh_greetings(daemon, known)
            except Exception as exc:  # the engine away: try again next round
                log.debug("greeting refresh failed: %s", exc)
            CHANGED.wait(every_s)
            daemon.stopping.wait(0.3)  # a burst of requests makes one refresh

    thread = threading.Thread(target=run, name="greetings", daemon=True)
    thread.start()
    return thread
