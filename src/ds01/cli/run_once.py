"""`container-run NAME --rm -- CMD`: CMD once in a fresh container from the project's image (CI-style).

ds01d creates and starts `<name>-run-<6 hex>` and hands over CMD's stream (see the `run-once` endpoint);
this side pumps it like any session, takes the exit code, and removes the container. Were this process to
die first, ds01d removes it by itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ds01.client import path_of
from ds01.errors import Ds01Error, UsageError

if TYPE_CHECKING:
    from ds01.client import Client


def run_once(
    client: Client,
    name: str | None,
    command: Sequence[str] | None,
    *,
    user: str | None = None,
    gpus: int | None = None,
    rm: bool = True,
) -> int:
    from ds01 import naming
    from ds01.terminal import pump_session, stdio_is_terminal

    if not rm:
        raise UsageError("--gpus goes with --rm here", hint="container-run NAME --rm --gpus 1 -- CMD")
    if not name:
        raise UsageError("container-run --rm needs NAME", hint="e.g. container-run thesis --rm -- pytest")
    if not command:
        raise UsageError("--rm needs a command", hint=f"e.g. container-run {name} --rm -- pytest")
    if gpus is not None and gpus < 0:
        raise UsageError(f"--gpus {gpus}: a count cannot be negative", hint="e.g. --gpus 1")
    name = naming.normalise_name(name)
    tty = stdio_is_terminal()
    body: dict[str, Any] = {"cmd": list(command), "tty": tty, "stdin": True, "gpus": gpus, "user": user}
    stream, result = client.exec_stream(path_of("containers", name, "run-once"), body)
    try:
        return pump_session(client, str(result["exec_id"]), stream, tty=tty)
    finally:
        with contextlib.suppress(Ds01Error):  # gone already, or ds01d away: ds01d removes it by itself
            client.call(
                "DELETE", path_of("containers", str(result["container"])), {"force": True, "user": user}
            )
