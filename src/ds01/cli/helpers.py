"""Helper commands: check-limits and doctor."""

from __future__ import annotations

from typing import Annotated

import typer

from ds01.cli.common import JsonOpt, UserOpt, handle_errors


@handle_errors
def check_limits(user: UserOpt = None, json_out: JsonOpt = False) -> None:
    """Show your resource limits, where each comes from, and what you use now.

    Examples:
      check-limits
      check-limits --json | jq .usage
      check-limits --user alice        (admins)
    """
    from ds01.atomic.limits_report import limits_report
    from ds01.cli.render import render_limits
    from ds01.context import Context

    ctx = Context.load(json_mode=json_out)
    report = limits_report(ctx, ctx.target_user(user))
    if json_out:
        ctx.out.json(report)
    else:
        render_limits(ctx.out, report)


@handle_errors
def doctor(
    json_out: JsonOpt = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings too.")] = False,
) -> None:
    """Check this host: config, Docker engine, NVIDIA driver, state dirs and shared-host hazards.

    Each check says ok, warning or failure, and how to fix it. Exit 1 when any check fails.
    """
    from ds01.atomic.doctor import run_checks
    from ds01.cli.render import render_checks
    from ds01.identity import acting_user
    from ds01.output import Output

    out = Output(json_mode=json_out)
    checks = run_checks(acting_user())
    if json_out:
        out.json({"checks": [c.as_dict() for c in checks]})
    else:
        render_checks(out, checks)
    worst = {c.status for c in checks}
    if "failure" in worst or (strict and "warning" in worst):
        raise typer.Exit(1)
