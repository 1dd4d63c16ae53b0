"""L3 commands: `container-deploy` and `container-retire` (also `container deploy|retire`).

Clients of ds01d: the deploy and the retire run inside ds01d (`POST /v1/deploy`, `POST /v1/retire`), so a
command killed half-way leaves nothing behind. Hot path: no docker, yaml, pynvml or rich imported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ds01.cli.common import JsonOpt, UserOpt, connect, handle_errors, stdin_is_tty
from ds01.errors import UsageError

if TYPE_CHECKING:
    from ds01.client import Client
    from ds01.output import Output

NameArg = Annotated[str | None, typer.Argument(metavar="NAME", help="The project name.", show_default=False)]


def _ask(question: str, out: Output, *, default: bool) -> bool:
    from rich.prompt import Confirm

    return Confirm.ask(question, console=out.err_console, default=default)


def _no_terminal(command: str, example: str) -> UsageError:
    return UsageError(
        f"missing argument NAME for {command}",
        hint=f"pass it, e.g. `{command} {example}` (no terminal to ask on)",
    )


def _new_name(out: Output, name: str | None, *, command: str) -> str:
    if name:
        return name
    if not stdin_is_tty():
        raise _no_terminal(command, "my-thesis")
    from rich.prompt import Prompt

    return Prompt.ask("Name (e.g. my-thesis)", console=out.err_console).strip()


def _summary(out: Output, d: dict[str, Any], owner_is_caller: bool) -> None:
    from ds01 import units

    entry = d["entry"]
    verb = {"created": "Deployed", "started": "Started again", "running": "Already running:"}[d["action"]]
    out.say(f"[bold green]{verb}[/bold green] [bold]{entry['name']}[/bold]")
    gpus = ", ".join(
        f"{g['slot']} ({g['profile'] or 'full GPU'}, {round(g['gpueq'], 3):g} gpueq)" for g in entry["gpus"]
    )
    rows = [
        ("image", entry["image"]),
        ("GPU", gpus or "none (CPU only)"),
        ("workspace", f"{entry['workspace']}  → /workspace (kept when the container goes)"),
    ]
    if d["idle_timeout_h"] is not None or entry["gpus"]:
        rows.append(
            ("idle timeout", f"stopped after {units.format_hours(d['idle_timeout_h'])} without GPU work")
        )
    rows.append(("max runtime", units.format_hours(d["max_runtime_h"])))
    out.table(("", ""), rows, header=False)
    user = "" if owner_is_caller else f" --user {entry['user']}"
    out.say(
        f"[dim]next:[/dim] container-attach {entry['name']}{user}  ·  "
        f"container-retire {entry['name']}{user} when done"
    )


def _open_shell(client: Client, d: dict[str, Any], user: str | None) -> int:
    from ds01.cli.cluster import on_its_node
    from ds01.terminal import open_session, stdio_is_terminal

    there = on_its_node(client, d["entry"]["name"], "container-attach", user=user, pty=stdio_is_terminal())
    return there if there is not None else open_session(client, d["entry"]["container"], [], user=user)


@handle_errors
def deploy(
    name: NameArg = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="GPU slots (full GPUs or MIG slices).")] = None,
    mig_profile: Annotated[
        str | None, typer.Option("--mig-profile", help="A MIG profile, e.g. 1g.10gb.")
    ] = None,
    cpu_only: Annotated[bool, typer.Option("--cpu-only", help="No GPU at all.")] = False,
    image: Annotated[
        str | None, typer.Option("--image", help="Image (default: ds01-UID/NAME:latest).")
    ] = None,
    background: Annotated[
        bool, typer.Option("--background", "-b", help="Leave it running; no shell.")
    ] = False,
    open_: Annotated[bool, typer.Option("--open", "-o", help="Open a shell in it when it is up.")] = False,
    jupyter: Annotated[
        bool, typer.Option("--jupyter", help="Start Jupyter in it, reachable only by you (ssh -L).")
    ] = False,
    port: Annotated[
        list[int] | None,
        typer.Option(
            "--port", help="Make this port reachable by you (ssh -L); repeatable.", min=1, max=65535
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="No GPU free: wait in the queue for one instead of failing.")
    ] = False,
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="With --wait: give up after this long (90s, 30m, 2h).")
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="With --wait: return at once; ds01d deploys it when a GPU frees.")
    ] = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Deploy a container for a project: create and start it (or start it again), ready for work.

    Your files live in the workspace, which stays when the container goes: deploy in the morning,
    retire at night.

    Examples:
      container-deploy my-thesis --open
      container-deploy my-thesis --gpus 1 --background
      container-deploy my-thesis --mig-profile 1g.10gb
      container-deploy my-thesis --cpu-only --json
      container-deploy my-thesis --jupyter --port 6006
      container-deploy my-thesis --gpus 1 --wait --timeout 2h
      container-deploy experiment-3 --background --wait --detach
    """
    from ds01.client import path_of

    if background and open_:
        raise UsageError("--background and --open exclude each other", hint="pass one of them")
    if gpus is not None and gpus < 0:
        raise UsageError(f"--gpus {gpus}: a count cannot be negative", hint="use e.g. --gpus 1")
    if image is not None and not image.strip():
        raise UsageError("--image: empty image reference", hint="name one, or leave out --image")
    client = connect(json_out)
    name = _new_name(client.out, name, command="container-deploy")
    body = {
        "name": name, "image": image, "gpus": gpus, "mig_profile": mig_profile, "cpu_only": cpu_only,
        "user": user, "interface": "orchestration",
    }  # fmt: skip
    if (timeout or detach) and not wait:
        raise UsageError("--timeout and --detach go with --wait", hint="add --wait")
    if detach and open_:
        raise UsageError("--detach and --open exclude each other", hint="pass --background with --detach")
    if wait:
        deployment = call_waiting(client, body, timeout=timeout, detach=detach)
        if deployment.get("action") == "queued":
            return
    else:
        from ds01.cluster.submit import follow  # cluster mode: ds01d answers with a Slurm job to submit

        deployment = follow(client, client.call("POST", path_of("deploy"), body), image=image)
    if jupyter or port:  # the ways in (cli/access.py): printed before the summary's shell prompt
        from ds01.cli import access

        project = deployment["entry"]["name"]
        for p in port or []:
            access.open_port(client, project, p, user)
        if jupyter:
            access.start_jupyter(client, project, user)
    if json_out:
        client.out.json(deployment["entry"])
        return
    client.out.hint(
        f"from your laptop: ssh {deployment['entry']['name']}.ds01 or VS Code Remote-SSH "
        "(the ~/.ssh/config block, once: container-ssh --config)"
    )
    raise typer.Exit(present(client, deployment, open_=open_, background=background, user=user))


