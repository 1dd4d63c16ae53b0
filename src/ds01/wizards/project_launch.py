"""`project-launch`: from a project to a running container, building its image when it is missing.

The client reads the project's files as the user (the recipe, `[tool.ds01]`), builds through
`build_project_image` (the context packed here, streamed to ds01d) and deploys with `POST /v1/deploy`, which
runs wholly inside ds01d.

Experiments (`project-launch NAME --from PROJECT`): NAME gets a workspace of its own (made by ds01d), into
which the client copies, as the user, PROJECT's folders and its code and config files (no data, models or
results, no recipe) and writes `ds01-experiment.toml` naming PROJECT. NAME then runs PROJECT's image: nothing
is built for it, and every later `project-launch NAME` does the same.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ds01 import naming
from ds01.client import path_of
from ds01.errors import NotFound, UsageError
from ds01.project import files

DOCKERFILE = "Dockerfile"
EXPERIMENT_FILE = "ds01-experiment.toml"
# what an experiment's workspace gets from its project: the folders, and files of these kinds up to 1 MiB
CODE_SUFFIXES = frozenset(
    {".py", ".pyi", ".ipynb", ".sh", ".bash", ".r", ".jl", ".yaml", ".yml", ".toml", ".json", ".cfg"}
    | {".ini", ".conf", ".txt", ".md", ".rst"}
)
RECIPE_FILES = frozenset({DOCKERFILE, "requirements.txt", ".dockerignore"})  # the image stays the project's
MAX_COPY_BYTES = 1 << 20
MAX_COPY_FILES = 2000


@dataclass(frozen=True)
class Project:
    name: str
    workspace: Path
    image: str
    image_ready: bool
    default_gpus: int | None
    from_project: str | None = None  # an experiment: the project whose image it runs

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "workspace": str(self.workspace),
            "image": self.image,
            "image_ready": self.image_ready,
            "default_gpus": self.default_gpus,
            "from": self.from_project,
        }


@dataclass(frozen=True)
class Launch:
    project: Project
    built: bool
    deployment: dict[str, Any]  # the result of POST /v1/deploy: {action, entry, idle_timeout_h, ...}


def workspaces(client: Any, user: str | None = None) -> tuple[Path, list[str]]:
    """(`<workspace_root>/<owner>`, its project folders) as ds01d sees them."""
    answer = client.call("GET", path_of("workspaces"), {"user": user})
    return Path(answer["root"]), list(answer["projects"])


def image_ready(client: Any, name: str, user: str | None) -> bool:
    try:
        client.call("GET", path_of("images", name), {"user": user})
    except NotFound:
        return False
    return True


def experiment_of(workspace: Path) -> str | None:
    """The project an experiment's workspace names in `ds01-experiment.toml` (None: not an experiment)."""
    try:
        table = tomllib.loads((workspace / EXPERIMENT_FILE).read_text()).get("experiment", {})
        source = table.get("from") if isinstance(table, dict) else None
        return naming.normalise_name(source) if isinstance(source, str) else None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, UsageError):
        return None


def _default_gpus(workspace: Path) -> int | None:
    gpus = files.read_tool_table(workspace).get("gpus")
    return gpus if isinstance(gpus, int) and not isinstance(gpus, bool) else None


def project_info(client: Any, root: Path, name: str, user: str | None) -> Project:
    workspace = root / name
    source = experiment_of(workspace)
    if source is not None and source != name:  # an experiment: its project's image and GPU default
        return Project(
            name,
            workspace,
            naming.image_name(source, files.owner_uid(user)),
            image_ready(client, source, user),
            _default_gpus(root / source),
            source,
        )
    return Project(
        name,
        workspace,
        naming.image_name(name, files.owner_uid(user)),
        image_ready(client, name, user),
        _default_gpus(workspace),
    )


def is_project(project: Project) -> bool:
    """Something to launch: a recipe, an image, or an experiment of another project."""
    return (
        project.from_project is not None
        or project.image_ready
        or files.exists(project.workspace / DOCKERFILE)
    )


def not_a_project(name: str) -> NotFound:
    return NotFound(
        f"{name!r} is not a project yet (no recipe, no image)",
        hint=f"run it from a project of yours: project-launch {name} --from PROJECT; or project-init {name}",
    )


def list_projects(client: Any, user: str | None = None) -> list[Project]:
    """Folders of the workspace root that hold a Dockerfile, a [tool.ds01] table or an experiment file."""
    root, names = workspaces(client, user)
    found = [
        n
        for n in names
        if files.exists(root / n / DOCKERFILE)
        or files.read_tool_table(root / n)
        or files.exists(root / n / EXPERIMENT_FILE)
    ]
    return [project_info(client, root, n, user) for n in found]


