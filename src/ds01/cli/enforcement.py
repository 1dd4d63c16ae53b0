"""More time than the limits give: `container-extend` (within your weekly budget) and `ds01 admin exempt`."""

from __future__ import annotations

from typing import Annotated

import typer

from ds01.cli.common import JsonOpt, UserOpt, connect, handle_errors, new_app

admin_app = new_app("admin", "Admin grants: exemptions from the runtime and idle stops.")

ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the event log).", show_default=False)]


@handle_errors
def extend(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The container (project) name.", show_default=False)
    ],
    hours: Annotated[
        float, typer.Option("--hours", help="Hours to add to its max_runtime_h.", show_default=False)
    ],
    reason: ReasonOpt,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Give a running container more time than max_runtime_h, from your weekly budget.

    Each group has extension_budget_h hours per rolling 7 days (check-limits shows what is used).

    Examples:
      container-extend thesis --hours 24 --reason "3-day training run, checkpoints hourly"
    """
    from ds01.client import path_of

    client = connect(json_out)
    body = {"hours": hours, "reason": reason, "user": user}
    result = client.call("POST", path_of("containers", name, "extend"), body)
    if json_out:
        client.out.json(result)
        return
    limit = result.get("max_runtime_h")
    client.out.success(
        f"{name}: +{result['hours']:g} h"
        + (f", max_runtime_h is now {limit:g} h from its first start" if limit is not None else "")
    )
    budget = result.get("budget_h")
    if budget is not None:
        client.out.info(f"used {result['used_h']:g} of your {budget:g} h this week")


@admin_app.command("exempt")
@handle_errors
def exempt(
    user: Annotated[str, typer.Argument(metavar="USER", help="The user to exempt.", show_default=False)],
    until: Annotated[
        str | None,
        typer.Option("--until", help="Last day (2026-12-24) or a time (ISO-8601).", show_default=False),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (shown to the user).")] = None,
    end: Annotated[bool, typer.Option("--end", help="End the user's exemption now.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Exempt a user from the runtime and idle stops until a date (admins); it ends by itself then.

    Examples:
      ds01 admin exempt alice --until 2026-12-24 --reason "thesis deadline"
      ds01 admin exempt alice --end
    """
    from ds01.client import path_of
    from ds01.errors import UsageError

    client = connect(json_out)
    if end:
        result = client.call("DELETE", path_of("exemptions", user))
    else:
        if not until or not reason:
            raise UsageError(
                "--until and --reason are both needed", hint='e.g. --until 2026-12-24 --reason "deadline"'
            )
        result = client.call("POST", path_of("exemptions"), {"user": user, "until": until, "reason": reason})
    if json_out:
        client.out.json(result)
    elif end:
        client.out.success(f"{user}: exemption ended" if result["ended"] else f"{user} had no exemption")
    else:
        client.out.success(f"{result['user']} is exempt from runtime and idle stops until {result['until']}")


@admin_app.command("exemptions")
@handle_errors
def exemptions(user: UserOpt = None, json_out: JsonOpt = False) -> None:
    """List the exemptions in force (yours; admins: everyone's)."""
    from ds01.client import path_of

    client = connect(json_out)
    rows = client.call("GET", path_of("exemptions"), {"user": user})
    if json_out:
        client.out.json(rows)
        return
    client.out.table(
        ("user", "until", "reason", "by"), [(r["user"], r["until"], r["reason"], r["by"]) for r in rows]
    )
