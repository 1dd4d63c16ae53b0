"""The `gpu` group: `gpu VERB` and `ds01 gpu VERB`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ds01.cli.common import JsonOpt, handle_errors, new_app

if TYPE_CHECKING:
    from ds01.output import Output

app = new_app("gpu", "GPUs and MIG slices: who holds what.")

FreeOpt = Annotated[bool, typer.Option("--free", help="Show only free slots (and ones ready to reclaim).")]


@app.command("status")
@handle_errors
def status(json_out: JsonOpt = False, free: FreeOpt = False) -> None:
    """Show every GPU slot (whole GPU or MIG slice) with its holder, or free.

    A stopped container keeps its slot for its owner's GPU hold, then the slot is reclaimable.

    Examples:
      gpu-status
      gpu-status --free
      gpu-status --json | jq '.slots[] | select(.holder == null) | .id'
    """
    from ds01.cli.common import connect
    from ds01.client import path_of

    client = connect(json_out)
    report = client.call("GET", path_of("gpus"), {"free": free})
    if json_out:
        client.out.json(report)
        return
    _render(client.out, report, free)


def _render(out: Output, report: dict[str, Any], free: bool) -> None:
    if report["notice"]:
        out.warn(report["notice"])
    rows = [_row(s) for s in report["slots"]]
    driver = f", driver {report['driver_version']}" if report["backend"] == "nvml" else ""
    out.table(
        ("slot", "kind", "profile", "gpueq", "holder", "status", "since", "util", "procs"),
        rows,
        title=f"GPU slots ({report['backend']} backend{driver})",
        empty="no free GPU slot" if free else "no GPU slots on this host",
    )
    for gpu in report["unusable_gpus"]:
        out.warn(f"GPU {gpu['index']} ({gpu['name']}): {gpu['reason']}; it gives out nothing")
    t = report["totals"]
    out.say(f"allocated {t['allocated_gpueq']:.3g} of {t['gpueq']:.3g} gpueq, {t['free_gpueq']:.3g} free")


def _row(slot: dict[str, Any]) -> tuple[Any, ...]:
    holder = slot["holder"]
    util = slot["utilization"]
    who = status = since = None
    if holder:
        who = f"{holder['user']}/{holder['container']}"
        status = holder["status"] + (" (reclaimable)" if holder["reclaimable"] else "")
        since = holder["since"].replace("T", " ").removesuffix("Z")
    return (
        slot["id"],
        slot["kind"],
        slot["profile"] or "full",
        f"{slot['gpueq']:.3g}",
        who or "free",
        status,
        since,
        "n/a" if util is None else f"{util:g}%",
        slot["processes"],
    )
