"""`ds01 usage`: GPU-hours, container-hours and CPU-hours by user, group and project (a client of ds01d)."""

from __future__ import annotations

import csv
import sys
from typing import Annotated

import typer

from ds01.cli.common import JsonOpt, UserOpt, connect, handle_errors

COLUMNS = ("user", "group", "project", "gpu_hours", "container_hours", "cpu_hours")


@handle_errors
def usage(
    user: UserOpt = None,
    since: Annotated[
        str | None, typer.Option("--since", help="From this date or UTC time (ISO-8601).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Until this date or UTC time (default: now).")
    ] = None,
    month: Annotated[str | None, typer.Option("--month", help="One calendar month, e.g. 2026-11.")] = None,
    now: Annotated[
        str | None, typer.Option("--now", hidden=True, help="Count open intervals to here.")
    ] = None,
    csv_out: Annotated[
        bool, typer.Option("--csv", help="Print CSV rows (user, group, project, ...).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Show GPU-hours (gpueq x hours), container-hours and CPU-hours for a period (default: this month).

    You see your own; admins see everyone's, or one user's with --user.

    Examples:
      ds01 usage
      ds01 usage --month 2026-11 --csv > november.csv
      ds01 usage --since 2026-11-01 --until 2026-11-15 --json
    """
    from ds01.client import path_of

    client = connect(json_out)
    body = {"user": user, "since": since, "until": until, "month": month, "now": now}
    report = client.call("GET", path_of("usage"), body)
    if json_out:
        client.out.json(report)
        return
    if csv_out:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in report["rows"]:
            writer.writerow([row[c] for c in COLUMNS])
        return
    client.out.say(f"usage from {report['since']} to {report['until']} ({report['scope']})")
    client.out.table(
        ("user", "group", "project", "GPU-h", "container-h", "CPU-h"),
        [
            (
                r["user"],
                r["group"],
                r["project"],
                f"{r['gpu_hours']:.2f}",
                f"{r['container_hours']:.2f}",
                f"{r['cpu_hours']:.2f}",
            )
            for r in report["rows"]
        ],
        empty="no usage in this period",
    )
    if len(report["users"]) > 1:
        client.out.table(
            ("user", "GPU-h", "container-h", "CPU-h"),
            [(u["user"], f"{u['gpu_hours']:.2f}", f"{u['container_hours']:.2f}", f"{u['cpu_hours']:.2f}")
             for u in report["users"]],
        )  # fmt: skip
    t = report["total"]
    total = f"{t['gpu_hours']:.2f} GPU-h, {t['container_hours']:.2f} container-h, {t['cpu_hours']:.2f} CPU-h"
    client.out.say(f"total: {total}")