def call_waiting(
    client: Client, body: dict[str, Any], *, timeout: str | None, detach: bool
) -> dict[str, Any]:
    """`POST /v1/deploy` with `wait`: one live line while in the queue; a detached request is reported
    and left to ds01d (the result's `action` is then `queued`). Ctrl-C leaves the queue (the connection
    closes)."""
    from ds01 import units
    from ds01.cli.queue import WaitLine
    from ds01.client import path_of

    seconds = None
    if timeout is not None:
        try:
            seconds = max(1, int(units.parse_seconds(timeout)))
        except ValueError:
            raise UsageError(
                f"--timeout {timeout}: not a duration", hint="e.g. --timeout 2h, 30m or 90s"
            ) from None
    line = WaitLine(quiet=client.out.json_mode)
    try:
        d: dict[str, Any] = client.call(
            "POST", path_of("deploy"), {**body, "wait": True, "timeout_s": seconds, "detach": detach},
            on_event=line,
        )  # fmt: skip
    finally:
        line.end()
    if d.get("action") == "submit":  # cluster mode: the wait is Slurm's pending state
        from ds01.cluster.submit import follow

        return follow(client, d, image=body.get("image"), wait=True, timeout_s=seconds, detach=detach)
    if d.get("action") == "queued":
        q = d["queued"]
        if client.out.json_mode:
            client.out.json(d)
        else:
            client.out.say(
                f"[bold]{q['name']}[/bold] waits for a GPU: position {q['position']} of {q['waiting']} "
                f"(request {q['id']}); you will be told on your terminals and in the workspace's "
                ".ds01-alerts when it starts"
            )
            client.out.hint(f"ds01 queue shows it; ds01 queue cancel {q['id']} takes it out")
    return d


