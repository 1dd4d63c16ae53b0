"""The `container` group: `container VERB` and `ds01 container VERB` (and `container-VERB` scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ds01.cli.common import JsonOpt, UserOpt, connect, handle_errors, new_app, stdin_is_tty
from ds01.client import path_of

if TYPE_CHECKING:
    from ds01.atomic.container_view import ContainerView
    from ds01.context import Context

app = new_app("container", "Create, run and retire your containers (your workspace always stays).")

NameArg = Annotated[
    str | None, typer.Argument(metavar="NAME", help="The container (project) name.", show_default=False)
]
STOPPED = frozenset({"created", "exited", "dead"})
UP = frozenset({"running", "restarting"})


def _context(json_out: bool = False) -> Context:
    from ds01.context import Context

    return Context.load(json_mode=json_out)


def _find(
    ctx: Context, name: str | None, command: str, user: str | None, states: frozenset[str] | None = None
) -> ContainerView:
    from ds01.atomic.containers import find_container
    from ds01.cli.select import container_name

    return find_container(
        ctx, container_name(ctx, name, command=command, user=user, states=states), user=user
    )


def _entry(ctx: Context, view: ContainerView) -> dict[str, Any]:
    from ds01.atomic.container_view import list_entry
    from ds01.atomic.containers import known_slots

    return list_entry(view, known_slots(ctx, [view]))


def _refresh(ctx: Context, view: ContainerView) -> ContainerView:
    from ds01.atomic.container_view import ContainerView

    return ContainerView.from_inspect(ctx.gateway.inspect(view.id))


def _hold_text(ctx: Context, view: ContainerView) -> str:
    from ds01 import units
    from ds01.atomic.containers import gpu_hold_hours

    hold = gpu_hold_hours(ctx, view)
    slots = ", ".join(view.gpu_slots)
    if hold is None:
        return f"GPU {slots} stays held until you remove the container (container-remove {view.name})"
    return (
        f"GPU {slots} stays held for {units.format_hours(hold)} after stop; "
        f"container-remove {view.name} frees it now"
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
        Path | None, typer.Option("--workspace", help="Your directory to mount at /workspace.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="A directory to mount read-only at /data.")
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

    from ds01.atomic.container_create import CreateRequest, create_container
    from ds01.cli.select import new_name

    ctx = _context(json_out)
    if command is not None and image_cmd:
        from ds01.errors import UsageError

        raise UsageError("--command and --image-cmd exclude each other", hint="pick one")
    cmd: tuple[str, ...] | None = () if image_cmd else (tuple(shlex.split(command)) if command else None)
    req = CreateRequest(
        name=new_name(ctx, name, command="container-create"),
        image=image,
        gpus=gpus,
        mig_profile=mig_profile,
        cpu_only=cpu_only,
        workspace=workspace,
        data=data,
        command=cmd,
    )
    result = create_container(ctx, ctx.target_user(user), req, dry_run=dry_run)
    if dry_run:
        if json_out:
            ctx.out.json(
                {"dry_run": True, "command": result.spec.docker_create_argv(), "container": result.entry}
            )
        else:
            ctx.out.stdout.write(result.spec.docker_create_line() + "\n")
        return
    if json_out:
        ctx.out.json(result.entry)
        return
    entry = result.entry
    gpu = ", ".join(f"{g['slot']} ({g['profile'] or 'full GPU'})" for g in entry["gpus"]) or "none (CPU only)"
    ctx.out.success(f"created [bold]{entry['name']}[/bold] ({entry['container']}) from {entry['image']}")
    ctx.out.say(f"  GPU: {gpu}\n  workspace: {entry['workspace']} -> /workspace")
    ctx.out.hint(
        f"next: container-start {entry['name']}, then container-attach {entry['name']} "
        f"(or container-run {entry['name']} to do both)"
    )


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
    from ds01.atomic.containers import start_container

    ctx = _context(json_out)
    view = _find(ctx, name, "container-start", user, STOPPED | {"paused"})
    result = start_container(ctx, view)
    if json_out:
        ctx.out.json(_entry(ctx, _refresh(ctx, view)))
        return
    ctx.out.success(f"{view.name}: {result.action}")
    ctx.out.hint(f"next: container-attach {view.name} for a shell, container-stop {view.name} when done")


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
    from ds01.atomic.containers import list_views, stop_container

    ctx = _context(json_out)
    if all_:
        if name:
            from ds01.errors import UsageError

            raise UsageError("pass NAME or --all, not both")
        views = [v for v in list_views(ctx, owner=ctx.target_user(user)) if v.state in UP | {"paused"}]
    else:
        views = [_find(ctx, name, "container-stop", user, UP | {"paused"})]
    stopped = [v for v in views if stop_container(ctx, v, timeout=timeout, force=force)]
    if json_out:
        ctx.out.json([_entry(ctx, _refresh(ctx, v)) for v in views])
        return
    if not views:
        ctx.out.info("no running containers")
    for v in views:
        ctx.out.success(f"{v.name}: {'stopped' if v in stopped else 'was not running'}")
        if v.gpu_slots:
            ctx.out.say(f"  {_hold_text(ctx, v)}")
    for v in views[:1]:
        ctx.out.hint(f"next: container-start {v.name} to resume, container-remove {v.name} to free it")


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
    from ds01.atomic.containers import remove_container

    ctx = _context(json_out)
    view = _find(ctx, name, "container-remove", user)
    remove_container(ctx, view, force=force)
    if json_out:
        ctx.out.json(
            {
                "removed": view.docker_name,
                "name": view.name,
                "freed_gpus": view.gpu_slots,
                "workspace": view.labels.get("ds01.workspace", ""),
            }
        )
        return
    freed = f"; GPU {', '.join(view.gpu_slots)} is free" if view.gpu_slots else ""
    ctx.out.success(f"removed {view.name}{freed}")
    ctx.out.hint(f"your workspace stays: {view.labels.get('ds01.workspace', '')}")


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
    entries = client.call("GET", path_of("containers"), {"all_users": all_users, "status": status, "user": user})
    if json_out:
        client.out.json(entries)
        return
    rows = []
    for e in entries:
        gpus = ", ".join(f"{g['slot']}" + (f" ({g['profile']})" if g["profile"] else "") for g in e["gpus"])
        row = [e["name"], e["status"], e["image"], gpus or "-", e["created_at"], e["workspace"]]
        rows.append([e["user"], *row] if all_users else row)
    columns = ["name", "status", "image", "GPU", "created", "workspace"]
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
    from ds01.atomic.container_stats import collect_stats
    from ds01.atomic.containers import list_views
    from ds01.errors import PermissionDenied

    ctx = _context(json_out)
    if all_users and not ctx.is_admin:
        raise PermissionDenied("--all-users is for admins", hint="drop it to see your own containers")
    if name:
        views = [_find(ctx, name, "container-stats", user)]
    else:
        views = list_views(ctx, owner=None if all_users else ctx.target_user(user))
    rows = collect_stats(ctx, views)
    if json_out:
        ctx.out.json([r.as_dict() for r in rows])
        return

    def mem(r: Any) -> str:
        if r.memory_used is None:
            return "-"
        return f"{units.format_size(r.memory_used)} / {units.format_size(r.memory_limit)}"

    def gpu(r: Any) -> str:
        return (
            ", ".join(
                f"{g.slot}" + (f" {g.utilization:g}%" if g.utilization is not None else "") for g in r.gpus
            )
            or "-"
        )

    table = [
        [
            r.name,
            r.status,
            "-" if r.cpu_percent is None else f"{r.cpu_percent:.1f}%",
            mem(r),
            "-" if r.pids is None else r.pids,
            gpu(r),
        ]
        for r in rows
    ]
    ctx.out.table(
        ["name", "status", "CPU", "memory used / limit", "pids", "GPU (util)"], table, empty="no containers"
    )


# -- attach / run -----------------------------------------------------------------------------------
@app.command("attach")
@handle_errors
def attach(name: NameArg = None, user: UserOpt = None) -> None:
    """Open a shell (bash if the image has it, else sh) in a running container, as you, in /workspace.

    Ctrl-D or `exit` leaves the shell; the container keeps running.

    Examples:
      container-attach thesis
    """
    from ds01.atomic.shell import exec_argv, exec_into
    from ds01.errors import OperationFailed

    ctx = _context()
    view = _find(ctx, name, "container-attach", user, UP)
    if view.state not in UP:
        raise OperationFailed(
            f"{view.name} is {view.state}, not running",
            hint=f"container-run {view.name} starts it and opens a shell",
        )
    tty = stdin_is_tty()
    exec_into(
        exec_argv(view, None, interactive=True, tty=tty, fallback_user=f"{ctx.user.uid}:{ctx.user.gid}")
    )


@app.command("run")
@handle_errors
def run(
    name: NameArg = None,
    command: Annotated[
        list[str] | None, typer.Argument(metavar="[-- CMD...]", help="A command to run.", show_default=False)
    ] = None,
    user: UserOpt = None,
) -> None:
    """Start the container if needed, then open a shell or run CMD in it; CMD's exit code is passed through.

    Examples:
      container-run thesis
      container-run thesis -- python train.py --epochs 3
      echo 'print(1)' | container-run thesis -- python -
    """
    from ds01.atomic.containers import start_container
    from ds01.atomic.shell import exec_argv, exec_into

    ctx = _context()
    view = _find(ctx, name, "container-run", user)
    if view.state not in UP:
        start_container(ctx, view)
        ctx.out.info(f"started {view.name}")
    tty = stdin_is_tty()
    if not command and not tty:
        from ds01.errors import UsageError

        raise UsageError("no command and no terminal for a shell", hint="pass one: container-run NAME -- CMD")
    exec_into(
        exec_argv(
            view, command or None, interactive=True, tty=tty, fallback_user=f"{ctx.user.uid}:{ctx.user.gid}"
        )
    )


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

    from ds01.atomic.containers import container_logs

    ctx = _context()
    view = _find(ctx, name, "container-logs", user)
    out = sys.stdout.buffer
    for chunk in container_logs(ctx, view, follow=follow, tail=tail):
        out.write(chunk)
        out.flush()


@app.command("pause")
@handle_errors
def pause(name: NameArg = None, user: UserOpt = None, json_out: JsonOpt = False) -> None:
    """Freeze every process of a running container (it keeps its memory and GPU).

    Examples:
      container-pause thesis
    """
    from ds01.atomic.containers import pause_container

    ctx = _context(json_out)
    view = _find(ctx, name, "container-pause", user, UP)
    pause_container(ctx, view)
    if json_out:
        ctx.out.json(_entry(ctx, _refresh(ctx, view)))
        return
    ctx.out.success(f"paused {view.name}")
    if view.gpu_slots:
        ctx.out.hint(f"a paused container still holds its GPU; container-stop {view.name} for long breaks")


@app.command("unpause")
@handle_errors
def unpause(name: NameArg = None, user: UserOpt = None, json_out: JsonOpt = False) -> None:
    """Resume a paused container.

    Examples:
      container-unpause thesis
    """
    from ds01.atomic.containers import unpause_container

    ctx = _context(json_out)
    view = _find(ctx, name, "container-unpause", user, frozenset({"paused"}))
    unpause_container(ctx, view)
    if json_out:
        ctx.out.json(_entry(ctx, _refresh(ctx, view)))
        return
    ctx.out.success(f"unpaused {view.name}")


# L3 verbs live in cli/orchestration.py; they belong to the same `container` group.
from ds01.cli.orchestration import deploy, retire  # noqa: E402

app.command("deploy")(deploy)
app.command("retire")(retire)
