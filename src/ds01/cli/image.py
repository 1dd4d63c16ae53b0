"""The `image` group: `image VERB` and `ds01 image VERB` (and the `image-VERB` scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ds01.cli.common import JsonOpt, UserOpt, handle_errors, new_app, stdin_is_tty

if TYPE_CHECKING:
    from ds01.atomic.build import BuildView
    from ds01.project.catalogue import Catalogue
    from ds01.atomic.images import CreateResult, ImageInfo, UpdateResult
    from ds01.context import Context

app = new_app("image", "Build and manage your per-project images (the Dockerfile is the recipe).")

NameArg = Annotated[
    str | None, typer.Argument(metavar="NAME", help="The project (image) name.", show_default=False)
]
Packages = Annotated[list[str] | None, typer.Option(help="Packages, space or comma separated; repeatable.")]


def _context(json_out: bool = False) -> Context:
    from ds01.context import Context

    return Context.load(json_mode=json_out)


def _views(ctx: Context) -> Any:
    """A factory of build views: live on a terminal, plain lines on stderr otherwise."""
    from ds01.atomic.build import make_view

    def factory(title: str) -> BuildView:
        interactive = stdin_is_tty() and ctx.out.stderr.isatty() and not ctx.out.json_mode
        return make_view(
            interactive=interactive, console=ctx.out.err_console, stream=ctx.out.stderr, title=title
        )

    return factory


def _pick_image(ctx: Context, name: str | None, command: str, user: str | None) -> str:
    if name:
        return name
    from ds01.errors import NotFound, UsageError

    if not stdin_is_tty():
        raise UsageError(
            f"missing argument NAME for {command}",
            hint=f"pass it, e.g. `{command} thesis` (no terminal to ask on)",
        )
    from rich.prompt import IntPrompt

    from ds01.atomic.images import list_images

    images = list_images(ctx, ctx.target_user(user))
    if not images:
        raise NotFound(f"no image to pick for {command}", hint="see image-list, or image-create NAME")
    for i, img in enumerate(images, 1):
        ctx.out.err_console.print(f"  {i}) {img.name}  [dim]{img.framework or '-'}, {img.created}[/dim]")
    pick = IntPrompt.ask(
        "Which image",
        console=ctx.out.err_console,
        choices=[str(i) for i in range(1, len(images) + 1)],
        show_choices=False,
    )
    return images[pick - 1].name


def _ask_choice(ctx: Context, what: str, choices: dict[str, str], default: str) -> str:
    from rich.prompt import Prompt

    for key, title in choices.items():
        ctx.out.err_console.print(f"  [bold]{key}[/bold]  {title}", highlight=False)
    return Prompt.ask(
        what, console=ctx.out.err_console, choices=list(choices), default=default, show_choices=False
    )


def _interactive_answers(
    ctx: Context, catalogue: Catalogue, framework: str | None, project_type: str | None
) -> tuple[str | None, str | None]:
    """On a terminal, ask for what the flags left open; elsewhere the catalogue's defaults apply."""
    if not stdin_is_tty() or ctx.out.json_mode:
        return framework, project_type
    if framework is None:
        framework = _ask_choice(
            ctx,
            "Framework",
            {k: f.title for k, f in catalogue.frameworks.items()},
            catalogue.default_framework,
        )
    if project_type is None:
        project_type = _ask_choice(
            ctx, "Project type", {k: t.title for k, t in catalogue.types.items()}, catalogue.default_type
        )
    return framework, project_type


def _split(values: list[str] | None) -> tuple[str, ...]:
    from ds01.project.dockerfile import split_packages

    return tuple(split_packages(values or []))


def _info_rows(images: list[ImageInfo], all_users: bool) -> list[tuple[Any, ...]]:
    from ds01 import units

    rows = []
    for img in images:
        row: tuple[Any, ...] = (
            img.name,
            units.format_size(img.size),
            img.created.replace("T", " ")[:16],
            img.framework or "-",
            ", ".join(img.containers) or "-",
        )
        rows.append(((img.user,) if all_users else ()) + row)
    return rows


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
        Path | None,
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
    from ds01.project.catalogue import load_catalogue
    from ds01.atomic.images import CreateRequest, create_image
    from ds01.cli.select import new_name

    ctx = _context(json_out)
    owner = ctx.target_user(user)
    name = new_name(ctx, name, command="image-create")
    if dockerfile is None:
        catalogue = load_catalogue(ctx.config.source)
        framework, project_type = _interactive_answers(ctx, catalogue, framework, project_type)
    req = CreateRequest(
        name=name,
        framework=framework,
        project_type=project_type,
        dockerfile=dockerfile,
        base=base,
        pip=_split(packages),
        apt=_split(system),
        build=not no_build,
        no_cache=no_cache,
    )
    _report_create(ctx, create_image(ctx, owner, req, _views(ctx)))


