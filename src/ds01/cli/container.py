"""The `container` group: `container VERB` and `ds01 container VERB` (and `container-VERB` scripts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ds01.cli.common import JsonOpt, UserOpt, connect, handle_errors, new_app, stdin_is_tty
from ds01.client import path_of

if TYPE_CHECKING:
    from ds01.client import Client

app = new_app("container", "Create, run and retire your containers (your workspace always stays).")

NameArg = Annotated[
    str | None, typer.Argument(metavar="NAME", help="The container (project) name.", show_default=False)
]
STOPPED = frozenset({"created", "exited", "dead"})
UP = frozenset({"running", "restarting"})


def _pick(
    client: Client, name: str | None, command: str, user: str | None, states: frozenset[str] | None = None
) -> str:
    from ds01.cli.select import container_name

    return _checked(container_name(client, name, command=command, user=user, states=states))


def _checked(name: str) -> str:
    """NAME, `name._.uid` or a container id, checked here so a bad one is exit 2 before any request."""
    import re

    from ds01 import naming

    cleaned = name.strip().lower()
    if re.fullmatch(r"[0-9a-f]{12,64}", cleaned):
        return cleaned
    naming.normalise_name(naming.split_container_name(cleaned)[0])
    return cleaned


def _hold_text(entry: dict[str, Any], hold_h: float | None) -> str:
    from ds01 import units

    slots = ", ".join(g["slot"] for g in entry["gpus"])
    if hold_h is None:
        return f"GPU {slots} stays held until you remove the container (container-remove {entry['name']})"
    return (
        f"GPU {slots} stays held for {units.format_hours(hold_h)} after stop; "
        f"container-remove {entry['name']} frees it now"
    )


# -- create -----------------------------------------------------------------------------------------
@app.command("create")
@handle_errors
def create(
    name: NameArg = None,
    image: Annotated[
        str | None, typer.Option("--image", help="Image to use (default: ds01-UID/NAME:latest).")
    ] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="GPU slots (full GPUs or MIG slices).")] = None,
    mig_profile: Annotated[
        str | None, typer.Option("--mig-profile", help="A MIG profile, e.g. 1g.10gb.")
    ] = None,
    cpu_only: Annotated[
        bool, typer.Option("--cpu-only", help="No GPU (the default without --gpus).")
    ] = False,
    workspace: Annotated[
        str | None,
        typer.Option(
            "--workspace",
            help="Your project folder to mount at /workspace (a name, or a folder in your workspace root).",
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data", help="A folder (under a data root or your workspaces) to mount read-only at /data."
        ),
    ] = None,
    command: Annotated[
        str | None, typer.Option("--command", help="Run this instead of staying idle.")
    ] = None,
    image_cmd: Annotated[bool, typer.Option("--image-cmd", help="Run the image's own CMD instead.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the docker create command; change nothing.")
    ] = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a container for project NAME (created, not started); your workspace is mounted at /workspace.

    It runs as you, with your limits (see check-limits). Without --gpus it gets no GPU.

    Examples:
      container-create thesis
      container-create thesis --gpus 1
      container-create thesis --mig-profile 1g.10gb --data /srv/datasets/imagenet
      container-create scratch --image ds01-1001/thesis:latest --dry-run
    """
    import shlex

    from ds01 import naming
    from ds01.cli.select import new_name
    from ds01.errors import UsageError

    client = connect(json_out)
    if command is not None and image_cmd:
        raise UsageError("--command and --image-cmd exclude each other", hint="pick one")
    if cpu_only and (gpus or mig_profile):
        raise UsageError("--cpu-only cannot be combined with --gpus or --mig-profile", hint="pick one")
    if mig_profile is not None and not mig_profile.strip():
        raise UsageError("--mig-profile: empty profile", hint="name one, e.g. --mig-profile 1g.10gb")
    if image is not None and not image.strip():
        raise UsageError("--image: empty image reference", hint="name one, or leave out --image")
    try:
        cmd = shlex.split(command) if command else None
    except ValueError as exc:
        raise UsageError(
            f"--command: {exc}", hint="check the quotes, e.g. --command 'python train.py'"
        ) from None
    body = {
        "name": naming.normalise_name(new_name(client, name, command="container-create")),
        "image": image,
        "gpus": gpus,
        "mig_profile": mig_profile,
        "cpu_only": cpu_only,
        "workspace": _host_path(workspace),
        "data": _host_path(data, always=True),
        "command": cmd,
        "image_cmd": image_cmd,
        "dry_run": dry_run,
        "user": user,
    }
    result = client.call("POST", path_of("containers"), body)
    if dry_run:
        if json_out:
            client.out.json(result)
        else:
            client.out.stdout.write(shlex.join(result["command"]) + "\n")
        return
    if json_out:
        client.out.json(result)
        return
    entry = result
    gpu = ", ".join(f"{g['slot']} ({g['profile'] or 'full GPU'})" for g in entry["gpus"]) or "none (CPU only)"
    client.out.success(f"created [bold]{entry['name']}[/bold] ({entry['container']}) from {entry['image']}")
    client.out.say(f"  GPU: {gpu}\n  workspace: {entry['workspace']} -> /workspace")
    client.out.hint(
        f"next: container-start {entry['name']}, then container-attach {entry['name']} "
        f"(or container-run {entry['name']} to do both)"
    )


