"""`Output` inside ds01d: every message goes to the client as a `message` line, as it happens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ds01.output import Output, strip_markup


class StreamOutput(Output):
    def __init__(self, emit: Callable[[str, Any], None]) -> None:
        super().__init__(json_mode=False)
        self._emit = emit

    @property
    def interactive(self) -> bool:
        return False

    def _send(self, level: str, message: str) -> None:
        self._emit("message", {"level": level, "text": message})

    def say(self, message: str) -> None:
        self._send("say", message)

    def info(self, message: str) -> None:
        self._send("info", message)

    def success(self, message: str) -> None:
        self._send("success", message)

    def warn(self, message: str) -> None:
        self._send("warn", message)

    def hint(self, message: str) -> None:
        self._send("hint", message)

    def json(self, payload: Any) -> None:  # pragma: no cover - daemon code returns results instead
        raise RuntimeError("ds01d returns results; it never prints JSON")

    def plain(self, message: str) -> str:
        return strip_markup(message)
