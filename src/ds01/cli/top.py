"""`ds01 top`: a live view of the GPU slots, users against their quotas, and containers with their idle and
runtime countdowns (a client of ds01d). Admins see everyone; a user sees the slots and their own."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ds01.cli.common import JsonOpt, connect, handle_errors

if TYPE_CHECKING:
    from rich.console import Group


def _left(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds <= 0:
        return "due"
    h, m = divmod(int(seconds) // 60, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def frame(doc: dict[str, Any]) -> Group:
    """One screen of `ds01 top` from a `GET /v1/top` answer."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    t = doc["totals"]
    head = Text(
        f"ds01 top  {doc['at'].replace('T', ' ').removesuffix('Z')} UTC  ({doc['backend']})  "
        f"GPU-eq {t['allocated_gpueq']:g}/{t['gpueq']:g} allocated, {t['free_gpueq']:g} free",
        style="bold",
    )
    slots = Table(title="slots", title_justify="left", header_style="bold", box=None, pad_edge=False)
    for col in ("slot", "kind", "gpueq", "util", "memory", "holder", "container", "status"):
        slots.add_column(col)
    for s in doc["slots"]:
        h = s.get("holder") or {}
        row = (s["id"], s.get("profile") or s["kind"], f"{s['gpueq']:g}", _pct(s.get("utilization")))
        slots.add_row(
            *row, f"{s.get('memory_mib', 0)} MiB", h.get("user", "free"), h.get("container", ""),
            h.get("status", ""),
        )  # fmt: skip
    users = Table(title="users", title_justify="left", header_style="bold", box=None, pad_edge=False)
    for col in ("user", "group", "GPU-eq", "quota", "containers"):
        users.add_column(col)
    conts = Table(title="containers", title_justify="left", header_style="bold", box=None, pad_edge=False)
    for col in ("user", "container", "status", "GPUs", "idle stop in", "runtime left"):
        conts.add_column(col)
    for u in doc["users"]:
        quota = "unlimited" if u["quota"] is None else f"{u['quota']:g}"
        users.add_row(u["user"], u["group"], f"{u['gpueq']:g}", quota, str(len(u["containers"])))
        for c in u["containers"]:
            conts.add_row(
                u["user"], c["name"], c["status"], ",".join(c["gpus"]) or "-", _left(c["idle_left_s"]),
                _left(c["runtime_left_s"]),
            )  # fmt: skip
    return Group(head, Text(""), slots, Text(""), users, Text(""), conts)


@handle_errors
def top(
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit (for scripts).")] = False,
    interval: Annotated[
        float, typer.Option("--interval", "-i", min=1.0, max=3600.0, help="Seconds between refreshes.")
    ] = 3.0,
    json_out: JsonOpt = False,
) -> None:
    """Watch the GPU slots, users against quotas, and idle and runtime countdowns (Ctrl-C leaves).

    Examples:
      ds01 top
      ds01 top --once
      ds01 top --once --json | jq '.users[].containers'
    """
    from ds01.client import path_of

    client = connect(json_out)
    if json_out or once:
        doc = client.call("GET", path_of("top"))
        if json_out:
            client.out.json(doc)
        else:
            client.out.console.print(frame(doc))
        return
    from rich.live import Live

    with Live(frame(client.call("GET", path_of("top"))), console=client.out.console, screen=True) as live:
        while True:
            time.sleep(interval)
            live.update(frame(connect(json_out).call("GET", path_of("top"))))