def _host_path(raw: str | None, *, always: bool = False) -> str | None:
    """A path as this user sees it (their links such as ~/workspace resolved with their own rights); ds01d
    judges the result again without following any link. A bare workspace name (a project) is passed as it
    is."""
    import os

    from ds01.errors import PermissionDenied, UsageError

    if raw is not None and not raw.strip():
        flag = "--data" if always else "--workspace"
        raise UsageError(f"{flag}: empty path", hint=f"name a folder, or leave out {flag}")
    if raw is None or (not always and "/" not in raw and not raw.startswith("~")):
        return raw
    try:
        return os.path.realpath(os.path.expanduser(raw))
    except OSError as exc:  # a link this user may not read (e.g. /proc/1/root)
        raise PermissionDenied(
            f"you may not use {raw!r}: {exc.strerror}", hint="use a folder of your own workspaces"
        ) from None


# -- start / stop / remove --------------------------------------------------------------------------
@app.command("start")
@handle_errors
def start(name: NameArg = None, user: UserOpt = None, json_out: JsonOpt = False) -> None:
    """Start a stopped (or unpause a paused) container.

    Refuses when a GPU the container holds is no longer on this host (e.g. after a MIG re-layout).

    Examples:
      container-start thesis
      container-start            (pick from a list)
    """
    client = connect(json_out)
    target = _pick(client, name, "container-start", user, STOPPED | {"paused"})
    result = client.call("POST", path_of("containers", target, "start"), {"user": user})
    entry = result["entry"]
    if json_out:
        client.out.json(entry)
        return
    client.out.success(f"{entry['name']}: {result['action']}")
    client.out.hint(
        f"next: container-attach {entry['name']} for a shell, container-stop {entry['name']} when done"
    )