def _report_create(ctx: Context, result: CreateResult) -> None:
    if ctx.out.json_mode:
        payload: dict[str, Any] = result.info.as_dict() if result.info else {"image": result.ref.ref}
        payload.update(dockerfile=str(result.dockerfile), built=result.build is not None)
        ctx.out.json(payload)
        return
    if result.wrote_dockerfile:
        ctx.out.info(f"wrote {result.dockerfile}")
    elif result.regenerated:
        ctx.out.info(f"regenerated {result.dockerfile} (your additions kept; old one in {result.backup})")
    else:
        ctx.out.info(f"using {result.dockerfile}")
    if result.build is None:
        ctx.out.say(f"Dockerfile ready: {result.dockerfile}")
        ctx.out.hint(f"build it later with image-create {result.ref.name}, or: {result.build_command}")
        return
    ctx.out.success(f"built {result.ref.ref}")
    ctx.out.hint(f"next: container-deploy {result.ref.name}")


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
    from ds01.atomic.images import list_images as list_all
    from ds01.errors import PermissionDenied

    ctx = _context(json_out)
    if all_users and not ctx.is_admin:
        raise PermissionDenied("only admins may list everyone's images", hint="drop --all-users")
    images = list_all(ctx, None if all_users else ctx.target_user(user))
    if json_out:
        ctx.out.json([i.as_dict() for i in images])
        return
    columns = ("image", "size", "created", "framework", "containers")
    ctx.out.table(
        (("user",) if all_users else ()) + columns,
        _info_rows(images, all_users),
        empty="no images yet: image-create NAME builds one",
    )


