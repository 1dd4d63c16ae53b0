"""Helper commands: check-limits, doctor and events (clients of ds01d)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ds01.cli.common import JsonOpt, UserOpt, connect, handle_errors
from ds01.errors import Ds01Error, ExitCode

if TYPE_CHECKING:
    from ds01.output import Output


@handle_errors
def check_limits(user: UserOpt = None, json_out: JsonOpt = False) -> None:
    """Show your resource limits, where each comes from, and what you use now.

    Examples:
      check-limits
      check-limits --json | jq .usage
      check-limits --user alice        (admins)
    """
    from ds01.cli.render import render_limits
    from ds01.client import path_of

    client = connect(json_out)
    report = client.call("GET", path_of("limits"), {"user": user})
    if json_out:
        client.out.json(report)
    else:
        render_limits(client.out, report)


def _daemon_check(client: Any) -> tuple[dict[str, str], dict[str, Any] | None]:
    """ds01d as the client sees it: reachable, same version, root, socket mode 0666."""
    from ds01 import __version__
    from ds01.client import path_of

    try:
        info = client.call("GET", path_of("version"))
    except Ds01Error as err:
        return {"name": "ds01d", "status": "failure", "detail": err.message, "fix": err.hint or ""}, None
    problems, fixes = [], []
    if info.get("version") != __version__:
        problems.append(f"ds01d is version {info.get('version')}, this command {__version__}")
        fixes.append("restart ds01d after an upgrade (systemctl restart ds01d)")
    if info.get("euid") != 0:
        problems.append(f"ds01d runs as uid {info.get('euid')}, not root")
        fixes.append("run it as the ds01d.service unit")
    if info.get("socket_mode") != "0666":
        problems.append(f"its socket {info.get('socket')} is mode {info.get('socket_mode')}, not 0666")
        fixes.append("restart ds01d (it sets the mode itself)")
    detail = f"ds01d {info.get('version')} (pid {info.get('pid')}) on {info.get('socket')}"
    if problems:
        return {"name": "ds01d", "status": "warning", "detail": f"{detail}: {'; '.join(problems)}",
                "fix": "; ".join(fixes)}, info  # fmt: skip
    return {"name": "ds01d", "status": "ok", "detail": f"{detail}, root, socket 0666", "fix": ""}, info


def _render_checks(out: Output, checks: list[dict[str, str]]) -> None:
    marks = {
        "ok": "[green]ok[/green]",
        "warning": "[yellow]warning[/yellow]",
        "failure": "[red]failure[/red]",
    }
    out.table(
        ("check", "status", "detail", "how to fix"),
        [(c["name"], marks.get(c["status"], c["status"]), c["detail"], c["fix"]) for c in checks],
    )


@handle_errors
def doctor(
    json_out: JsonOpt = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings too.")] = False,
) -> None:
    """Check this host: ds01d, config, Docker engine, NVIDIA driver, state dirs and shared-host hazards.

    Each check says ok, warning or failure, and how to fix it. Exit 1 when any check fails, 6 when ds01d
    cannot be reached.

    Examples:
      ds01 doctor
      ds01 doctor --json | jq '.checks[] | select(.status != "ok")'
    """
    from ds01.client import path_of

    client = connect(json_out)
    first, info = _daemon_check(client)
    checks = [first]
    if info is not None:
        checks += client.call("GET", path_of("doctor"))["checks"]
    if json_out:
        client.out.json({"checks": checks, "ds01d": info})
    else:
        _render_checks(client.out, checks)
    if info is None:
        raise typer.Exit(int(ExitCode.ENGINE))
    worst = {c["status"] for c in checks}
    if "failure" in worst or (strict and "warning" in worst):
        raise typer.Exit(1)


@handle_errors
def events(
    user: UserOpt = None,
    type_: Annotated[str | None, typer.Option("--type", help="Only this event type (e.g. release).")] = None,
    container: Annotated[str | None, typer.Option("--container", help="Only this container.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only from this UTC time (ISO-8601).")] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only before this UTC time (ISO-8601).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many (the latest).")] = 100,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events as they happen (Ctrl-C stops).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Show your events (create, start, stop, remove, release, idle warnings, ...), oldest first.

    Admins see everyone's, or one user's with --user.

    Examples:
      ds01 events
      ds01 events --type idle_warning --since 2026-11-23T00:00:00Z
      ds01 events --container my-thesis --json
      ds01 events --follow --json        (one JSON line per event, as they happen)
    """
    from ds01.client import path_of

    client = connect(json_out)
    body = {
        "user": user,
        "type": type_,
        "container": container,
        "since": since,
        "until": until,
        "limit": limit,
    }
    found = client.call("GET", path_of("events"), body)
    if follow:
        _follow(client, body, found, json_out)
        return
    if json_out:
        client.out.json(found)
        return
    _print_events(client.out, found)


def _follow(client: Any, body: dict[str, Any], found: list[dict[str, Any]], json_out: bool) -> None:
    """Print what there is, then ask ds01d every 2 s for what came since the last one seen."""
    import json
    import sys
    import time

    from ds01.client import path_of

    seen: set[str] = set()
    while True:
        fresh = [e for e in found if json.dumps(e, sort_keys=True) not in seen]
        for e in fresh:
            if json_out:
                sys.stdout.write(json.dumps(e, separators=(",", ":")) + "\n")
            else:
                _print_events(client.out, [e], header=False)
        sys.stdout.flush()
        if found:
            last = str(found[-1].get("timestamp", ""))
            seen = {json.dumps(e, sort_keys=True) for e in found if str(e.get("timestamp", "")) == last}
            body = {**body, "since": last, "limit": 10000}
        time.sleep(2)
        found = client.call("GET", path_of("events"), body)


def _print_events(out: Output, found: list[dict[str, Any]], *, header: bool = True) -> None:
    rows = [
        (
            str(e.get("timestamp", "")).replace("T", " ").removesuffix("Z"),
            e.get("event_type"),
            e.get("user"),
            str(e.get("container") or "").split("._.")[0] or None,
            _details(e.get("details")),
        )
        for e in found
    ]
    out.table(("time", "event", "user", "container", "details"), rows, empty="no events", header=header)


def _details(details: Any) -> str:
    if not isinstance(details, dict):
        return ""
    return ", ".join(f"{k}={v}" for k, v in details.items() if k not in ("values", "delivered"))[:120]