def launch_project(
    client: Any,
    name: str,
    *,
    user: str | None = None,
    rebuild: bool = False,
    gpus: int | None = None,
    cpu_only: bool = False,
    show: bool = True,
    deploy_call: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    from_project: str | None = None,
    say: Callable[[str], None] | None = None,
) -> Launch:
    """`deploy_call` sends the deploy body (`--wait`: the caller's waiting call); default: a plain deploy.
    `from_project`: NAME is (or becomes) an experiment running that project's image."""
    name = naming.normalise_name(name)
    root, _ = workspaces(client, user)
    project = project_info(client, root, name, user)
    if from_project is not None:
        project = start_experiment(client, root, project, naming.normalise_name(from_project), user, say)
    source = project_info(client, root, project.from_project, user) if project.from_project else project
    if not files.exists(source.workspace / DOCKERFILE) and not source.image_ready:
        raise not_a_project(name) if source is project else _no_source(source.name)
    built = False
    if rebuild or not source.image_ready:
        from ds01.project.build import build_project_image

        build_project_image(
            client, name=source.name, context_dir=source.workspace, user=user, interface="wizard", show=show
        )
        built = True
        if rebuild:
            _retire_old(client, name, user)
    if not cpu_only and gpus is None:
        gpus = project.default_gpus
    body: dict[str, Any] = {
        "name": name,
        "gpus": gpus or None,
        "cpu_only": cpu_only or not gpus,
        "user": user,
        "interface": "wizard",
    }
    if project.from_project:
        body["image"] = source.image
    if deploy_call is not None:
        deployment = deploy_call(body)
    else:
        from ds01.cluster.submit import follow  # cluster mode: a Slurm job to submit

        deployment = follow(client, client.call("POST", path_of("deploy"), body), image=body.get("image"))
    return Launch(project_info(client, root, name, user), built, deployment)


def _no_source(source: str) -> NotFound:
    return NotFound(
        f"no project named {source!r} to launch from (no recipe, no image)",
        hint="name one of your projects (project-launch without NAME lists them), or project-init it first",
    )


def start_experiment(
    client: Any,
    root: Path,
    project: Project,
    source: str,
    user: str | None,
    say: Callable[[str], None] | None,
) -> Project:
    """`--from SOURCE`: check NAME may become (or already is) an experiment of SOURCE, then make its
    workspace (ds01d) and fill it (here, as the user). Every refusal comes before anything is made."""
    name = project.name
    if source == name:
        raise UsageError(
            f"--from {source}: an experiment needs another project", hint=f"project-launch {name}"
        )
    if project.from_project is not None and project.from_project != source:
        raise UsageError(
            f"{name} is an experiment of {project.from_project}, not of {source}",
            hint=f"project-launch {name} (or --from {project.from_project}), or pick a new name",
        )
    if project.from_project == source:
        return project  # made before: launched again as it is
    if project.from_project is None and (project.image_ready or files.exists(project.workspace / DOCKERFILE)):
        raise UsageError(
            f"{name} is a project of its own (it has a recipe or an image)",
            hint=f"launch it without --from: project-launch {name}",
        )
    base = project_info(client, root, source, user)
    if base.from_project is not None:  # an experiment of an experiment runs the same project's image
        base = project_info(client, root, base.from_project, user)
    if not base.image_ready and not files.exists(base.workspace / DOCKERFILE):
        raise _no_source(source)
    workspace, _ = files.request_workspace(client, name, user)
    created = files.as_owner(
        files.owner_uid(user),
        lambda: fill_experiment(base.workspace, workspace, base.name, base.image),
        lambda c: c.as_dict(),
        files.Created.from_dict,
    )
    if say is not None and created.changed:
        say(
            f"[dim]{name}: own workspace {workspace} with {base.name}'s folders and code "
            f"({len(created.files)} files); it runs {base.image}[/dim]"
        )
    return project_info(client, root, name, user)


def experiment_note(name: str, source: str, image: str) -> str:
    return (
        f"# {name} is an experiment of the project {source} (project-launch {name} --from {source}).\n"
        f"# It runs {source}'s image ({image}) with this folder as /workspace. When it was made, {source}'s\n"
        "# folders and its code and config files were copied here; data, models, results and the recipe\n"
        f"# were not. Change the environment in {source} (image-update {source}): each experiment runs the\n"
        "# new image from its next launch. Delete this file to make the folder a project of its own\n"
        "# (project-init).\n"
        f'[experiment]\nfrom = "{source}"\ncreated = "{naming.utc_now_iso()}"\n'
    )


def fill_experiment(source_ws: Path, target: Path, source: str, image: str) -> files.Created:
    """Copy `source_ws`'s folders and small code/config files into `target` (nothing overwritten, no link
    followed, hidden folders such as .git left out), then write the experiment file. Runs as the owner."""
    import os
    import shutil
    import stat

    result = files.Created(target)
    copied = 0
    for top, dirs, names in os.walk(source_ws, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (Path(top) / d).is_symlink())
        rel = Path(top).relative_to(source_ws)
        folder = target / rel
        result.dirs.extend(files.make_dirs(folder))
        for n in sorted(names):
            src = Path(top) / n
            if n in RECIPE_FILES or n == EXPERIMENT_FILE or Path(n).suffix.lower() not in CODE_SUFFIXES:
                continue
            try:
                st = src.lstat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_COPY_BYTES:
                continue
            if copied >= MAX_COPY_FILES:
                result.notes[:] = [f"stopped copying after {MAX_COPY_FILES} files"]
                break
            try:
                fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            with os.fdopen(fd, "rb") as fin:
                try:
                    out = os.open(
                        folder / n, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                        stat.S_IMODE(st.st_mode) & 0o755 | 0o600,
                    )  # fmt: skip
                except FileExistsError:
                    continue
                with os.fdopen(out, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
            copied += 1
            result.files.append(folder / n)
    note = target / EXPERIMENT_FILE
    if files.write_new(note, experiment_note(target.name, source, image)):
        result.files.append(note)
    return result


def _retire_old(client: Any, name: str, user: str | None) -> None:
    """After a rebuild the running container still has the old image: hand it back (the workspace stays)."""
    try:
        client.call("POST", path_of("retire"), {"name": name, "user": user})
    except NotFound:
        return
