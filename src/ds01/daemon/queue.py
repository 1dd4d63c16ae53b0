"""The wait for GPUs inside ds01d (`container-deploy --wait`): one queue, one granter thread.

A `--wait` deploy that finds no slot joins the queue. The granter looks again whenever capacity frees (the
one remove path calls `atomic.removal.capacity_freed`: retire, remove, reaper stops and cleanups, reclaimed
holds) and every few seconds while requests wait (a container that exits, a hold that expires, a config
edit). It grants in the order of `atomic/queue.py`; the grant is an ordinary deploy, run here, so the slot is
taken under the reservation lock like any create. An attached client waits on its connection (it leaves the
queue the moment the connection closes); a detached request is kept in `<state_dir>/queue/` and survives a
restart, and its owner is told on their terminals and in the workspace's alerts file when it starts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ds01.errors import Ds01Error, NoCapacity, NotFound, OperationFailed, QuotaExceeded, UsageError
from ds01.identity import User, user_by_uid

if TYPE_CHECKING:
    from ds01.context import Context
    from ds01.daemon.routes import Request
    from ds01.daemon.service import Daemon

log = logging.getLogger("ds01d")
POLL_S = 2.0  # while requests wait: containers exit and holds expire without a remove
STATUS_S = 0.25  # how often an attached waiter looks at its connection and its place
USE_CACHE_S = 10.0
HOLDERS_CACHE_S = 1.0
FIELDS = ("name", "image", "gpus", "mig_profile", "cpu_only", "interface")


@dataclass
class Waiting:
    id: str
    user: str
    uid: int
    request: dict[str, Any]  # FIELDS of the deploy body
    arrived: float
    seq: int
    detach: bool = False
    deadline: float | None = None
    passed_over: int = 0
    priority: int = 0
    recent_gpueq_h: float = 0.0
    state: str = "waiting"  # waiting | granting | granted | failed | cancelled | timeout
    result: dict[str, Any] | None = None
    error: Ds01Error | None = None
    messages: list[tuple[str, Any]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def owner(self) -> User:
        return user_by_uid(self.uid)

    @property
    def shape(self) -> str:
        r = self.request
        if r.get("mig_profile"):
            return f"MIG {r['mig_profile']}" + (f" x{r['gpus']}" if (r.get("gpus") or 1) > 1 else "")
        n = r.get("gpus") or 0
        return f"{n} GPU" + ("s" if n != 1 else "")

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id, "user": self.user, "uid": self.uid, "request": self.request,
            "arrived": self.arrived, "seq": self.seq, "detach": self.detach, "deadline": self.deadline,
            "passed_over": self.passed_over,
        }  # fmt: skip

    def public(self, position: int, waiting: int) -> dict[str, Any]:
        return {
            "id": self.id, "user": self.user, "name": self.request["name"], "shape": self.shape,
            "position": position, "waiting": waiting, "priority": self.priority,
            "recent_gpueq_h": round(self.recent_gpueq_h, 3), "passed_over": self.passed_over,
            "waited_s": round(max(0.0, time.time() - self.arrived), 1), "detach": self.detach,
            "deadline": _iso(self.deadline) if self.deadline else None,
        }  # fmt: skip


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class WaitQueue:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._lock = threading.Lock()
        self._entries: dict[str, Waiting] = {}
        self._seq = 0
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.grants = 0
        self._used: tuple[float, dict[str, float]] = (0.0, {})  # recent use, read from the log
        self._held: tuple[float, list[dict[str, Any]]] = (0.0, [])  # holders, for the live lines

    # --- the state dir ---------------------------------------------------------------------------------
    def _dir(self) -> Path:
        return self.daemon.config.paths.state_dir / "queue"

    def _save(self, e: Waiting) -> None:
        if not e.detach:
            return
        from ds01.events import ensure_private_dir

        folder = self._dir()
        ensure_private_dir(folder)
        tmp = folder / f".{e.id}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps(e.record()).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, folder / f"{e.id}.json")

    def _forget(self, e: Waiting) -> None:
        if e.detach:
            with contextlib.suppress(OSError):
                (self._dir() / f"{e.id}.json").unlink()

    def load(self) -> int:
        """The detached requests a previous ds01d left waiting."""
        folder = self._dir()
        if not folder.is_dir():
            return 0
        for path in sorted(folder.glob("*.json")):
            try:
                r = json.loads(path.read_text())
                e = Waiting(
                    id=str(r["id"]), user=str(r["user"]), uid=int(r["uid"]),
                    request={k: r["request"].get(k) for k in FIELDS}, arrived=float(r["arrived"]),
                    seq=int(r["seq"]), detach=True, deadline=r.get("deadline"),
                    passed_over=int(r.get("passed_over") or 0),
                )  # fmt: skip
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                log.error("queue: dropping unreadable request %s: %s", path.name, exc)
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            with self._lock:
                self._entries[e.id] = e
                self._seq = max(self._seq, e.seq + 1)
        return len(self._entries)

    # --- the granter -----------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="queue", daemon=True)
        from ds01.atomic.removal import on_capacity_freed

        on_capacity_freed(self.wake)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self.daemon.stopping.is_set():
            self._wake.wait(POLL_S if self._entries else 30.0)
            self._wake.clear()
            try:
                self._expire()
                self._round()
            except Exception:
                log.exception("queue: a round of grants failed")

    def _root_ctx(self) -> Context:
        from ds01.context import Context

        return Context(config=self.daemon.config, user=user_by_uid(0), gateway_factory=self.daemon.gateway)

    def _waiting(self) -> list[Waiting]:
        with self._lock:
            return [e for e in self._entries.values() if e.state == "waiting"]

    def _rank(self, ctx: Context, entries: list[Waiting]) -> list[Waiting]:
        from ds01.atomic.queue import in_order, recent_use

        at, used = self._used
        if time.monotonic() - at > USE_CACHE_S:  # the whole log is read: not for every live line
            used = recent_use(ctx.config)
            self._used = (time.monotonic(), used)
        for e in entries:
            e.priority = ctx.limits_for(e.owner).limits.priority
            e.recent_gpueq_h = used.get(e.user, 0.0)
        return in_order(entries)

    def _round(self) -> None:
        from ds01.atomic.queue import choose, fits, look, slots_wanted

        pending = self._waiting()
        if not pending:
            return
        ctx = self._root_ctx()
        ordered = self._rank(ctx, pending)
        cap = look(ctx)

        def fit(e: Waiting) -> bool:
            r = e.request
            n = slots_wanted(r.get("gpus"), r.get("mig_profile"), bool(r.get("cpu_only")))
            return fits(ctx, cap, e.owner, gpus=n, mig_profile=r.get("mig_profile"))

        chosen, passed = choose(ordered, fit, ctx.config.queue.max_bypass)
        if chosen is None:
            return
        with self._lock:
            if chosen.state != "waiting":
                self._wake.set()
                return
            chosen.state = "granting"
        if self._grant(chosen):
            for p in passed if chosen.state == "granted" else []:
                p.passed_over += 1
                with contextlib.suppress(OSError):
                    self._save(p)
            self._wake.set()  # look again: the freed capacity may fit more (not after a lost race: no spin)

    def _grant(self, e: Waiting) -> bool:
        from ds01 import naming
        from ds01.atomic.container_create import CreateRequest
        from ds01.context import Context
        from ds01.daemon.reconcile import journaled
        from ds01.daemon.stream_output import StreamOutput
        from ds01.orchestrators.deploy import deploy_container

        owner = e.owner
        ctx = Context(
            config=self.daemon.config, user=owner, out=StreamOutput(lambda k, v: e.messages.append((k, v))),
            gateway_factory=self.daemon.gateway,
        )  # fmt: skip
        r = e.request
        docker_name = naming.container_name(naming.normalise_name(r["name"]), owner.uid)
        request = CreateRequest(
            name=r["name"], image=r.get("image"), gpus=r.get("gpus"), mig_profile=r.get("mig_profile"),
            cpu_only=bool(r.get("cpu_only")), interface=r.get("interface") or "orchestration",
        )  # fmt: skip
        try:
            try:
                with journaled(ctx, "deploy", docker_name, user=owner.name):
                    d = deploy_container(ctx, owner, request)
            except Ds01Error:
                raise
            except Exception as exc:  # never leave a waiter hanging on a grant that broke
                log.exception("queue: the grant of %s failed", e.id)
                raise OperationFailed(f"the deploy failed inside ds01d: {type(exc).__name__}") from exc
        except NoCapacity:  # taken in between (a deploy without --wait): wait on
            with self._lock:
                e.state = "waiting"
            return False
        except Ds01Error as err:
            self._finish(e, "failed", error=err)
            ctx.log("queue_fail", docker_name, user=owner.name, id=e.id, code=err.code, reason=err.message)
            self._tell(e, "FAILED", [f"Your queued deploy failed: {err.message}"], None)
            return True
        waited = round(time.time() - e.arrived, 3)
        result = {
            "action": d.action, "entry": d.entry, "idle_timeout_h": d.idle_timeout_h,
            "max_runtime_h": d.max_runtime_h, "queued": {"id": e.id, "waited_s": waited},
        }  # fmt: skip
        ctx.log(
            "queue_grant", docker_name, user=owner.name, id=e.id, waited_s=waited, passed_over=e.passed_over,
            slots=[g.get("slot") for g in d.entry.get("gpus") or []],
        )  # fmt: skip
        self.grants += 1
        self._finish(e, "granted", result=result)
        self._tell(
            e, "NOTICE",
            [f"Your queued deploy is running (after {waited:.0f} s in the queue).",
             f"container-attach {d.entry.get('name')}  ·  container-retire {d.entry.get('name')} when done"],
            d.entry.get("workspace"),
        )  # fmt: skip
        return True

    def _finish(self, e: Waiting, state: str, *, result: Any = None, error: Ds01Error | None = None) -> None:
        with self._lock:
            e.state, e.result, e.error = state, result, error
            self._entries.pop(e.id, None)
        self._forget(e)
        e.done.set()

    def _tell(self, e: Waiting, severity: str, lines: list[str], workspace: str | None) -> None:
        """A detached request's owner hears of its start (or failure) on their terminals and alerts file."""
        if not e.detach:
            return
        from ds01.lifecycle.notify import MAILED, Notice, Recipient, deliver, send_mail

        try:
            owner = e.owner
            groups = tuple(os.getgrouplist(owner.name, owner.gid))
            notice = Notice(severity, e.request["name"], tuple(lines))
            to, now, settings = (
                Recipient(owner.uid, owner.gid, groups, workspace),
                datetime.now(UTC),
                self.daemon.config.notify,
            )
            deliver(notice, to, now, settings)
            if settings.smtp is not None and severity not in MAILED:  # deliver mails warnings and stops only
                send_mail(notice, to, now, settings)
        except Exception:
            log.exception("queue: could not tell %s", e.user)

    def _expire(self) -> None:
        now = time.time()
        for e in self._waiting():
            if e.deadline is not None and now >= e.deadline:
                self.leave(e, "timeout")
                self._tell(e, "NOTICE", ["Your queued deploy timed out: no slot came free in time."], None)

    # --- requests --------------------------------------------------------------------------------------
    def snapshot(self) -> list[Waiting]:
        """The requests waiting now (for metrics)."""
        return self._waiting()

    def has_waiting(self) -> bool:
        return bool(self._waiting())

    def enqueue(
        self, ctx: Context, owner: User, request: dict[str, Any], *, detach: bool, timeout_s: int | None
    ) -> Waiting:
        from ds01 import naming

        limit = ctx.config.queue.max_waiting_per_user
        name = naming.normalise_name(request["name"])
        with self._lock:
            mine = [e for e in self._entries.values() if e.uid == owner.uid and e.state == "waiting"]
            if any(naming.normalise_name(e.request["name"]) == name for e in mine):
                raise UsageError(
                    f"{name} is already waiting for a GPU",
                    hint="see `ds01 queue`; cancel it with `ds01 queue cancel ID`",
                )
            if len(mine) >= limit:
                raise QuotaExceeded(
                    f"you already wait with {len(mine)} requests (queue.max_waiting_per_user: {limit})",
                    hint="cancel one (`ds01 queue`, `ds01 queue cancel ID`) or wait for a grant",
                )
            now = time.time()
            e = Waiting(
                id=uuid.uuid4().hex[:12], user=owner.name, uid=owner.uid,
                request={k: request.get(k) for k in FIELDS}, arrived=now, seq=self._seq, detach=detach,
                deadline=now + timeout_s if timeout_s else None,
            )  # fmt: skip
            self._seq += 1
            self._save(e)
            self._entries[e.id] = e
        ctx.log(
            "queue_enqueue", naming.container_name(name, owner.uid), user=owner.name, id=e.id, shape=e.shape,
            detach=detach, timeout_s=timeout_s,
        )  # fmt: skip
        self.start()
        self.wake()
        return e

    def leave(self, e: Waiting, why: str, by: str | None = None) -> bool:
        """Take a waiting request out (`cancel` or `timeout`); False when it is being granted already."""
        from ds01 import naming
        from ds01.events import log_event

        with self._lock:
            if e.state != "waiting":
                return False
            e.state = "cancelled" if why == "cancel" else why
            self._entries.pop(e.id, None)
        self._forget(e)
        e.done.set()
        extra = {"by": by} if by and by != e.user else {}
        with contextlib.suppress(Exception):
            log_event(
                self.daemon.config.paths.log_dir, f"queue_{why}", user=e.user,
                container=naming.container_name(naming.normalise_name(e.request["name"]), e.uid),
                id=e.id, waited_s=round(time.time() - e.arrived, 3), **extra,
            )  # fmt: skip
        self.wake()  # a reserved request that left frees the capacity kept for it
        return True

    def get(self, id_: str) -> Waiting | None:
        with self._lock:
            return self._entries.get(id_)

    def listing(self, ctx: Context, *, everyone: bool) -> dict[str, Any]:
        ordered = self._rank(ctx, self._waiting())
        n = len(ordered)
        mine = [e.public(i + 1, n) for i, e in enumerate(ordered) if everyone or e.uid == ctx.user.uid]
        others: dict[str, int] = {}
        if not everyone:
            for e in ordered:
                if e.uid != ctx.user.uid:
                    others[e.shape] = others.get(e.shape, 0) + 1
        return {
            "waiting": n,
            "requests": mine,
            "others": [{"shape": s, "count": c} for s, c in sorted(others.items())],
        }

    def status(self, ctx: Context, e: Waiting) -> dict[str, Any]:
        """What the waiting client's live line shows: its place and what holds the capacity, until when."""
        ordered = self._rank(ctx, self._waiting())
        position = next((i + 1 for i, x in enumerate(ordered) if x.id == e.id), 0)
        at, held = self._held
        if time.monotonic() - at > HOLDERS_CACHE_S:  # one look for every waiting client
            held = holders(ctx)
            self._held = (time.monotonic(), held)
        return {"id": e.id, "position": position, "waiting": len(ordered), "holders": held}


