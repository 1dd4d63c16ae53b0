"""The lifecycle loop (reaper) as a thread of ds01d: one pass every `policies.check_interval_m`, with the
config in force at that moment (an edit applies at the next pass; a broken edit leaves the last good one).
Admins ask for an extra pass with `POST /v1/reaper` (`ds01-reaper --once`); both take the reaper's lock."""

from __future__ import annotations

import logging
import threading

from ds01.daemon.service import Daemon

log = logging.getLogger("ds01d")
MIN_INTERVAL_S = 5.0


def start_lifecycle_loop(daemon: Daemon) -> threading.Thread:
    def run() -> None:
        from ds01.context import Context
        from ds01.identity import user_by_uid
        from ds01.lifecycle.clock import SystemClock
        from ds01.lifecycle.reaper import ReaperOptions, locked_pass

        clock = SystemClock()
        root = user_by_uid(0)
        while not daemon.stopping.is_set():
            config = daemon.config
            try:
                report = locked_pass(Context(config=config, user=root), clock, ReaperOptions())
                for e in report.actions:
                    d, s = e.decision, e.seen
                    log.info(
                        "reaper: %s %s (%s): %s", d.action, s.summary.name, s.owner.name, e.error or d.reason
                    )
            except Exception:
                log.exception("lifecycle pass failed")
            daemon.stopping.wait(max(MIN_INTERVAL_S, config.policies.check_interval_m * 60))

    thread = threading.Thread(target=run, name="lifecycle", daemon=True)
    thread.start()
    return thread
