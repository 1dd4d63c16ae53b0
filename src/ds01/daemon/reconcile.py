"""The journal of operations under way, and the reconcile ds01d runs on start, before it serves.

Every deploy and retire (save-changes and image-update --recreate are made of these) writes one small entry
in `<state_dir>/journal/` before it changes anything and removes it when it returns, however it returns. An
entry still there when ds01d starts belongs to an operation that ds01d's death cut short; reconcile then:

- **deploy**: a container this deploy made (created after the entry was written) that is not running is
  removed (its GPU with it): the deploy is undone. A running one is kept (the deploy had done its work), and
  a container that was there before the deploy is never touched. Staging records of a container that never
  came to exist are dropped.
- **retire**: the same container (same id), if still there, is retired now: with `save_changes`, committed
  first unless that commit already happened; if the commit fails, the container is kept (nothing the user
  installed is lost) and the entry dropped, so the user can retire again. The workspace is never touched.

Then the event log is made consistent with the engine: an `allocate` with no later `release` whose container
is gone gets its `release` (reason `reconcile`), and a `create` with no later `remove` whose container is
gone gets its `remove`.

A deploy that fails while ds01d runs is settled the same way at once (its own rollback may have failed with
the engine); when the engine does not answer, the entry waits and a retry thread settles it as soon as the
engine is back (and the next start would too).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ds01.context import Context
from ds01.errors import Ds01Error, EngineUnavailable, NotFound, OperationFailed
from ds01.events import check_writable, crash_point, ensure_private_dir, read_events

log = logging.getLogger("ds01d")
JOURNAL = "journal"
DEPLOY_WINDOW_S = 600.0  # a container made later than this after a deploy's entry is not that deploy's
CLOCK_SLACK_S = 2.0


def journal_dir(state_dir: Path) -> Path:
    return state_dir / JOURNAL


@dataclass(frozen=True)
class Entry:
    path: Path
    op: str
    container: str
    user: str
    started: float
    container_id: str | None = None
    save: bool = False

    @classmethod
    def load(cls, path: Path) -> Entry:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            raw = json.loads(f.read(1 << 16))
        return cls(
            path=path,
            op=str(raw["op"]),
            container=str(raw["container"]),
            user=str(raw["user"]),
            started=float(raw["started"]),
            container_id=raw.get("container_id") or None,
            save=bool(raw.get("save")),
        )


def _write(path: Path, record: dict[str, Any]) -> None:
    data = json.dumps(record).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if os.write(fd, data) != len(data):
            raise OSError(28, "No space left on device (a short write)")
        os.fsync(fd)
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    os.close(fd)


@contextlib.contextmanager
def journaled(
    ctx: Context, op: str, container: str, *, user: str, container_id: str | None = None, save: bool = False
) -> Iterator[None]:
    """Record the operation before it starts and drop the record when it returns (or raises). A record that
    cannot be written refuses the operation (exit 1) before anything changed."""
    paths = ctx.config.paths
    folder = journal_dir(paths.state_dir)
    path = folder / f"{op}-{uuid.uuid4().hex}.json"
    started = time.time()
    record = {
        "op": op, "container": container, "user": user, "container_id": container_id, "save": save,
        "started": started, "pid": os.getpid(),
    }  # fmt: skip
    try:
        ensure_private_dir(paths.state_dir)
        ensure_private_dir(folder)
        check_writable(paths.state_dir, "ds01 state")
        ensure_private_dir(paths.log_dir)
        check_writable(paths.log_dir, "ds01 event log")
        _write(path, record)
    except OSError as exc:
        raise OperationFailed(
            f"cannot record the {op} in the ds01 state directory: {exc.strerror or exc}",
            hint="ask an admin to free space there (ds01 doctor); nothing was changed",
        ) from exc
    crash_point(f"{op}.journaled")
    try:
        yield
    except BaseException as exc:
        # A deploy that failed may have left what it made (its rollback needs the engine too): settle it
        # now, or, when the engine is away, keep the entry for the retry thread. A retire that failed for
        # its own reasons (a commit refused) is not forced through; one the engine cut short is.
        # (A retire's caller holds the container's lock: its entry waits for the retry thread.)
        entry = Entry(path, op, container, user, started, container_id, save)
        if op == "deploy" and settle(ctx, entry):
            raise
        if op == "deploy" or isinstance(exc, EngineUnavailable):
            with _abandoned_lock:
                _abandoned[path] = entry
            raise
        _clear(path)
        raise
    _clear(path)


def _clear(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # read-only since: the next start's reconcile finds nothing to do with it
        log.error("could not clear the journal entry %s: %s", path.name, exc)


_abandoned: dict[Path, Entry] = {}
_abandoned_lock = threading.Lock()
RETRY_S = 3.0


def settle(ctx: Context, entry: Entry) -> bool:
    """Finish or undo one entry now (under the container's deploy/retire lock) and clear it; False when the
    engine does not answer (the entry stays)."""
    from ds01.orchestrators.deploy import one_at_a_time

    report = Report([], [], [], [], 0)
    try:
        with one_at_a_time(entry.container):
            if entry.op == "deploy":
                _deploy(ctx, entry, report)
            elif entry.op == "retire":
                _retire(ctx, entry, report)
    except EngineUnavailable as err:
        log.warning("%s %s waits for the engine: %s", entry.op, entry.container, err)
        return False
    except Ds01Error as err:
        log.error("reconcile: %s %s: %s", entry.op, entry.container, err)
    _clear(entry.path)
    return True


def start_retry_thread(make_context: Callable[[], Context], stopping: threading.Event) -> threading.Thread:
    """Settle the entries an absent engine left behind, every few seconds, until they are done."""

    def run() -> None:
        while not stopping.wait(RETRY_S):
            with _abandoned_lock:
                entries = list(_abandoned.values())
            if not entries:
                continue
            try:
                ctx = make_context()
                done = [e for e in entries if settle(ctx, e)]
                with _abandoned_lock:
                    for e in done:
                        _abandoned.pop(e.path, None)
                if done:
                    _events(ctx, Report([], [], [], [], 0))
            except Exception:
                log.exception("journal retry failed")

    thread = threading.Thread(target=run, name="journal-retry", daemon=True)
    thread.start()
    return thread


def pending(state_dir: Path) -> list[Entry]:
    folder = journal_dir(state_dir)
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        path = folder / name
        if not name.endswith(".json"):
            continue
        try:
            out.append(Entry.load(path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("reconcile: dropping an unreadable journal entry %s: %s", name, exc)
            with contextlib.suppress(OSError):
                path.unlink()
    return sorted(out, key=lambda e: e.started)


def _engine_time(value: str) -> float:
    """The engine's `Created` (RFC 3339 with nanoseconds) as epoch seconds."""
    head, _, frac = value.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(head + "+00:00").timestamp()
    return seconds + (float("0." + frac[:6]) if frac.isdigit() else 0.0)


@dataclass
class Report:
    undone: list[str]
    kept: list[str]
    retired: list[str]
    events: list[str]
    left: int  # entries kept for the next start (the engine did not answer)


def reconcile(ctx: Context) -> Report:
    """Finish or undo what the journal says was under way; then make the event log agree with the engine.
    Entries the engine could not be asked about wait for the retry thread."""
    report = Report([], [], [], [], 0)
    for entry in pending(ctx.config.paths.state_dir):
        try:
            if entry.op == "deploy":
                _deploy(ctx, entry, report)
            elif entry.op == "retire":
                _retire(ctx, entry, report)
        except EngineUnavailable as err:
            log.error("reconcile: %s %s waits for the engine: %s", entry.op, entry.container, err)
            report.left += 1
            with _abandoned_lock:
                _abandoned[entry.path] = entry
            continue
        except Ds01Error as err:
            log.error("reconcile: %s %s: %s", entry.op, entry.container, err)
        _clear(entry.path)
    if not report.left:
        _events(ctx, report)
    return report


def _view(ctx: Context, name: str) -> Any:
    from ds01.atomic.container_view import ContainerView

    raw = ctx.gateway.find(name)
    return None if raw is None else (ContainerView.from_inspect(raw), raw)


def _remove(ctx: Context, view: Any, reason: str) -> None:
    from ds01.atomic.host_paths import forget_staging
    from ds01.atomic.removal import remove_and_release

    with contextlib.suppress(NotFound):
        remove_and_release(ctx, view, reason=reason, by="ds01d")
    forget_staging(ctx.config.paths, view.docker_name)


def _deploy(ctx: Context, entry: Entry, report: Report) -> None:
    from ds01.atomic.host_paths import forget_staging

    found = _view(ctx, entry.container)
    if found is None:
        forget_staging(ctx.config.paths, entry.container)
        return
    view, raw = found
    created = _engine_time(str(raw.get("Created") or "1970-01-01T00:00:00Z"))
    made_here = entry.started - CLOCK_SLACK_S <= created <= entry.started + DEPLOY_WINDOW_S
    state = (raw.get("State") or {}).get("Status")
    if not made_here or state in ("running", "paused", "restarting"):
        report.kept.append(entry.container)
        return
    _remove(ctx, view, "rollback")
    report.undone.append(entry.container)
    log.warning("reconcile: undid the deploy of %s cut short (it was %s)", entry.container, state)


def _retire(ctx: Context, entry: Entry, report: Report) -> None:
    from ds01.orchestrators.retire import retire_container, save_changes

    found = _view(ctx, entry.container)
    if found is None or (entry.container_id and found[0].id != entry.container_id):
        return  # removed already (the events are repaired below)
    view, _raw = found
    if entry.save and not _committed_since(ctx, view, entry.started):
        try:
            save_changes(ctx, view)
        except Ds01Error as err:
            log.error("reconcile: kept %s: its changes could not be saved (%s)", entry.container, err)
            report.kept.append(entry.container)
            return
    retire_container(ctx, view, save=False)
    crash_point("reconcile.after_retire")
    report.retired.append(entry.container)
    log.warning("reconcile: finished the retire of %s cut short by a restart", entry.container)


def _committed_since(ctx: Context, view: Any, started: float) -> bool:
    from ds01 import naming

    uid = view.uid if view.uid is not None else 0
    info = ctx.gateway.image_inspect(f"{naming.image_repository(view.name, uid)}:latest")
    if not info:
        return False
    labels = (info.get("Config") or {}).get("Labels") or {}
    if labels.get(naming.LABEL_COMMITTED_FROM) != view.docker_name:
        return False
    return _engine_time(str(info.get("Created") or "1970-01-01T00:00:00Z")) >= started - CLOCK_SLACK_S


def _events(ctx: Context, report: Report) -> None:
    """`allocate` without a later `release`, `create` without a later `remove`, for containers now gone."""
    open_alloc: dict[str, dict[str, Any]] = {}
    open_create: dict[str, dict[str, Any]] = {}
    for e in read_events(ctx.config.paths.log_dir):
        name, kind = e.get("container"), e.get("event_type")
        if not isinstance(name, str) or not name:
            continue
        if kind == "allocate":
            open_alloc[name] = e
        elif kind == "release":
            open_alloc.pop(name, None)
        elif kind == "create":
            open_create[name] = e
        elif kind == "remove":
            open_create.pop(name, None)
    if not open_alloc and not open_create:
        return
    present = {c.name for c in ctx.gateway.containers(all=True)}
    for name, e in open_create.items():
        if name not in present:
            ctx.log("remove", name, user=str(e.get("user")), reason="reconcile", forced=False, by="ds01d")
            report.events.append(f"remove {name}")
    for name, e in open_alloc.items():
        if name in present:
            continue
        d = e.get("details") or {}
        ctx.log(
            "release", name, user=str(e.get("user")), slots=d.get("slots"), uuids=d.get("uuids"),
            gpueq=d.get("gpueq"), reason="reconcile", by="ds01d",
        )  # fmt: skip
        report.events.append(f"release {name}")


def run_on_start(ctx: Context) -> Report | None:
    """reconcile(), never fatal: ds01d serves even when the engine is down (the journal waits)."""
    try:
        report = reconcile(ctx)
    except Ds01Error as err:
        log.error("reconcile on start failed (the journal is kept for the next start): %s", err)
        return None
    except Exception:
        log.exception("reconcile on start failed")
        return None
    if report.undone or report.retired or report.events or report.kept:
        log.warning(
            "reconcile: undone %s, retired %s, kept %s, events repaired %s",
            report.undone, report.retired, report.kept, report.events,
        )  # fmt: skip
    return report
