"""`ds01-reaper` (admins): idle GPU containers, runtime limits, holds after stop, cleanup."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from ds01.cli.common import JsonOpt, handle_errors

if TYPE_CHECKING:
    from ds01.context import Context
    from ds01.errors import Ds01Error
    from ds01.lifecycle.clock import Clock
    from ds01.lifecycle.reaper import Entry, PassReport


@handle_errors
def reaper(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit (for a timer or cron).")] = False,
    interval: Annotated[
        str | None,
        typer.Option(
            "--interval",
            metavar="S",
            help="Seconds between passes (also 90s, 5m); default: policies.check_interval_m.",
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

    Idle GPU containers: warned at 80 % and 95 % of the owner's idle_timeout_h, then stopped and removed.

    Past max_runtime_h: stopped (kept until the hold after stop passes).

    Stopped ones: removed after their hold; created, never started: after created_container_timeout_m.

    Workspaces always stay. Containers without the ds01.managed=true label are never touched.

    Examples:
      ds01-reaper --once --dry-run
      ds01-reaper --once --json | jq '.actions'
      ds01-reaper --interval 2m        (the loop the systemd service runs)
    """
    from ds01 import units
    from ds01.context import Context
    from ds01.errors import PermissionDenied, UsageError
    from ds01.lifecycle.clock import ManualClock, SystemClock, parse_iso
    from ds01.lifecycle.reaper import ReaperOptions, locked_pass, run_loop

    ctx = Context.load(json_mode=json_out)
    if not ctx.is_admin:
        raise PermissionDenied(
            "ds01-reaper is for admins only",
            hint="the lab runs it as a system service; see check-limits for your own limits",
        )
    try:
        interval_s = units.parse_seconds(interval) if interval else ctx.config.policies.check_interval_m * 60
    except ValueError as exc:
        raise UsageError(f"--interval: {exc}") from None
    if interval_s <= 0:
        raise UsageError("--interval must be more than 0 seconds")
    clock: SystemClock | ManualClock = SystemClock()
    if now:
        when = parse_iso(now)
        if when is None:
            raise UsageError(f"--now: {now!r} is not an ISO-8601 time", hint="e.g. 2026-11-23T14:05:00Z")
        clock = ManualClock(when)
    options = ReaperOptions(dry_run=dry_run)
    if once:
        _show(ctx, locked_pass(ctx, clock, options), single=True)
        return
    _stop_on_sigterm(clock)
    if not json_out:
        ctx.out.info(f"ds01-reaper: a pass every {interval_s:g} s{' (dry run)' if dry_run else ''}")
    run_loop(ctx, clock, interval_s, options, lambda result: _emit(ctx, result))


def _stop_on_sigterm(clock: Clock) -> None:
    """systemd stops the service with SIGTERM: finish the pass under way, then leave."""
    import signal

    signal.signal(signal.SIGTERM, lambda *_: clock.wake())


def _emit(ctx: Context, result: PassReport | Ds01Error) -> None:
    from ds01.errors import Ds01Error

    if isinstance(result, Ds01Error):
        if ctx.out.json_mode:
            _json_line(ctx, {"error": {"code": result.code, "message": str(result)}})
        ctx.out.stderr.write(f"error: {result}\n")
        ctx.out.stderr.flush()
        return
    _show(ctx, result, single=False)


def _json_line(ctx: Context, payload: object) -> None:
    ctx.out.stdout.write(json.dumps(payload, default=str, separators=(",", ":")) + "\n")
    ctx.out.stdout.flush()


def _show(ctx: Context, report: PassReport, *, single: bool) -> None:
    if ctx.out.json_mode:
        if single:
            ctx.out.json(report.as_dict())
        else:  # the loop: one JSON document per line, per pass
            _json_line(ctx, report.as_dict())
        return
    entries = report.entries if single else report.actions
    if single:
        rows = [
            (
                e.seen.summary.name,
                e.seen.owner.name,
                e.seen.status,
                e.decision.action,
                _outcome(e) + e.decision.reason,
            )
            for e in entries
        ]
        ctx.out.table(("container", "user", "status", "action", "reason"), rows, empty="no ds01 containers")
    else:
        stamp = report.at.strftime("%Y-%m-%d %H:%M:%S")
        for e in entries:
            ctx.out.say(
                f"{stamp} {e.decision.action} {e.seen.summary.name} ({e.seen.owner.name}): "
                f"{_outcome(e)}{e.decision.reason}"
            )
    if report.gpu_notice:
        ctx.out.warn(report.gpu_notice)
    if single:
        done = "would act" if report.dry_run else "acted"
        ctx.out.info(
            f"{report.as_dict()['checked']} containers checked, {done} on {len(report.actions)} "
            f"in {report.elapsed_s:.2f} s" + (" (dry run: nothing changed)" if report.dry_run else "")
        )


def _outcome(entry: Entry) -> str:
    return f"[failed: {entry.error}] " if entry.error else ""
