"""Sizes (Docker strings like `32g`) and durations: parsed here and only here."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*$", re.IGNORECASE)
_FACTORS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(value: str | int) -> int:
    """`32g` -> bytes. Raises ValueError with a readable reason."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 32g or 512m")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a size; use a Docker size such as 32g or 512m")
    return int(float(match.group(1)) * _FACTORS[match.group(2).lower()])


def format_size(n: int | None) -> str:
    if n is None:
        return "unlimited"
    for unit, factor in (("t", 1024**4), ("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n >= factor:
            return f"{n / factor:.1f}{unit}"
    return f"{n}B"


def parse_seconds(value: str | float | int) -> float:
    """`90`, `90s`, `15m`, `2h`, `1d` -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration; use e.g. 90s, 15m or 2h")
    return float(match.group(1)) * _SECONDS[match.group(2).lower()]


def format_hours(hours: float | None) -> str:
    if hours is None:
        return "never"
    minutes = round(hours * 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes // 60} h {minutes % 60} min"
