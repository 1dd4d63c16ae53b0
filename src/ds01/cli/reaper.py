"""`ds01-reaper` (admins): idle GPU containers, runtime limits, holds after stop, cleanup."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ds01.cli.common import JsonOpt, handle_errors
from ds01.errors import Ds01Error, ExitCode

if TYPE_CHECKING:
    from ds01.output import Output


@handle_errors
def reaper(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit (for a timer or cron).")] = False,
    interval: Annotated[
        str | None,
        typer.Option(
            "--interval",
            metavar="S",
            help="Seconds between passes (also 90s, 5m); default: 5m. ds01d runs its own loop anyway.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be done; warn, stop, remove and record nothing.")
    ] = False,
    json_out: JsonOpt = False,
    now: Annotated[
        str | None, typer.Option("--now", hidden=True, help="Pretend it is this UTC time (ISO-8601).")
    ] = None,
) -> None:
    """Enforce the lifecycle policies on every ds01 container (admins only).

    ds01d runs this loop by itself every policies.check_interval_m; this command asks it for a pass now.

    Idle GPU containers: warned at 80 % and 95 % of the owner's idle_timeout_h, then stopped and removed.

    Past max_runtime_h: stopped (kept until the hold after stop passes).

    Stopped ones: removed after their hold; created, never started: after created_container_timeout_m.

    Workspaces always stay. Containers without the ds01.managed=true label are never touched.

    Examples:
      ds01-reaper --once --dry-run
      ds01-reaper --once --json | jq '.actions'
      ds01-reaper --interval 2m        (passes on demand, in the foreground)
    """
    import time

    from ds01 import units
    from ds01.cli.common import connect
    from ds01.client import path_of
    from ds01.errors import UsageError

    try:
        interval_s = units.parse_seconds(interval) if interval else 300.0
    except ValueError as exc:
        raise UsageError(f"--interval: {exc}") from None
    if interval_s <= 0:
        raise UsageError("--interval must be more than 0 seconds")
    client = connect(json_out)
    body = {"dry_run": dry_run, "now": now}
    if once:
        _show(client.out, client.call("POST", path_of("reaper"), body), single=True)
        return
    if not json_out:
        client.out.info(f"ds01-reaper: a pass every {interval_s:g} s{' (dry run)' if dry_run else ''}")
    import signal
    import sys

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # between passes; ds01d finishes a pass it began
    while True:
        try:
            _show(client.out, client.call("POST", path_of("reaper"), body), single=False)
        except Ds01Error as err:
            if err.exit_code in (ExitCode.PERMISSION, ExitCode.USAGE):
                raise
            _emit_error(client.out, err)
        time.sleep(interval_s)


def _emit_error(out: Output, err: Ds01Error) -> None:
    if out.json_mode:
        _json_line(out, {"error": {"code": err.code, "message": str(err)}})
    out.stderr.write(f"error: {err}\n")
    out.stderr.flush()


def _json_line(out: Output, payload: object) -> None:
    out.stdout.write(json.dumps(payload, default=str, separators=(",", ":")) + "\n")
    out.stdout.flush()


def _show(out: Output, report: dict[str, Any], *, single: bool) -> None:
    if out.json_mode:
        if single:
            out.json(report)
        else:  # the loop: one JSON document per line, per pass
            _json_line(out, report)
        return
    entries = report["containers"] if single else report["actions"]
    if single:
        rows = [(e["name"], e["user"], e["status"], e["action"], _outcome(e) + e["reason"]) for e in entries]
        out.table(("container", "user", "status", "action", "reason"), rows, empty="no ds01 containers")
    else:
        stamp = str(report["at"]).replace("T", " ").removesuffix("Z")
        for e in entries:
            out.say(f"{stamp} {e['action']} {e['name']} ({e['user']}): {_outcome(e)}{e['reason']}")
    if report.get("gpu_notice"):
        out.warn(report["gpu_notice"])
    if single:
        dry = report["dry_run"]
        done = "would act" if dry else "acted"
        out.info(
            f"{report['checked']} containers checked, {done} on {len(report['actions'])} "
            f"in {report['elapsed_s']:.2f} s" + (" (dry run: nothing changed)" if dry else "")
        )


def _outcome(entry: dict[str, Any]) -> str:
    return f"[failed: {entry['error']}] " if entry.get("error") else ""