# -- update -----------------------------------------------------------------------------------------------
@app.command("update")
@handle_errors
def update(
    name: NameArg = None,
    add: Packages = None,
    add_system: Annotated[list[str] | None, typer.Option("--add-system", help="apt packages to add.")] = None,
    remove: Annotated[list[str] | None, typer.Option("--remove", help="Packages to remove.")] = None,
    requirements: Annotated[
        Path | None, typer.Option("-r", "--requirements", help="Add the packages of this requirements file.")
    ] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild even when nothing changed.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild without the layer cache.")] = False,
    recreate: Annotated[
        bool, typer.Option("--recreate", help="Then retire and redeploy the containers of the old image.")
    ] = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add or remove packages in the project's recipe and rebuild the image.

    Pip packages go to requirements.txt when the Dockerfile installs it, else to the Dockerfile's
    "your additions" section; each package appears once. The old file is kept as FILE.bak.

    Examples:
      image-update thesis --add "transformers datasets"
      image-update thesis --add-system ffmpeg --recreate
      image-update thesis --remove seaborn
      image-update thesis --rebuild --no-cache
    """
    from ds01.atomic.images import UpdateRequest, resolve_ref, update_image

    ctx = _context(json_out)
    ref = resolve_ref(ctx, _pick_image(ctx, name, "image-update", user), user=user)
    req = UpdateRequest(
        add=_split(add),
        add_system=_split(add_system),
        remove=_split(remove),
        requirements_file=requirements,
        rebuild=rebuild,
        no_cache=no_cache,
    )
    result = update_image(ctx, ref, req, _views(ctx))
    recreated = _maybe_recreate(ctx, result, recreate)
    _report_update(ctx, result, recreated)


def _maybe_recreate(ctx: Context, result: UpdateResult, recreate: bool) -> list[str]:
    """Containers of the old image: retire and redeploy them on --recreate or when the user agrees."""
    if not result.stale:
        return []
    from ds01 import naming

    names = [naming.split_container_name(c.name)[0] for c in result.stale]
    if not recreate and stdin_is_tty() and not ctx.out.json_mode:
        from rich.prompt import Confirm

        recreate = Confirm.ask(
            f"Recreate {', '.join(names)} with the new image (the workspace stays)?",
            console=ctx.out.err_console,
            default=True,
        )
    if not recreate:
        return []
    return [_recreate_one(ctx, result, c.id) for c in result.stale]


def _recreate_one(ctx: Context, result: UpdateResult, container_id: str) -> str:
    """Retire one container and deploy it again from the new image, with the same GPU count and workspace."""
    from ds01 import naming
    from ds01.atomic.container_create import CreateRequest
    from ds01.atomic.container_view import ContainerView
    from ds01.atomic.containers import check_owner
    from ds01.orchestrators.deploy import deploy_container
    from ds01.orchestrators.retire import retire_container

    view = ContainerView.from_inspect(ctx.gateway.inspect(container_id))
    check_owner(ctx, view)
    workspace = view.labels.get(naming.LABEL_WORKSPACE)
    slots = len(view.gpu_slots)
    retire_container(ctx, view)
    request = CreateRequest(
        name=view.name,
        image=result.ref.ref,
        gpus=slots or None,
        cpu_only=slots == 0,
        workspace=Path(workspace) if workspace else None,
        interface="orchestration",
    )
    deploy_container(ctx, result.ref.owner, request)
    return view.name


def _report_update(ctx: Context, result: UpdateResult, recreated: list[str]) -> None:
    if ctx.out.json_mode:
        ctx.out.json({
            "image": result.ref.ref, "dockerfile": str(result.dockerfile),
            "edited": [str(p) for p in result.edited], "backups": [str(p) for p in result.backups],
            "added": result.added, "replaced": result.replaced, "removed": result.removed,
            "not_found": result.not_found, "rebuilt": result.build is not None,
            "stale_containers": [c.name for c in result.stale], "recreated": recreated,
        })  # fmt: skip
        return
    for what, items in (("added", result.added), ("updated", result.replaced), ("removed", result.removed)):
        if items:
            ctx.out.info(f"{what}: {' '.join(items)}")
    for missing in result.not_found:
        ctx.out.warn(f"{missing} is not in the recipe; nothing to remove")
    for path, backup in zip(result.edited, result.backups, strict=False):
        ctx.out.info(f"edited {path} (previous version: {backup.name})")
    if result.build is None:
        ctx.out.say("nothing changed; pass --rebuild to rebuild anyway")
        return
    ctx.out.success(f"rebuilt {result.ref.ref}")
    if recreated:
        ctx.out.success(f"recreated {', '.join(recreated)} with the new image")
    elif result.stale:
        names = ", ".join(c.name for c in result.stale)
        ctx.out.hint(
            f"{names} still run(s) the old image; image-update {result.ref.name} --recreate, "
            f"or container-retire then container-deploy"
        )


# -- delete -----------------------------------------------------------------------------------------------
@app.command("delete")
@handle_errors
def delete(
    name: NameArg = None,
    force: Annotated[
        bool, typer.Option("--force", help="Stop and remove the containers using it first.")
    ] = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Delete one of your images. The Dockerfile and everything else in the workspace stay.

    Refuses while containers use the image, naming them, unless --force.

    Examples:
      image-delete thesis
      image-delete thesis --force
    """
    from ds01.atomic.images import delete_image, resolve_ref

    ctx = _context(json_out)
    ref = resolve_ref(ctx, _pick_image(ctx, name, "image-delete", user), user=user)
    result = delete_image(ctx, ref, force=force)
    if json_out:
        ctx.out.json(
            {
                "image": ref.ref,
                "id": result.image_id,
                "removed_containers": result.removed_containers,
                "dockerfile_kept": result.dockerfile,
            }
        )
        return
    if result.removed_containers:
        ctx.out.info(f"removed container(s): {', '.join(result.removed_containers)}")
    ctx.out.success(f"deleted {ref.ref}")
    if result.dockerfile:
        ctx.out.hint(f"the recipe stays: {result.dockerfile} (image-create {ref.name} rebuilds it)")


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
    from ds01.atomic.base_images import build_bases

    ctx = _context(json_out)
    results = build_bases(
        ctx, only=only, offline=offline, mirror=mirror, suite=suite, make_view=_views(ctx), say=ctx.out.info
    )
    for r in results:
        ctx.log("image_build", None, image=r.image, method=r.method, seconds=round(r.seconds, 1), base=True)
    if json_out:
        ctx.out.json(
            [
                {"image": r.image, "method": r.method, "seconds": round(r.seconds, 1), "size": r.size}
                for r in results
            ]
        )
        return
    for r in results:
        ctx.out.success(f"{r.image}: {r.method}, {r.seconds:.0f} s, {units.format_size(r.size)}")