@app.command("stop")
@handle_errors
def stop(
    name: NameArg = None,
    timeout: Annotated[
        int, typer.Option("--timeout", "-t", help="Seconds to wait before killing.", min=0)
    ] = 10,
    force: Annotated[bool, typer.Option("--force", "-f", help="Kill at once (no clean shutdown).")] = False,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Stop all your running containers.")] = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Stop a running container; its GPU stays held for a while so you can start it again.

    Examples:
      container-stop thesis
      container-stop thesis --timeout 60      (give training time to checkpoint)
      container-stop --all
    """
    client = connect(json_out)
    if all_:
        if name:
            from ds01.errors import UsageError

            raise UsageError("pass NAME or --all, not both")
        entries = client.call("GET", path_of("containers"), {"user": user})
        targets = [e["container"] for e in entries if e["status"] in UP | {"paused"}]
    else:
        targets = [_pick(client, name, "container-stop", user, UP | {"paused"})]
    body = {"user": user, "timeout": timeout, "force": force}
    results = [client.call("POST", path_of("containers", t, "stop"), body) for t in targets]
    if json_out:
        client.out.json([r["entry"] for r in results])
        return
    if not results:
        client.out.info("no running containers")
    for r in results:
        entry = r["entry"]
        client.out.success(f"{entry['name']}: {'stopped' if r['stopped'] else 'was not running'}")
        if entry["gpus"]:
            client.out.say(f"  {_hold_text(entry, r['hold_h'])}")
    for r in results[:1]:
        n = r["entry"]["name"]
        client.out.hint(f"next: container-start {n} to resume, container-remove {n} to free it")


@app.command("remove")
@handle_errors
def remove(
    name: NameArg = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Remove even if running.")] = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove a container and free its GPU. The workspace stays, always.

    Examples:
      container-remove thesis
      container-remove thesis --force      (a running one)
    """
    client = connect(json_out)
    target = _pick(client, name, "container-remove", user)
    result = client.call("DELETE", path_of("containers", target), {"user": user, "force": force})
    if json_out:
        client.out.json(result)
        return
    freed = f"; GPU {', '.join(result['freed_gpus'])} is free" if result["freed_gpus"] else ""
    client.out.success(f"removed {result['name']}{freed}")
    client.out.hint(f"your workspace stays: {result['workspace']}")


# -- list / stats -----------------------------------------------------------------------------------
@app.command("list")
@handle_errors
def list_containers(
    all_users: Annotated[bool, typer.Option("--all-users", help="Everyone's containers (admins).")] = False,
    status: Annotated[
        str | None, typer.Option("--status", help="Only this status: running, exited, ...")
    ] = None,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List your containers: status, image, GPU slots, workspace.

    Examples:
      container-list
      container-list --status running
      container-list --json | jq -r '.[].name'
      container-list --all-users            (admins)
    """
    client = connect(json_out)
    if status is not None and not status.strip():
        from ds01.errors import UsageError

        raise UsageError("--status: empty status", hint="name one, e.g. --status running")
    query = {"all_users": all_users, "status": status, "user": user}
    entries = client.call("GET", path_of("containers"), query)
    if json_out:
        client.out.json(entries)
        return
    rows = []
    for e in entries:
        gpus = ", ".join(f"{g['slot']}" + (f" ({g['profile']})" if g["profile"] else "") for g in e["gpus"])
        row = [e["name"], e["status"], e["image"], gpus or "-", e["created_at"], e["workspace"]]
        if any("slurm" in x for x in entries):  # cluster mode: the Slurm job (state, reason, node)
            job = e.get("slurm") or {}
            reason = "" if job.get("reason") in (None, "", "None") else f" ({job['reason']})"
            where = f" on {job['node']}" if job.get("node") else ""
            row.append(f"{job['job_id']} {job['state'].lower()}{reason}{where}" if job else "-")
        rows.append([e["user"], *row] if all_users else row)
    columns = ["name", "status", "image", "GPU", "created", "workspace"]
    if any("slurm" in x for x in entries):
        columns.append("Slurm job")
    client.out.table(
        ["user", *columns] if all_users else columns,
        rows,
        empty="no containers; create one with container-create NAME",
    )


@app.command("stats")
@handle_errors
def stats(
    name: NameArg = None,
    all_users: Annotated[bool, typer.Option("--all-users", help="Everyone's containers (admins).")] = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """CPU, memory and GPU use of your containers (all sampled at once; takes about a second).

    Examples:
      container-stats
      container-stats thesis --json
    """
    from ds01 import units

    client = connect(json_out)
    query = {"name": _checked(name) if name else None, "all_users": all_users, "user": user}
    rows = client.call("GET", path_of("stats"), query)
    if json_out:
        client.out.json(rows)
        return

    def mem(r: dict[str, Any]) -> str:
        if r["memory_used"] is None:
            return "-"
        return f"{units.format_size(r['memory_used'])} / {units.format_size(r['memory_limit'])}"

    def gpu(r: dict[str, Any]) -> str:
        return (
            ", ".join(
                f"{g['slot']}" + (f" {g['utilization']:g}%" if g["utilization"] is not None else "")
                for g in r["gpus"]
            )
            or "-"
        )

    table = [
        [
            r["name"],
            r["status"],
            "-" if r["cpu_percent"] is None else f"{r['cpu_percent']:.1f}%",
            mem(r),
            "-" if r["pids"] is None else r["pids"],
            gpu(r),
        ]
        for r in rows
    ]
    client.out.table(
        ["name", "status", "CPU", "memory used / limit", "pids", "GPU (util)"], table, empty="no containers"
    )


# -- attach / run -----------------------------------------------------------------------------------
@app.command("attach")
@handle_errors
def attach(name: NameArg = None, user: UserOpt = None) -> None:
    """Open a shell (bash if the image has it, else sh) in a running container, as you, in /workspace.

    Ctrl-D or `exit` leaves the shell; the container keeps running. The shell's exit code is passed through.

    Examples:
      container-attach thesis
    """
    from ds01.terminal import open_session

    client = connect()
    from ds01.cli.select import container_name

    if name:  # cluster mode: a container on another node is reached through its Slurm job
        from ds01.cli.cluster import on_its_node
        from ds01.terminal import stdio_is_terminal

        there = on_its_node(client, name, "container-attach", user=user, pty=stdio_is_terminal())
        if there is not None:
            raise typer.Exit(there)
    name = container_name(client, name, command="container-attach", user=user, states=UP)
    code = open_session(client, name, None, user=user, start=False)
    raise typer.Exit(code)


@app.command("run")
@handle_errors
def run(
    name: NameArg = None,
    command: Annotated[
        list[str] | None, typer.Argument(metavar="[-- CMD...]", help="A command to run.", show_default=False)
    ] = None,
    user: UserOpt = None,
    rm: Annotated[
        bool, typer.Option("--rm", help="Run CMD once in a fresh container from the project's image.")
    ] = False,
    gpus: Annotated[int | None, typer.Option("--gpus", help="With --rm: GPUs (default: none).")] = None,
) -> None:
    """Start the container if needed, then open a shell or run CMD in it; CMD's exit code is passed through.

    With --rm, CMD runs once in a new container from the project's image (workspace at /workspace, your
    limits; CPU-only unless --gpus), which is removed afterwards; a NAME container is left alone.

    Examples:
      container-run thesis
      container-run thesis -- python train.py --epochs 3
      echo 'print(1)' | container-run thesis -- python -
      container-run thesis --rm -- pytest
    """
    from ds01.errors import UsageError
    from ds01.terminal import open_session

    client = connect()
    if rm or gpus is not None:
        from ds01.cli.run_once import run_once

        raise typer.Exit(run_once(client, name, command, user=user, gpus=gpus, rm=rm))
    from ds01.cli.select import container_name

    name = container_name(client, name, command="container-run", user=user)
    if not command and not stdin_is_tty():
        raise UsageError(
            "no command and no terminal for a shell", hint=f"pass one: container-run {name} -- CMD"
        )
    code = open_session(client, name, command or None, user=user, start=True)
    raise typer.Exit(code)


# -- logs / pause / unpause -------------------------------------------------------------------------
@app.command("logs")
@handle_errors
def logs(
    name: NameArg = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new output.")] = False,
    tail: Annotated[int | None, typer.Option("--tail", "-n", help="Only the last N lines.", min=0)] = None,
    user: UserOpt = None,
) -> None:
    """Print the output of the container's main process.

    Examples:
      container-logs thesis --tail 50
      container-logs thesis --follow
    """
    import sys

    client = connect()
    target = _pick(client, name, "container-logs", user)
    out = sys.stdout

    def show(event: Any) -> None:
        if isinstance(event, dict) and isinstance(event.get("data"), str):
            out.write(event["data"])
            out.flush()

    query = {"user": user, "follow": follow, "tail": tail}
    client.call("GET", path_of("containers", target, "logs"), query, on_event=show)


@app.command("pause")
@handle_errors
def pause(name: NameArg = None, user: UserOpt = None, json_out: JsonOpt = False) -> None:
    """Freeze every process of a running container (it keeps its memory and GPU).

    Examples:
      container-pause thesis
    """
    client = connect(json_out)
    target = _pick(client, name, "container-pause", user, UP)
    entry = client.call("POST", path_of("containers", target, "pause"), {"user": user})
    if json_out:
        client.out.json(entry)
        return
    client.out.success(f"paused {entry['name']}")
    if entry["gpus"]:
        client.out.hint(
            f"a paused container still holds its GPU; container-stop {entry['name']} for long breaks"
        )


@app.command("unpause")
@handle_errors
def unpause(name: NameArg = None, user: UserOpt = None, json_out: JsonOpt = False) -> None:
    """Resume a paused container.

    Examples:
      container-unpause thesis
    """
    client = connect(json_out)
    target = _pick(client, name, "container-unpause", user, frozenset({"paused"}))
    entry = client.call("POST", path_of("containers", target, "unpause"), {"user": user})
    if json_out:
        client.out.json(entry)
        return
    client.out.success(f"unpaused {entry['name']}")


# L3 verbs live in cli/orchestration.py; they belong to the same `container` group.
from ds01.cli.orchestration import deploy, retire  # noqa: E402

app.command("deploy")(deploy)
app.command("retire")(retire)
# The ways in (SSH, Jupyter, ports) live in cli/access.py; they belong to the same `container` group.
from ds01.cli.access import jupyter as _jupyter  # noqa: E402
from ds01.cli.access import port as _port  # noqa: E402
from ds01.cli.access import ssh as _ssh  # noqa: E402

app.command("ssh")(_ssh)
app.command("jupyter")(_jupyter)
app.command("port")(_port)
