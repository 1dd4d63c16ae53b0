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
    from ds01.wizards.project_init import InitRequest, ask_missing, fetch_bases, fetch_catalogue, init_project

    out = client.out
    naming.normalise_name(name)  # a bad name is exit 2 before any question
    req = InitRequest(name, project_type, framework, desc, git, devcontainer, gpus)
    catalogue = fetch_catalogue(client)
    req = ask_missing(req, catalogue, prompter, fetch_bases(client), say=out.info)  # what can be built here
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


def _offer(client: Client, prompter: Prompter, name: str, user: str | None) -> str | None:
    """NAME is not a project: on a terminal, offer to make it one (project-init's defaults), to run one of
    the user's projects' images with NAME's own workspace (--from), or to cancel. Returns the --from."""
    from ds01.wizards.project_launch import list_projects, not_a_project
    from ds01.wizards.prompts import Choice, Defaults

    projects = [p for p in list_projects(client, user) if p.from_project is None]
    choices = [Choice("+init", f"create project {name} (project-init's defaults; builds its image)")]
    choices += [
        Choice(p.name, f"reuse {p.name}'s image, own workspace   (= --from {p.name})") for p in projects
    ]
    choices.append(Choice("+cancel", "cancel"))
    picked = prompter.select(
        f"{name} is not a project yet. What now?",
        choices,
        default=projects[0].name if projects else "+init",
        flag="--from PROJECT",
    )
    if picked == "+cancel":
        raise not_a_project(name)
    if picked == "+init":
        run_init(client, Defaults(), name, user=user)
        return None
    return picked


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
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="PROJECT",
            help="NAME is an experiment: PROJECT's image (no rebuild), NAME's own workspace.",
        ),
    ] = None,
    yes: YesOpt = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Launch a project: build its image when needed, then deploy a container, and (with --open) a shell.

    Without NAME, lists your projects ("image ready" / "needs image") to pick one or start a new one.
    A NAME that is not a project yet: on a terminal you are offered to create it or to reuse a project's
    image; otherwise exit 3. --from PROJECT makes NAME an experiment: PROJECT's image, a workspace of its
    own (PROJECT's folders and code, not its data, models or results).

    Examples:
      project-launch my-thesis --open
      project launch my-thesis --background --gpus 2
      project-launch my-thesis --rebuild
      project-launch my-thesis --jupyter --background
      project launch experiment-1 --from my-thesis --background
      for i in {1..10}; do project launch experiment-$i --from my-thesis --gpus 1 --wait --detach; done
    """
    from ds01.cli.common import connect
    from ds01.cli.orchestration import call_waiting, present
    from ds01.wizards.project_launch import is_project, launch_project, project_info, workspaces

    if open_ and background:
        raise UsageError("--open and --background exclude each other", hint="pass one of them")
    if (timeout or detach) and not wait:
        raise UsageError("--timeout and --detach go with --wait", hint="add --wait")
    if detach and open_:
        raise UsageError("--detach and --open exclude each other", hint="pass --background with --detach")
    client = connect(json_out)
    prompter = _prompter(yes, json_out)
    name = name or _pick_project(client, prompter, user)
    if from_ is None and stdin_is_tty() and not json_out and not yes:
        from ds01 import naming

        name = naming.normalise_name(name)
        root, _ = workspaces(client, user)
        if not is_project(project_info(client, root, name, user)):
            from_ = _offer(client, prompter, name, user)

    def waiting(body: dict[str, Any]) -> dict[str, Any]:
        return call_waiting(client, body, timeout=timeout, detach=detach)

    result = launch_project(
        client, name, user=user, rebuild=rebuild, gpus=gpus, cpu_only=cpu_only, show=not json_out,
        deploy_call=waiting if wait else None, from_project=from_,
        say=None if json_out else client.out.say,
    )  # fmt: skip
    if result.deployment.get("action") == "queued":
        return  # call_waiting said where it waits (and how the user will hear)
    if jupyter:  # cli/access.py: the notebook server and the ssh -L line for the laptop
        from ds01.cli.access import start_jupyter

        start_jupyter(client, result.deployment["entry"]["name"], user)
    if json_out:
        extra = {"from": result.project.from_project} if result.project.from_project else {}
        client.out.json({**result.deployment["entry"], "image_built": result.built, **extra})
        return
    if yes and not open_:
        background = True

    def ask(question: str, default: bool) -> bool:
        return prompter.confirm(question, default=default, flag="--open / --background")

    raise typer.Exit(
        present(client, result.deployment, open_=open_, background=background, user=user, ask=ask)
    )


from ds01.cli.export import project_export  # noqa: E402  (kept with the other exports)

app.command("export")(project_export)
