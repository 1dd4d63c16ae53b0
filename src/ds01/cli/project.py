"""The `project` group (L4): `project-init`, `project-launch`; also `project VERB`, `ds01 project VERB`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ds01.cli.common import JsonOpt, UserOpt, handle_errors, new_app, stdin_is_tty
from ds01.errors import UsageError

if TYPE_CHECKING:
    from ds01.client import Client
    from ds01.wizards.prompts import Prompter

app = new_app("project", "Start and launch projects: workspace, image and container in one go.")

NameArg = Annotated[str | None, typer.Argument(metavar="NAME", help="The project name.", show_default=False)]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Take the defaults; ask nothing.")]


def _prompter(yes: bool, json_out: bool) -> Prompter:
    from ds01.wizards.prompts import prompter_for

    return prompter_for(yes=yes, tty=stdin_is_tty() and not json_out)


def _name(prompter: Prompter, name: str | None) -> str:
    return name or prompter.text("Project name (e.g. my-thesis)", default="", flag="NAME")


def run_init(
    client: Client,
    prompter: Prompter,
    name: str,
    *,
    user: str | None = None,
    project_type: str | None = None,
    framework: str | None = None,
    desc: str | None = None,
    git: bool = True,
    devcontainer: bool | None = None,
    gpus: int | None = None,
    guided: bool = False,
) -> str:
    from ds01 import naming
    from ds01.wizards.project_init import InitRequest, ask_missing, fetch_catalogue, init_project

    out = client.out
    naming.normalise_name(name)  # a bad name is exit 2 before any question
    req = InitRequest(name, project_type, framework, desc, git, devcontainer, gpus)
    catalogue = fetch_catalogue(client)
    req = ask_missing(req, catalogue, prompter)
    result = init_project(client, req, catalogue, user=user, say=out.say, guided=guided)
    if out.json_mode:
        out.json(result.as_dict())
        return result.name
    verb = "Created" if result.created else "Nothing to add to"
    out.success(f"{verb} project [bold]{result.name}[/bold] ({result.project_type}, {result.framework})")
    out.table(
        ("", ""),
        [
            ("workspace", str(result.workspace)),
            ("image", f"{result.image} (not built yet)"),
            ("added", ", ".join(result.created) or "-"),
            ("kept as they were", ", ".join(result.kept) or "-"),
        ],
        header=False,
    )
    out.say(f"[dim]next:[/dim] project-launch {result.name} --open   (builds the image, starts a container)")
    return result.name


@app.command("init")
@handle_errors
def init(
    name: NameArg = None,
    project_type: Annotated[
        str | None, typer.Option("--type", "-t", help="ml, cv, nlp, rl, audio, ts, llm or custom.")
    ] = None,
    framework: Annotated[
        str | None, typer.Option("--framework", "-f", help="pytorch, tensorflow, jax, pytorch-cpu, python.")
    ] = None,
    desc: Annotated[str | None, typer.Option("--desc", help="One line about the project.")] = None,
    no_git: Annotated[bool, typer.Option("--no-git", help="No git repository.")] = False,
    devcontainer: Annotated[
        bool | None,
        typer.Option(
            "--devcontainer/--no-devcontainer",
            help="VS Code settings for Remote-SSH into the container (ssh NAME.ds01); no docker needed.",
        ),
    ] = None,
    gpus: Annotated[
        int | None, typer.Option("--gpus", help="GPUs project-launch asks for (default 1).", min=0)
    ] = None,
    guided: Annotated[bool, typer.Option("--guided", help="Explain each step as it happens.")] = False,
    yes: YesOpt = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Start a project: workspace folders, pyproject.toml, requirements.txt, Dockerfile, README and git.

    On an existing project it adds only what is missing; it never overwrites your files.

    Examples:
      project-init my-thesis
      project-init my-thesis --type nlp --framework pytorch --yes
      project-init demo --type custom --framework python --no-git --yes
    """
    from ds01.cli.common import connect

    client = connect(json_out)
    prompter = _prompter(yes, json_out)
    run_init(
        client,
        prompter,
        _name(prompter, name),
        user=user,
        project_type=project_type,
        framework=framework,
        desc=desc,
        git=not no_git,
        devcontainer=devcontainer,
        gpus=gpus,
        guided=guided,
    )


