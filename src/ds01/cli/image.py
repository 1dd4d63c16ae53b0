"""The `image` group: `image VERB` and `ds01 image VERB` (and the `image-VERB` scripts).

A client of ds01d: the recipe (Dockerfile, requirements.txt) is written and edited here with the user's own
rights; ds01d builds from the context this command packs and uploads (`project/build.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ds01.cli.common import JsonOpt, UserOpt, connect, handle_errors, new_app, stdin_is_tty
from ds01.client import path_of

if TYPE_CHECKING:
    from ds01.client import Client
    from ds01.project.build import RecipeRequest
    from ds01.project.catalogue import Catalogue
    from ds01.project.recipe_hash import Change

app = new_app("image", "Build and manage your per-project images (the Dockerfile is the recipe).")

NameArg = Annotated[
    str | None, typer.Argument(metavar="NAME", help="The project (image) name.", show_default=False)
]
Packages = Annotated[list[str] | None, typer.Option(help="Packages, space or comma separated; repeatable.")]


def _pick_image(client: Client, name: str | None, command: str, user: str | None) -> str:
    if name:
        return name
    from ds01.errors import NotFound, UsageError

    if not stdin_is_tty():
        raise UsageError(
            f"missing argument NAME for {command}",
            hint=f"pass it, e.g. `{command} thesis` (no terminal to ask on)",
        )
    from rich.prompt import IntPrompt

    images = client.call("GET", path_of("images"), {"user": user})
    if not images:
        raise NotFound(f"no image to pick for {command}", hint="see image-list, or image-create NAME")
    console = client.out.err_console
    for i, img in enumerate(images, 1):
        console.print(f"  {i}) {img['name']}  [dim]{img['framework'] or '-'}, {img['created']}[/dim]")
    pick = IntPrompt.ask(
        "Which image",
        console=console,
        choices=[str(i) for i in range(1, len(images) + 1)],
        show_choices=False,
    )
    return str(images[pick - 1]["name"])


def _interactive_answers(
    client: Client, catalogue: Catalogue, framework: str | None, project_type: str | None
) -> tuple[str | None, str | None]:
    """On a terminal, ask for what the flags left open, with project-init's choices: what this server can
    build from first (a base here, or one it can download, with its size), a default it can build, and a
    type that downloads nothing when builds have no network. Elsewhere the catalogue's defaults apply."""
    if not stdin_is_tty() or client.out.json_mode or (framework and project_type):
        return framework, project_type
    from ds01.cli.rich_prompts import RichPrompter
    from ds01.wizards.project_init import InitRequest, ask_framework, ask_type, fetch_bases

    prompter, bases = RichPrompter(client.out), fetch_bases(client)
    req = InitRequest("", project_type, framework)
    framework = ask_framework(req, catalogue, prompter, bases, client.out.info)
    project_type = ask_type(req, catalogue, prompter, bases, client.out.info)
    return framework, project_type


def _check_request(catalogue: Catalogue, req: RecipeRequest) -> None:
    """The flags of a recipe, checked as writing it would check them (exit 2)."""
    from ds01 import naming
    from ds01.errors import UsageError
    from ds01.project import dockerfile as recipe

    if req.base is not None and not naming.is_image_reference(req.base.strip()):
        raise UsageError(
            f"--base {req.base[:60]!r} is not a valid image reference",
            hint="use NAME[:TAG] or NAME@sha256:DIGEST, e.g. --base python:3.11-slim",
        )
    if req.framework:
        catalogue.resolve(req.framework)
    if req.project_type:
        catalogue.project_type(req.project_type)
    recipe.check_pip(req.pip)
    recipe.check_apt(req.apt)


def _split(values: list[str] | None) -> tuple[str, ...]:
    from ds01.project.dockerfile import split_packages

    return tuple(split_packages(values or []))


def _info_rows(images: list[dict[str, Any]], all_users: bool) -> list[tuple[Any, ...]]:
    from ds01 import units

    rows = []
    for img in images:
        row: tuple[Any, ...] = (
            img["name"],
            units.format_size(int(img["size"])),
            str(img["created"]).replace("T", " ")[:16],
            img["framework"] or "-",
            ", ".join(img["containers"]) or "-",
        )
        rows.append(((img["user"],) if all_users else ()) + row)
    return rows


def _image_ref(name: str, user: str | None) -> str:
    import os

    from ds01 import naming

    return naming.image_name(naming.normalise_name(name), os.getuid()) if user is None else name


