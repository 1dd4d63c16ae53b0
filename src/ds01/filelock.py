"""An exclusive fcntl lock with a deadline: the GPU reservation lock and the reaper's lock both use it."""

from __future__ import annotations

import fcntl
import time

from ds01.errors import LockTimeout


def flock_within(fd: int, timeout: float, *, message: str, hint: str, poll_s: float = 0.02) -> None:
    """Take an exclusive lock on `fd`, or raise LockTimeout: never proceed without it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockTimeout(message, hint=hint) from None
            time.sleep(poll_s)
