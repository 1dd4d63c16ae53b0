"""`ds01 queue`: the requests waiting for a GPU (`container-deploy --wait`); `ds01 queue cancel ID`.

Also the live line a waiting deploy shows (`WaitLine`): position, how many wait, what holds the capacity and
when it is expected to free, rewritten in place on a terminal and printed when it changes otherwise.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ds01.cli.common import Ds01Typer, JsonOpt, connect, handle_errors

app: typer.Typer = Ds01Typer(
    name="queue",
    help="Requests waiting for a GPU (container-deploy --wait), and cancelling yours.",
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _holders(holders: list[dict[str, Any]]) -> str:
    parts = []
    for h in holders:
        when = h.get("frees_at")
        ends = f" until {when[11:16]} UTC" if when else ""
        parts.append(f"{h['user']}/{h['container'].split('._.')[0]} ({','.join(h['slots'])}{ends})")
    return "; ".join(parts)


def describe(status: dict[str, Any]) -> str:
    line = f"waiting for a GPU: position {status['position']} of {status['waiting']} (request {status['id']})"
    held = _holders(status.get("holders") or [])
    return f"{line}; held by {held}" if held else line


class WaitLine:
    """Renders `{"queue": status}` events: one line, updated in place on a terminal."""

    def __init__(self, quiet: bool = False) -> None:
        self.tty = sys.stderr.isatty()
        self.quiet = quiet
        self.shown = False

    def __call__(self, event: dict[str, Any]) -> None:
        status = event.get("queue")
        if not isinstance(status, dict) or self.quiet:
            return
        text = describe(status)
        if self.tty:
            width = 200
            try:
                import shutil

                width = shutil.get_terminal_size().columns - 1
            except OSError:
                pass
            sys.stderr.write("\r\x1b[2K" + text[:width])
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown and self.tty:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
            self.shown = False


@app.callback()
@handle_errors
def queue(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List the requests waiting for a GPU: yours in full, everyone else's as counts (admins: all)."""
    if ctx.invoked_subcommand is not None:
        return
    from ds01.cli.cluster import show_jobs, slurm_jobs
    from ds01.client import path_of

    client = connect(json_out)
    jobs = slurm_jobs(client)
    if jobs is not None:  # cluster mode: the queue is Slurm's
        if json_out:
            client.out.json({"slurm_jobs": jobs})
        else:
            show_jobs(client, jobs)
        return
    doc = client.call("GET", path_of("queue"))
    if json_out:
        client.out.json(doc)
        return
    out = client.out
    if not doc["waiting"]:
        out.say("Nobody is waiting for a GPU.")
        return
    out.say(f"{doc['waiting']} request(s) waiting for a GPU")
    rows = [
        (r["id"], str(r["position"]), r["user"], r["name"], r["shape"], f"{r['waited_s']:.0f}s",
         "detached" if r["detach"] else "attached")
        for r in doc["requests"]
    ]  # fmt: skip
    if rows:
        out.table(("id", "pos", "user", "name", "shape", "waited", "client"), rows)
    for o in doc["others"]:
        out.say(f"  others: {o['count']} x {o['shape']}")


@app.command("cancel")
@handle_errors
def cancel(
    id_: Annotated[str, typer.Argument(metavar="ID", help="The request id (ds01 queue lists yours).")],
    json_out: JsonOpt = False,
) -> None:
    """Take a waiting request out of the queue."""
    from ds01.client import path_of

    client = connect(json_out)
    result = client.call("DELETE", path_of("queue", id_))
    if json_out:
        client.out.json(result)
        return
    client.out.success(f"cancelled {result['name']} (request {result['cancelled']})")