def present(
    client: Client,
    deployment: dict[str, Any],
    *,
    open_: bool,
    background: bool,
    user: str | None = None,
    ask: Callable[[str, bool], bool] | None = None,
) -> int:
    """The summary, then a shell when asked for (on a terminal: asked); after the shell, keep or retire.
    `deployment` is the result of `POST /v1/deploy`."""
    out = client.out
    ask = ask or (lambda question, default: _ask(question, out, default=default))
    _summary(out, deployment, owner_is_caller=user is None)
    tty = stdin_is_tty()
    if not open_ and not background and tty:
        open_ = ask("Open a shell in it now?", True)
    if not open_:
        return 0
    code = _open_shell(client, deployment, user)
    name = deployment["entry"]["name"]
    if tty and not ask(f"Keep {name} running? (no = retire it now; the workspace stays)", True):
        _retire_one(client, deployment["entry"]["container"], save=False, user=user)
        out.success(f"retired {name}; the workspace stays")
    return code


def _retire_one(client: Client, name: str, *, save: bool, user: str | None) -> list[dict[str, Any]]:
    """Retire NAME; in cluster mode ds01d may answer that its job runs on another node instead (it asks
    Slurm; a server of its own asks nothing more): then it is retired there, through the job."""
    from ds01.client import path_of

    r = client.call("POST", path_of("retire"), {"name": name, "save_changes": save, "user": user})
    if "elsewhere" in r:
        from ds01.cli.cluster import retire_on_its_node

        return retire_on_its_node(client, name.split("._.")[0], str(r["elsewhere"]["job_id"]), save=save)
    saved = r["saved"]
    return [
        {
            "name": r["retired"],
            "container": r["container"],
            "user": r["user"],
            "gpus_freed": r["freed_gpus"],
            "saved_image": saved["image"] if saved else None,
            "added_packages": saved["packages"] if saved else [],
        }
    ]


@handle_errors
def retire(
    name: NameArg = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Retire all of your containers (in cluster mode, on every node).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    save_changes: Annotated[
        bool, typer.Option("--save-changes", help="Commit what was installed into the project image first.")
    ] = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Retire a container: stop and remove it. The workspace and the image stay; its GPU is free at once.

    Examples:
      container-retire my-thesis
      container-retire my-thesis --save-changes
      container-retire --all --yes
    """
    from ds01.client import path_of

    if all_ and name:
        raise UsageError("give NAME or --all, not both", hint="container-retire --all --yes")
    client = connect(json_out)
    out = client.out
    _slurm_step_survives_retire()
    if all_:
        entries = client.call("GET", path_of("containers"), {"user": user})
        targets: list[tuple[str, str, str | None]] = [
            (str(e["container"]), str(e["name"]), None) for e in entries
        ]
        if user is None:  # cluster mode: the caller's containers on other nodes too, each through its job
            from ds01.cli.cluster import jobs_elsewhere

            here = {shown for _, shown, _ in targets}
            targets += [(p, p, job) for p, job in jobs_elsewhere(client) if p not in here]
    else:
        from ds01.cli.select import container_name

        picked = container_name(client, name, command="container-retire", user=user)
        targets = [(picked, picked.split("._.")[0], None)]
    if not targets:
        out.info("nothing to retire")
        if json_out:
            out.json([])
        return
    names = ", ".join(shown for _, shown, _ in targets)
    if not yes:
        if not stdin_is_tty():
            raise UsageError(
                f"retiring {names} needs confirmation", hint="pass --yes (no terminal to ask on)"
            )
        if not _ask(f"Retire {names}? The workspace stays.", out, default=True):
            raise typer.Exit(1)
    results = []
    for target, shown, job_id in targets:
        if job_id is None:
            retired = _retire_one(client, target, save=save_changes, user=user)
        else:
            from ds01.cli.cluster import retire_on_its_node

            retired = retire_on_its_node(client, shown, job_id, save=save_changes)
        results += retired
        for r in retired if not json_out else []:
            _retired_message(out, r)
    if json_out:
        out.json(results)


def _slurm_step_survives_retire() -> None:
    """Inside a Slurm job (`srun --overlap` from a login node), the retire cancels the job it runs in: the
    answer is read before Slurm's SIGTERM may end this process (SIGKILL follows only after KillWait)."""
    import os
    import signal

    if os.environ.get("SLURM_JOB_ID"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _retired_message(out: Output, r: dict[str, Any]) -> None:
    freed = r["gpus_freed"]
    gpu = f"; GPU {', '.join(freed)} is free" if isinstance(freed, list) and freed else ""
    out.success(f"retired {r['name']}{gpu}; the workspace stays")
    packages = r["added_packages"]
    if r["saved_image"]:
        out.say(f"  saved into {r['saved_image']}")
        if isinstance(packages, list) and packages:
            out.say(f"  installed since the image was built: {' '.join(packages)}")
            out.hint(f"  make it part of the recipe: image-update {r['name']} --add {' '.join(packages)}")