def _is_dir(path: Path) -> bool:
    import os
    import stat

    from ds01.errors import PermissionDenied

    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except PermissionError:
        raise PermissionDenied(f"you may not read {path}", hint="give a file you can read") from None
    except OSError:
        return False  # missing: reading it says so


# -- create ---------------------------------------------------------------------------------------------
@app.command("create")
@handle_errors
def create(
    name: NameArg = None,
    framework: Annotated[
        str | None,
        typer.Option(
            "--framework",
            "-f",
            help="pytorch, tensorflow, jax, pytorch-cpu or python; FRAMEWORK:VERSION picks a version.",
        ),
    ] = None,
    project_type: Annotated[
        str | None,
        typer.Option("--type", "-t", help="ml, cv, nlp, rl, audio, ts, llm or custom (custom adds nothing)."),
    ] = None,
    dockerfile: Annotated[
        str | None,
        typer.Option(
            "--dockerfile", help="Build this Dockerfile as it is (its folder is the build context)."
        ),
    ] = None,
    base: Annotated[
        str | None, typer.Option("--base", help="Build FROM this image instead of the catalogue's.")
    ] = None,
    packages: Annotated[
        list[str] | None, typer.Option("--packages", "-p", help="Extra pip packages.")
    ] = None,
    system: Annotated[list[str] | None, typer.Option("--system", "-s", help="Extra apt packages.")] = None,
    no_build: Annotated[bool, typer.Option("--no-build", help="Write the Dockerfile, do not build.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Build without the layer cache.")] = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the project's Dockerfile (unless there is one) and build ds01-UID/NAME:latest.

    The Dockerfile lives in your workspace (~/workspace/NAME/Dockerfile) and is the recipe of the
    environment; an existing one is built as it is. Your user is baked into the image.

    Examples:
      image-create thesis --framework pytorch --type nlp
      image-create demo --framework python --type custom       (no downloads: builds offline)
      image-create exp --dockerfile ~/exp/Dockerfile
    """
    import os

    from ds01 import naming
    from ds01.cli.select import new_name
    from ds01.project import build as bc
    from ds01.project.build_context import read_user_file

    client = connect(json_out)
    name = naming.normalise_name(new_name(client, name, command="image-create"))
    wrote = regenerated = False
    backup = None
    if dockerfile is not None:
        path = Path(os.path.abspath(os.path.expanduser(dockerfile)))
        if _is_dir(path):
            path = path / bc.DOCKERFILE
        read_user_file(path, what="the Dockerfile")  # a regular file you may read, of at most 1 MiB
        context = path.parent
    else:
        catalogue = bc.fetch_catalogue(client)
        framework, project_type = _interactive_answers(client, catalogue, framework, project_type)
        request = bc.RecipeRequest(name, framework, project_type, base, _split(packages), _split(system))
        _check_request(catalogue, request)  # before the workspace is made: a refusal changes nothing
        context = bc.ensure_workspace(client, name, user)
        made = bc.write_recipe(catalogue, context, request)
        path, wrote, regenerated, backup = (
            made.dockerfile,
            made.wrote_dockerfile,
            made.regenerated,
            made.backup,
        )
    out = client.out
    if not json_out:
        if wrote:
            out.info(f"wrote {path}")
        elif regenerated:
            out.info(f"regenerated {path} (your additions kept; old one in {backup})")
        else:
            out.info(f"using {path}")
    if no_build:
        if json_out:
            out.json({"image": _image_ref(name, user), "dockerfile": str(path), "built": False})
            return
        out.say(f"Dockerfile ready: {path}")
        out.hint(f"build it later with image-create {name}")
        return
    result = bc.build_project_image(
        client,
        name=name,
        context_dir=context,
        dockerfile=path,
        user=user,
        show=not json_out,
        no_cache=no_cache,
    )
    if json_out:
        payload: dict[str, Any] = dict(result.get("info") or {"image": result["image"]})
        payload.update(dockerfile=str(path), built=True)
        out.json(payload)
        return
    out.success(f"built {result['image']}")
    out.hint(f"next: container-deploy {name}")


# -- list -------------------------------------------------------------------------------------------------
@app.command("list")
@handle_errors
def list_images(
    all_users: Annotated[bool, typer.Option("--all-users", "-a", help="Everyone's images (admins).")] = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List your images: name, size, created, framework, and the containers using each.

    Examples:
      image-list
      image-list --json | jq '.[].name'
      image-list --all-users        (admins)
    """
    client = connect(json_out)
    images = client.call("GET", path_of("images"), {"all_users": all_users or None, "user": user})
    if json_out:
        client.out.json(images)
        return
    columns = ("image", "size", "created", "framework", "containers")
    client.out.table(
        (("user",) if all_users else ()) + columns,
        _info_rows(images, all_users),
        empty="no images yet: image-create NAME builds one",
    )


# -- update -----------------------------------------------------------------------------------------------

UPDATE_FLAGS = "--add PKG, --add-system PKG, --remove PKG, -r FILE, --rebuild or --rollback"


def _find_dockerfile(client: Client, name: str, user: str | None) -> tuple[Path, dict[str, Any] | None]:
    """The recipe of an image (where its label says it was built from, else the project's workspace), and
    the image's info (None when there is no image yet)."""
    import os

    from ds01.errors import NotFound
    from ds01.project import build as bc

    try:
        info = client.call("GET", path_of("images", name), {"user": user})
    except NotFound:
        info = None
    labelled = str((info or {}).get("dockerfile") or "")
    if labelled and os.path.lexists(labelled):
        return Path(labelled), info
    path = bc.workspace_root(client, user) / naming_of(name) / bc.DOCKERFILE
    if not os.path.lexists(path):
        raise NotFound(f"no Dockerfile for {name!r} at {path}", hint=f"create one with image-create {name}")
    return path, info


def naming_of(name: str) -> str:
    from ds01 import naming

    return naming.normalise_name(name.rsplit("/", 1)[-1].split(":", 1)[0])


@dataclass
class RecipeCheck:
    """Whether the recipe on disk differs from the one the image records."""

    changes: list[Change]
    rebuild: bool
    note: str


def _check_recipe(info: dict[str, Any] | None, dockerfile: Path, text: str) -> RecipeCheck:
    from ds01 import naming
    from ds01.project.recipe_hash import changes, parse_label, read_recipe

    if info is None:
        return RecipeCheck([], True, "no image built from it yet: building")
    labels = info.get("labels") if isinstance(info.get("labels"), dict) else {}
    recorded = parse_label(str((labels or {}).get(naming.LABEL_RECIPE) or ""))
    if recorded is None:
        return RecipeCheck(
            [], False,
            "cannot tell whether the recipe changed: the image records none (saved from a container, "
            "or built by an older ds01); pass --rebuild to build it from the Dockerfile",
        )  # fmt: skip
    found = changes(recorded, read_recipe(dockerfile.parent, dockerfile.name, text))
    note = ", ".join(c.describe() for c in found)
    return RecipeCheck(found, bool(found), f"{note[:1].upper()}{note[1:]}: rebuilding" if found else "")


@app.command("update")
@handle_errors
def update(
    name: NameArg = None,
    add: Packages = None,
    add_system: Annotated[list[str] | None, typer.Option("--add-system", help="apt packages to add.")] = None,
    remove: Annotated[list[str] | None, typer.Option("--remove", help="Packages to remove.")] = None,
    requirements: Annotated[
        str | None, typer.Option("-r", "--requirements", help="Add the packages of this requirements file.")
    ] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild even when nothing changed.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild without the layer cache.")] = False,
    recreate: Annotated[
        bool, typer.Option("--recreate", help="Then retire and redeploy the containers of the old image.")
    ] = False,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Go back to the previous image (each rebuild keeps one).")
    ] = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add or remove packages in the project's recipe and rebuild the image.

    Pip packages go to requirements.txt when the Dockerfile installs it, else to the Dockerfile's
    "your additions" section; each package appears once. The old file is kept as FILE.bak.
    With no flags it rebuilds when the Dockerfile or its requirements changed since the image was
    built, saying what changed. With no arguments at all, on a terminal, it asks.

    Examples:
      image-update                            # pick a project, then what to do
      image-update thesis                     # rebuild if you edited the Dockerfile or requirements
      image-update thesis --add "transformers datasets"
      image-update thesis --add-system ffmpeg --recreate
      image-update thesis --remove seaborn
      image-update thesis --rebuild --no-cache
      image-update thesis --rollback          # the image before the last rebuild
    """
    if rollback:
        edits = bool(add or add_system or remove or requirements or rebuild or no_cache)
        _rollback(name, user, json_out, recreate, edits)
        return
    asked = name or add or add_system or remove or requirements or rebuild or no_cache or recreate
    client = connect(json_out)
    if not asked:
        name, add, add_system, remove, rebuild = _ask_update(client, user, json_out)
    _update(client, name, add, add_system, remove, requirements, rebuild, no_cache, recreate, user, json_out)


def _update(
    client: Client, name: str | None, add: list[str] | None, add_system: list[str] | None,
    remove: list[str] | None, requirements: str | None, rebuild: bool, no_cache: bool, recreate: bool,
    user: str | None, json_out: bool,
) -> None:  # fmt: skip
    from ds01.project import build as bc
    from ds01.project import dockerfile as recipe
    from ds01.project.build_context import read_user_file

    name = _pick_image(client, name, "image-update", user)
    extra = bc.requirement_file_lines(Path(requirements).expanduser()) if requirements is not None else []
    dockerfile, info = _find_dockerfile(client, name, user)
    pip = [*_split(add), *extra]
    apt = list(recipe.check_apt(_split(add_system)))
    drop = list(_split(remove))
    text = read_user_file(dockerfile, what="the Dockerfile")
    req_path = dockerfile.parent / recipe.REQUIREMENTS
    in_requirements = recipe.uses_requirements(text) and req_path.exists()
    if not in_requirements:
        recipe.check_pip(pip)
    report: dict[str, list[str]] = {"added": [], "replaced": [], "removed": [], "edited": [], "backups": []}
    edit = recipe.add_packages(text, pip=[] if in_requirements else pip, apt=apt) if (
        (pip and not in_requirements) or apt) else recipe.Edit(text)  # fmt: skip
    report["added"] += edit.added
    report["replaced"] += edit.replaced
    dropped = recipe.remove_packages(edit.text, drop) if drop else recipe.Edit(edit.text)
    report["removed"] += dropped.removed
    if in_requirements:
        old_req = read_user_file(req_path, what="requirements.txt")
        added = recipe.add_requirements(old_req, pip)
        gone = recipe.remove_requirements(added.text, drop)
        report["added"] += added.added
        report["replaced"] += added.replaced
        report["removed"] += [r for r in gone.removed if r not in report["removed"]]
        if gone.text != old_req:
            report["backups"].append(str(bc.replace_with_backup(req_path, gone.text)))
            report["edited"].append(str(req_path))
    if dropped.text != text:
        report["backups"].insert(0, str(bc.replace_with_backup(dockerfile, dropped.text)))
        report["edited"].insert(0, str(dockerfile))
    not_found = [r for r in drop if r not in report["removed"]]
    check = RecipeCheck([], False, "")
    if not (report["edited"] or rebuild or no_cache):
        check = _check_recipe(info, dockerfile, text)
        if check.rebuild and not json_out:
            client.out.info(check.note)
    result: dict[str, Any] | None = None
    recreated: list[str] = []
    if report["edited"] or rebuild or no_cache or check.rebuild:
        result = bc.build_project_image(
            client, name=naming_of(name), context_dir=dockerfile.parent, dockerfile=dockerfile, user=user,
            show=not json_out, no_cache=no_cache,
        )  # fmt: skip
        recreated = _maybe_recreate(client, result, recreate, user)
    _report_update(client, name, dockerfile, report, not_found, result, recreated, check)


# -- image-update with no arguments: a menu on a terminal -------------------------------------------------

_MENU = (
    ("add", "Add Python packages (--add)"),
    ("add-system", "Add system packages (--add-system)"),
    ("remove", "Remove packages (--remove)"),
    ("edit", "Edit the Dockerfile in your editor, then rebuild if it changed"),
    ("rebuild", "Rebuild as it is (--rebuild)"),
)
UpdateAnswers = tuple[str, list[str] | None, list[str] | None, list[str] | None, bool]


def _ask_update(client: Client, user: str | None, json_out: bool) -> UpdateAnswers:
    """`image-update` alone: the project from a numbered list, then what to do, each answer one of the
    flags. Without a terminal: one line naming the flags (exit 2)."""
    from ds01.errors import UsageError
    from ds01.wizards.prompts import Choice, Questionary

    if json_out or not stdin_is_tty():
        raise UsageError(
            f"missing argument NAME for image-update (no terminal to ask on): `image-update NAME` rebuilds "
            f"what changed; {UPDATE_FLAGS} say what to change"
        )
    name = _pick_image(client, None, "image-update", user)
    ask = Questionary()
    action = ask.select(
        f"What to do with {naming_of(name)}",
        [Choice(value, title) for value, title in _MENU],
        default="add",
        flag="one of " + UPDATE_FLAGS,
    )
    if action == "edit":
        dockerfile, _ = _find_dockerfile(client, name, user)
        _edit(dockerfile, naming_of(name))
        return name, None, None, None, False
    if action == "rebuild":
        return name, None, None, None, True
    what = {"add": "Python packages to add", "add-system": "System (apt) packages to add"}
    packages = ask.text(
        f"{what.get(action, 'Packages to remove')} (space separated)", default="", flag=f"--{action}"
    )
    if not packages:
        raise UsageError("no packages given; nothing changed", hint=f"image-update {name} --{action} PKG")
    answer = [packages]
    return (
        name,
        answer if action == "add" else None,
        answer if action == "add-system" else None,
        answer if action == "remove" else None,
        False,
    )


def _edit(path: Path, name: str) -> None:
    """Open the Dockerfile in the user's $VISUAL or $EDITOR (as the user: this command runs as them)."""
    import os
    import shlex
    import shutil
    import subprocess

    from ds01.errors import OperationFailed, UsageError

    chosen = os.environ.get("VISUAL") or os.environ.get("EDITOR") or ""
    try:
        argv = shlex.split(chosen)
    except ValueError:
        raise UsageError(
            f"cannot read $EDITOR {chosen!r}", hint="set EDITOR to a command, e.g. nano"
        ) from None
    if not argv:
        found = next((e for e in ("sensible-editor", "nano", "vim", "vi") if shutil.which(e)), None)
        if found is None:
            raise UsageError("no editor found", hint="set EDITOR, e.g. EDITOR=nano image-update")
        argv = [found]
    try:
        code = subprocess.call([*argv, str(path)])
    except OSError as exc:
        raise UsageError(
            f"cannot run the editor {argv[0]!r}: {exc.strerror}", hint="set EDITOR to an installed editor"
        ) from None
    if code != 0:
        raise OperationFailed(
            f"the editor exited with {code}; nothing rebuilt",
            hint=f"image-update {name} rebuilds when the Dockerfile changed",
        )


def _rollback(name: str | None, user: str | None, json_out: bool, recreate: bool, edits: bool) -> None:
    from ds01.errors import UsageError

    if edits:
        raise UsageError(
            "--rollback goes back to the previous image; it takes no package changes or --rebuild",
            hint="run image-update NAME --rollback on its own",
        )
    client = connect(json_out)
    name = _pick_image(client, name, "image-update", user)
    result = client.call("POST", path_of("images", name, "rollback"), {"user": user})
    recreated = _maybe_recreate(client, result, recreate, user)
    out = client.out
    if out.json_mode:
        out.json({**result, "rolled_back": True, "recreated": recreated})
        return
    out.success(f"{result['image']} is the previous image again ({str(result['id'])[7:19]})")
    out.info(f"the one it replaced is kept: image-update {naming_of(name)} --rollback undoes this")
    stale = [s for s in result.get("stale_containers") or [] if s not in recreated]
    if recreated:
        out.success(f"recreated {', '.join(recreated)} with it")
    elif stale:
        out.hint(f"{', '.join(stale)} still run(s) the other image; add --recreate to move them over")


def _maybe_recreate(client: Client, result: dict[str, Any], recreate: bool, user: str | None) -> list[str]:
    """Containers of the old image: retire and redeploy them on --recreate or when the user agrees."""
    names = [str(n) for n in result.get("stale_containers") or []]
    if not names:
        return []
    if not recreate and stdin_is_tty() and not client.out.json_mode:
        from rich.prompt import Confirm

        recreate = Confirm.ask(
            f"Recreate {', '.join(names)} with the new image (the workspace stays)?",
            console=client.out.err_console,
            default=True,
        )
    if not recreate:
        return []
    done = []
    for container in names:
        entry = client.call("GET", path_of("containers", container), {"user": user})
        gpus = len(entry.get("gpus") or [])
        client.call("POST", path_of("retire"), {"name": container, "user": user})
        client.call(
            "POST", path_of("deploy"),
            {"name": container, "image": result["image"], "gpus": gpus or None, "cpu_only": gpus == 0,
             "user": user, "interface": "orchestration"},
        )  # fmt: skip
        done.append(container)
    return done


def _report_update(
    client: Client,
    name: str,
    dockerfile: Path,
    report: dict[str, list[str]],
    not_found: list[str],
    result: dict[str, Any] | None,
    recreated: list[str],
    check: RecipeCheck,
) -> None:
    out = client.out
    stale = [str(n) for n in (result or {}).get("stale_containers") or []]
    if out.json_mode:
        out.json({
            "image": (result or {}).get("image") or name, "dockerfile": str(dockerfile),
            "edited": report["edited"], "backups": report["backups"], "added": report["added"],
            "replaced": report["replaced"], "removed": report["removed"], "not_found": not_found,
            "rebuilt": result is not None, "stale_containers": stale, "recreated": recreated,
            "recipe_changes": [c.as_dict() for c in check.changes],
        })  # fmt: skip
        return
    for what, key in (("added", "added"), ("updated", "replaced"), ("removed", "removed")):
        if report[key]:
            out.info(f"{what}: {' '.join(report[key])}")
    for missing in not_found:
        out.warn(f"{missing} is not in the recipe; nothing to remove")
    for path, backup in zip(report["edited"], report["backups"], strict=False):
        out.info(f"edited {path} (previous version: {Path(backup).name})")
    if result is None:
        out.say(check.note if check.note else "nothing changed; pass --rebuild to rebuild anyway")
        return
    out.success(f"rebuilt {result['image']}")
    if recreated:
        out.success(f"recreated {', '.join(recreated)} with the new image")
    elif stale:
        out.hint(
            f"{', '.join(stale)} still run(s) the old image; image-update {naming_of(name)} --recreate, "
            f"or container-retire then container-deploy"
        )


# -- delete -----------------------------------------------------------------------------------------------
@app.command("delete")
@handle_errors
def delete(
    name: NameArg = None,
    force: Annotated[
        bool, typer.Option("--force", help="Stop and remove your containers using it first.")
    ] = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Delete one of your images. The Dockerfile and everything else in the workspace stay.

    Refuses while your containers use it, naming them, unless --force. Other users' containers never
    block it: the name goes, and their copy stays until they are done.

    Examples:
      image-delete thesis
      image-delete thesis --force
    """
    client = connect(json_out)
    name = _pick_image(client, name, "image-delete", user)
    result = client.call("DELETE", path_of("images", name), {"user": user, "force": force})
    out = client.out
    if json_out:
        out.json(result)
        return
    if result.get("removed_containers"):
        out.info(f"removed container(s): {', '.join(result['removed_containers'])}")
    out.success(f"deleted {result['image']}")
    if result.get("dockerfile_kept"):
        out.hint(
            f"the recipe stays: {result['dockerfile_kept']} (image-create {naming_of(name)} rebuilds it)"
        )


# -- build-base (admins) --------------------------------------------------------------------------------
@app.command("build-base")
@handle_errors
def build_base(
    only: Annotated[str | None, typer.Option("--only", help="Just this base, e.g. ds01/python:3.11.")] = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="No registry: build the Python base from the "
            "host's Debian mirror (debootstrap + docker import).",
        ),
    ] = False,
    mirror: Annotated[
        str | None, typer.Option("--mirror", help="Debian mirror (default: the host's).")
    ] = None,
    suite: Annotated[str | None, typer.Option("--suite", help="Debian suite (default: the host's).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Build the lab's base images of the catalogue (admins).

    With no registry reachable, a base marked `offline: debian` is built from the host's own Debian
    mirror instead (about a minute), so ds01 works air-gapped.

    Examples:
      ds01 image build-base
      ds01 image build-base --offline --only ds01/python:3.11
    """
    from ds01 import units
    from ds01.project.build import _view
    from ds01.project.build_view import Follower

    client = connect(json_out)
    follower = None if json_out else Follower(_view(client, only or "lab bases"))
    try:
        results = client.call(
            "POST", path_of("images", "build-base"),
            {"offline": offline, "name": only, "mirror": mirror, "suite": suite},
            on_event=follower.on_event if follower else None,
        )  # fmt: skip
    except BaseException as exc:
        if follower is not None:
            follower.done(str(exc) or "interrupted")
        raise
    if follower is not None:
        follower.done(None)
    if json_out:
        client.out.json(results)
        return
    for r in results:
        client.out.success(
            f"{r['image']}: {r['method']}, {r['seconds']:.0f} s, {units.format_size(r['size'])}"
        )


# -- push / save: the image off the server (ds01.cli.image_transfer) --------------------------------
from ds01.cli import image_transfer as _transfer  # noqa: E402

app.command("push")(_transfer.push)
app.command("save")(_transfer.save)

# -- bases: what this server can build from (ds01.cli.image_bases) ----------------------------------------
from ds01.cli import image_bases as _bases  # noqa: E402

app.command("bases")(_bases.bases)