def _pick_project(client: Client, prompter: Prompter, user: str | None = None) -> str:
    from ds01.wizards.project_launch import list_projects
    from ds01.wizards.prompts import Choice

    projects = list_projects(client, user)
    choices = [
        Choice(p.name, f"{p.name:24} {'image ready' if p.image_ready else 'needs image'}") for p in projects
    ]
    choices.append(Choice("", "+ start a new project"))
    picked = prompter.select(
        "Which project?", choices, default=projects[0].name if projects else "", flag="NAME"
    )
    if picked:
        return picked
    return run_init(client, prompter, _name(prompter, None), user=user)


@app.command("launch")
@handle_errors
def launch(
    name: NameArg = None,
    open_: Annotated[bool, typer.Option("--open", "-o", help="End in a shell inside the container.")] = False,
    background: Annotated[
        bool, typer.Option("--background", "-b", help="Leave it running; no shell.")
    ] = False,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild the image first.")] = False,
    gpus: Annotated[
        int | None, typer.Option("--gpus", help="GPU slots (default: the project's).", min=0)
    ] = None,
    cpu_only: Annotated[bool, typer.Option("--cpu-only", help="No GPU.")] = False,
    jupyter: Annotated[
        bool, typer.Option("--jupyter", help="Start Jupyter in it, reachable only by you (ssh -L).")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="No GPU free: wait in the queue for one instead of failing.")
    ] = False,
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="With --wait: give up after this long (90s, 30m, 2h).")
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="With --wait: return at once; ds01d deploys it when a GPU frees.")
    ] = False,
    yes: YesOpt = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Launch a project: build its image when needed, then deploy a container, and (with --open) a shell.

    Without NAME, lists your projects ("image ready" / "needs image") to pick one or start a new one.

    Examples:
      project-launch my-thesis --open
      project launch my-thesis --background --gpus 2
      project-launch my-thesis --rebuild
      project-launch my-thesis --jupyter --background
      project-launch experiment-3 --background --wait --detach
    """
    from ds01.cli.common import connect
    from ds01.cli.orchestration import call_waiting, present
    from ds01.wizards.project_launch import launch_project

    if open_ and background:
        raise UsageError("--open and --background exclude each other", hint="pass one of them")
    if (timeout or detach) and not wait:
        raise UsageError("--timeout and --detach go with --wait", hint="add --wait")
    if detach and open_:
        raise UsageError("--detach and --open exclude each other", hint="pass --background with --detach")
    client = connect(json_out)
    prompter = _prompter(yes, json_out)
    name = name or _pick_project(client, prompter, user)

    def waiting(body: dict[str, Any]) -> dict[str, Any]:
        return call_waiting(client, body, timeout=timeout, detach=detach)

    result = launch_project(
        client, name, user=user, rebuild=rebuild, gpus=gpus, cpu_only=cpu_only, show=not json_out,
        deploy_call=waiting if wait else None,
    )  # fmt: skip
    if result.deployment.get("action") == "queued":
        return  # call_waiting said where it waits (and how the user will hear)
    if jupyter:  # cli/access.py: the notebook server and the ssh -L line for the laptop
        from ds01.cli.access import start_jupyter

        start_jupyter(client, result.deployment["entry"]["name"], user)
    if json_out:
        client.out.json({**result.deployment["entry"], "image_built": result.built})
        return
    if yes and not open_:
        background = True

    def ask(question: str, default: bool) -> bool:
        return prompter.confirm(question, default=default, flag="--open / --background")

    raise typer.Exit(
        present(client, result.deployment, open_=open_, background=background, user=user, ask=ask)
    )
