"""Waiting for something a test cannot be told about: ask again until it is so, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def until(what: Callable[[], Any], timeout: float = 30, step: float = 0.1) -> Any:
    """`what()` once it is truthy (asked every `step` seconds); not by the deadline: an AssertionError."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = what()
        if got:
            return got
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")
