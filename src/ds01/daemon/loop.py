"""The lifecycle loop (reaper) as a thread of ds01d: one pass every `policies.check_interval_m`."""

from __future__ import annotations

import logging
import threading

from ds01.daemon.service import Daemon

log = logging.getLogger("ds01d")


def start_lifecycle_loop(daemon: Daemon) -> threading.Thread:
    def run() -> None:
        from ds01.context import Context
        from ds01.identity import user_by_uid
        from ds01.lifecycle.clock import SystemClock
        from ds01.lifecycle.reaper import ReaperOptions, locked_pass

        clock = SystemClock()
        while not daemon.stopping.is_set():
            config = daemon.config
            try:
                locked_pass(Context(config=config, user=user_by_uid(0)), clock, ReaperOptions())
            except Exception:
                log.exception("lifecycle pass failed")
            daemon.stopping.wait(max(5.0, config.policies.check_interval_m * 60))

    thread = threading.Thread(target=run, name="lifecycle", daemon=True)
    thread.start()
    return thread
