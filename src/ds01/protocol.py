"""The wire between the commands and ds01d (CONTRACT §1): paths, status codes and the error object.

Requests are HTTP/1.1 on a Unix socket with a JSON body (or query parameters for GET). Every answer is a
stream of JSON lines, each an object with one key:

- `{"message": {"level": "info"|"warn"|"hint"|"success"|"say", "text": "..."}}`: for the user, as it happens;
- `{"event": {...}}`: progress of a long operation (build steps, log chunks), endpoint-specific;
- `{"result": ...}`: the last line of a success;
- `{"error": {"code", "message", "hint", "exit_code"}}`: the last line of a failure.

This module is engine-free and import-light: clients and ds01d both use it.
"""

from __future__ import annotations

import json
from typing import Any

from ds01 import errors

API = "/v1"
DEFAULT_SOCKET = "/run/ds01/ds01.sock"
SOCKET_ENV = "DS01_SOCKET"
MAX_BODY = 1 << 20  # JSON bodies; uploads (build contexts) have their own cap
BODY_HEADER = "X-Ds01-Body"  # the JSON body of an upload endpoint, whose HTTP body is the archive

# Exit code (CONTRACT §5) -> HTTP status, as the Docker Engine API would answer.
STATUS_FOR_EXIT = {1: 500, 2: 400, 3: 404, 4: 409, 5: 403, 6: 503, 130: 499}
MESSAGE_LEVELS = ("info", "warn", "hint", "success", "say")


def _error_classes() -> dict[str, type[errors.Ds01Error]]:
    found: dict[str, type[errors.Ds01Error]] = {}
    stack: list[type[errors.Ds01Error]] = [errors.Ds01Error]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found


def error_payload(err: errors.Ds01Error) -> dict[str, Any]:
    return {"code": err.code, "message": err.message, "hint": err.hint, "exit_code": int(err.exit_code)}


def error_from_payload(payload: Any) -> errors.Ds01Error:
    """The client's copy of ds01d's error: same class, message, hint and exit code."""
    if not isinstance(payload, dict):
        return errors.Ds01Error(f"ds01d sent a malformed error: {payload!r:.200}")
    cls = _error_classes().get(str(payload.get("code")), errors.Ds01Error)
    hint = payload.get("hint")
    err = cls(str(payload.get("message", "")), hint=str(hint) if hint else None)
    code = payload.get("exit_code")
    if isinstance(code, int) and code in errors.ExitCode._value2member_map_ and code != err.exit_code:
        err.exit_code = errors.ExitCode(code)
    return err


def line(kind: str, value: Any) -> bytes:
    return (json.dumps({kind: value}, default=str, separators=(",", ":")) + "\n").encode()