def holders(ctx: Context, most: int = 3) -> list[dict[str, Any]]:
    """The GPU containers and when each is expected to free its slots: its runtime end, or its hold end."""
    from ds01.atomic.queue import look

    try:
        cap = look(ctx)
    except Ds01Error:
        return []
    out: dict[str, dict[str, Any]] = {}
    for h in cap.holdings:
        if not h.container:
            continue
        item = out.setdefault(
            h.container,
            {"user": h.user, "container": h.container, "status": h.status, "slots": [], "frees_at": None},
        )
        item["slots"].append(h.slot_id)
        if h.status and h.since:
            item["frees_at"] = _frees_at(ctx, h.user, h.uid, h.status, h.since)
    rows = sorted(out.values(), key=lambda r: (r["frees_at"] is None, r["frees_at"] or ""))
    return rows[:most]


def _frees_at(ctx: Context, user: str, uid: int, status: str, since: str) -> str | None:
    from ds01.identity import User as _User

    try:
        start = datetime.strptime(since[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
    try:
        limits = ctx.limits_for(user_by_uid(uid) if uid >= 0 else _User(user, uid, uid, Path("/"))).limits
    except Ds01Error:
        return None
    hours = (
        limits.max_runtime_h
        if status in ("running", "paused", "restarting")
        else limits.gpu_hold_after_stop_h
    )
    return _iso(start + hours * 3600) if hours is not None else None


_QUEUES: dict[int, WaitQueue] = {}
_QUEUES_GUARD = threading.Lock()


def queue_of(daemon: Daemon) -> WaitQueue:
    with _QUEUES_GUARD:
        q = _QUEUES.get(id(daemon))
        if q is None:
            q = _QUEUES[id(daemon)] = WaitQueue(daemon)
    return q


def start_queue(daemon: Daemon) -> WaitQueue:
    """At ds01d's start: the detached requests left waiting come back, and the granter runs."""
    q = queue_of(daemon)
    n = q.load()
    if n:
        log.info("queue: %d detached request(s) waiting again", n)
    q.start()
    q.wake()
    return q


def _client_gone(conn: socket.socket | None) -> bool:
    if conn is None:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def wait_for_grant(
    req: Request[Any], owner: User, request: dict[str, Any], reason: Ds01Error
) -> dict[str, Any]:
    """Queue the deploy and, unless detached, wait here until it is granted, times out or the client goes."""
    from ds01.atomic.queue import check_worth_waiting, look, slots_wanted

    ctx, b = req.ctx, req.body
    n = slots_wanted(b.gpus, b.mig_profile, b.cpu_only)
    check_worth_waiting(ctx, look(ctx), owner, gpus=n, mig_profile=b.mig_profile)
    q = queue_of(req.daemon)
    e = q.enqueue(ctx, owner, request, detach=b.detach, timeout_s=b.timeout_s)
    if b.detach:
        place = q.status(ctx, e)
        return {
            "action": "queued",
            "entry": None,
            "queued": {**e.public(place["position"], place["waiting"])},
        }
    ctx.out.info(f"no slot free ({reason.message}): waiting in the queue (request {e.id})")
    last: Any = None
    last_look = 0.0
    sent = 0
    while not e.done.wait(STATUS_S):
        if _client_gone(req.connection):
            if q.leave(e, "cancel", by="client"):
                raise NoCapacity("the client left the queue")
            continue
        if e.deadline is not None and time.time() >= e.deadline and q.leave(e, "timeout"):
            raise NoCapacity(
                f"waited {b.timeout_s} s and no slot came free; left the queue",
                hint="try again later, or wait longer with --timeout (e.g. --timeout 4h)",
            )
        if time.monotonic() - last_look >= 1.0:
            last_look = time.monotonic()
            status = q.status(ctx, e)
            if status != last and e.state == "waiting":
                last = status
                try:
                    req.emit("event", {"queue": status})
                except OSError:
                    q.leave(e, "cancel", by="client")
                    raise NoCapacity("the client left the queue") from None
    for kind, value in e.messages[sent:]:
        with contextlib.suppress(OSError):
            req.emit(kind, value)
    if e.state == "granted" and e.result is not None:
        return e.result
    if e.error is not None:
        raise e.error
    if e.state == "timeout":
        raise NoCapacity(f"waited {b.timeout_s} s and no slot came free; left the queue")
    raise NotFound(f"the queued request {e.id} was cancelled", hint="deploy again to wait anew")
