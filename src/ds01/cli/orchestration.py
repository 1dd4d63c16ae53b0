"""L3 commands: `container-deploy` and `container-retire` (also `container deploy|retire`)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from ds01.cli.common import JsonOpt, UserOpt, handle_errors, stdin_is_tty
from ds01.errors import UsageError

if TYPE_CHECKING:
    from ds01.atomic.container_view import ContainerView
    from ds01.context import Context
    from ds01.orchestrators.deploy import Deployment

NameArg = Annotated[str | None, typer.Argument(metavar="NAME", help="The project name.", show_default=False)]


def _ask(question: str, ctx: Context, *, default: bool) -> bool:
    from rich.prompt import Confirm

    return Confirm.ask(question, console=ctx.out.err_console, default=default)


def _summary(ctx: Context, d: Deployment, owner_is_caller: bool) -> None:
    from ds01 import units

    out, view = ctx.out, d.view
    verb = {"created": "Deployed", "started": "Started again", "running": "Already running:"}[d.action]
    out.say(f"[bold green]{verb}[/bold green] [bold]{view.name}[/bold]")
    gpus = ", ".join(
        f"{g['slot']} ({g['profile'] or 'full GPU'}, {round(g['gpueq'], 3):g} gpueq)" for g in d.entry["gpus"]
    )
    rows = [
        ("image", view.image),
        ("GPU", gpus or "none (CPU only)"),
        ("workspace", f"{d.entry['workspace']}  → /workspace (kept when the container goes)"),
    ]
    if d.idle_timeout_h is not None or view.gpu_slots:
        rows.append(
            ("idle timeout", f"stopped after {units.format_hours(d.idle_timeout_h)} without GPU work")
        )
    rows.append(("max runtime", units.format_hours(d.max_runtime_h)))
    out.table(("", ""), rows, header=False)
    user = "" if owner_is_caller else f" --user {view.user}"
    out.say(
        f"[dim]next:[/dim] container-attach {view.name}{user}  ·  "
        f"container-retire {view.name}{user} when done"
    )


def _open_shell(ctx: Context, d: Deployment) -> int:
    from ds01.atomic.shell import exec_argv

    argv = exec_argv(
        d.view, None, interactive=True, tty=stdin_is_tty(), fallback_user=f"{ctx.user.uid}:{ctx.user.gid}"
    )
    return subprocess.run(argv).returncode


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
    """
    from ds01.atomic.container_create import CreateRequest
    from ds01.cli.select import new_name
    from ds01.context import Context
    from ds01.orchestrators.deploy import deploy_container

    if background and open_:
        raise UsageError("--background and --open exclude each other", hint="pass one of them")
    ctx = Context.load(json_mode=json_out)
    owner = ctx.target_user(user)
    name = new_name(ctx, name, command="container-deploy")
    request = CreateRequest(
        name=name,
        image=image,
        gpus=gpus,
        mig_profile=mig_profile,
        cpu_only=cpu_only,
        interface="orchestration",
    )
    deployment = deploy_container(ctx, owner, request)
    if json_out:
        ctx.out.json(deployment.entry)
        return
    code = present(
        ctx, deployment, open_=open_, background=background, owner_is_caller=owner.uid == ctx.user.uid
    )
    raise typer.Exit(code)


def present(
    ctx: Context,
    deployment: Deployment,
    *,
    open_: bool,
    background: bool,
    owner_is_caller: bool = True,
    ask: Callable[[str, bool], bool] | None = None,
) -> int:
    """The summary, then a shell when asked for (on a terminal: asked); after the shell, keep or retire."""
    ask = ask or (lambda question, default: _ask(question, ctx, default=default))
    _summary(ctx, deployment, owner_is_caller)
    tty = stdin_is_tty()
    if not open_ and not background and tty:
        open_ = ask("Open a shell in it now?", True)
    if not open_:
        return 0
    code = _open_shell(ctx, deployment)
    if tty and not ask(f"Keep {deployment.name} running? (no = retire it now; the workspace stays)", True):
        _retire_one(ctx, deployment.view, save=False)
        ctx.out.success(f"retired {deployment.name}; the workspace stays")
    return code


def _retire_one(ctx: Context, view: ContainerView, *, save: bool) -> dict[str, object]:
    from ds01.orchestrators.retire import retire_container

    result = retire_container(ctx, view, save=save)
    saved = result.saved
    return {
        "name": result.view.name,
        "container": result.view.docker_name,
        "user": result.view.user,
        "gpus_freed": result.gpu_slots,
        "saved_image": saved.image if saved else None,
        "added_packages": saved.packages if saved else [],
    }


@handle_errors
def retire(
    name: NameArg = None,
    all_: Annotated[bool, typer.Option("--all", help="Retire all of your containers.")] = False,
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
    from ds01.atomic.containers import find_container, list_views
    from ds01.cli.select import container_name
    from ds01.context import Context

    ctx = Context.load(json_mode=json_out)
    if all_ and name:
        raise UsageError("give NAME or --all, not both", hint="container-retire --all --yes")
    if all_:
        views = list_views(ctx, owner=ctx.target_user(user))
    else:
        views = [
            find_container(ctx, container_name(ctx, name, command="container-retire", user=user), user=user)
        ]
    if not views:
        ctx.out.info("nothing to retire")
        if json_out:
            ctx.out.json([])
        return
    names = ", ".join(v.name for v in views)
    if not yes:
        if not stdin_is_tty():
            raise UsageError(
                f"retiring {names} needs confirmation", hint="pass --yes (no terminal to ask on)"
            )
        if not _ask(f"Retire {names}? The workspace stays.", ctx, default=True):
            raise typer.Exit(1)
    results = []
    for view in views:
        results.append(_retire_one(ctx, view, save=save_changes))
        if not json_out:
            _retired_message(ctx, results[-1])
    if json_out:
        ctx.out.json(results)


def _retired_message(ctx: Context, r: dict[str, object]) -> None:
    freed = r["gpus_freed"]
    gpu = f"; GPU {', '.join(freed)} is free" if isinstance(freed, list) and freed else ""
    ctx.out.success(f"retired {r['name']}{gpu}; the workspace stays")
    packages = r["added_packages"]
    if r["saved_image"]:
        ctx.out.say(f"  saved into {r['saved_image']}")
        if isinstance(packages, list) and packages:
            ctx.out.say(f"  installed since the image was built: {' '.join(packages)}")
            ctx.out.hint(f"  make it part of the recipe: image-update {r['name']} --add {' '.join(packages)}")
