"""The client's side of a build: the recipe written and edited with the user's own rights, the project
folder packed (`ds01.project.build_context`) and uploaded to `POST /v1/images/build`, and the progress
shown from the engine's events ds01d forwards (a live view on a terminal, plain lines otherwise).

Nothing here talks to the engine or reads the host's config: the workspace and the catalogue come from
ds01d (`GET /v1/workspaces`, `POST /v1/workspaces`, `GET /v1/catalogue`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ds01 import naming
from ds01.client import path_of, upload_file
from ds01.errors import Ds01Error, PermissionDenied
from ds01.project import dockerfile as recipe
from ds01.project.build_context import pack_context, read_user_file

if TYPE_CHECKING:
    from ds01.client import Client
    from ds01.project.build_view import BuildView
    from ds01.project.catalogue import Catalogue

DOCKERFILE = "Dockerfile"
OUTSIDE_NAME = ".ds01.Dockerfile"  # a Dockerfile kept outside its build context goes in under this name
DOCKERIGNORE = """\
# ds01: what an image build does not need (keeps data and results out of the build context)
data/
models/
results/
checkpoints/
wandb/
mlruns/
.git/
.cache/
**/__pycache__/
**/.ipynb_checkpoints/
*.bak
"""


# -- files in the user's own space (the client runs as the user) ----------------------------------------


def _os_error(path: Path, exc: OSError) -> Ds01Error:
    if isinstance(exc, PermissionError):
        return PermissionDenied(f"you may not write {path}", hint="check the folder's permissions")
    return Ds01Error(f"cannot write {path}: {exc.strerror or exc}")


def write_new(path: Path, text: str, mode: int = 0o644) -> bool:
    """Create `path` with `text`; an existing file (or link) is left alone (False)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except FileExistsError:
        return False
    except OSError as exc:
        raise _os_error(path, exc) from None
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return True


def _replace(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def replace_with_backup(path: Path, text: str) -> Path:
    """Write `text` to `path`, keeping the old content as `path.bak`."""
    old = read_user_file(path, what="file")
    backup = path.with_name(path.name + ".bak")
    try:
        _replace(backup, old)
        _replace(path, text)
    except OSError as exc:
        raise _os_error(path, exc) from None
    return backup


# -- workspace and catalogue (from ds01d) ---------------------------------------------------------------


def workspace_root(client: Client, user: str | None = None) -> Path:
    answer = client.call("GET", path_of("workspaces"), {"user": user})
    return Path(str(answer["root"]))


def ensure_workspace(client: Client, name: str, user: str | None = None) -> Path:
    """`<root>/<user>/<name>`, made by ds01d (owned by the user) when it is missing."""
    answer = client.call("POST", path_of("workspaces"), {"name": name, "user": user})
    return Path(str(answer["path"]))


def fetch_catalogue(client: Client) -> Catalogue:
    from ds01.project.catalogue import catalogue_from_json

    return catalogue_from_json(client.call("GET", path_of("catalogue")))


# -- the recipe -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecipeRequest:
    name: str
    framework: str | None = None
    project_type: str | None = None
    base: str | None = None
    pip: tuple[str, ...] = ()
    apt: tuple[str, ...] = ()


@dataclass
class RecipeResult:
    dockerfile: Path
    wrote_dockerfile: bool = False
    regenerated: bool = False
    backup: Path | None = None


def _base_for(catalogue: Catalogue, req: RecipeRequest, old: dict[str, str]) -> tuple[str, str]:
    """(base image, framework label): the flags, else the old recipe's, else the catalogue's default."""
    if req.framework:
        choice = catalogue.resolve(req.framework)
        return req.base or choice.image, choice.label
    if req.base:
        return req.base, old.get(naming.LABEL_FRAMEWORK) or "custom"
    if old.get(naming.LABEL_BASE_IMAGE):
        return old[naming.LABEL_BASE_IMAGE], old.get(naming.LABEL_FRAMEWORK) or "custom"
    choice = catalogue.resolve(catalogue.default_framework)
    return choice.image, choice.label


def _spec(
    catalogue: Catalogue, req: RecipeRequest, name: str, workspace: Path, old: dict[str, str]
) -> recipe.DockerfileSpec:
    base_image, framework = _base_for(catalogue, req, old)
    kind = catalogue.project_type(
        req.project_type or old.get(naming.LABEL_PROJECT_TYPE) or catalogue.default_type
    )
    requirements = (workspace / recipe.REQUIREMENTS).exists()
    apt, pip = catalogue.packages(kind.name)
    return recipe.DockerfileSpec(
        project=name,
        base_image=base_image,
        framework=framework,
        project_type=kind.name,
        apt=tuple(dict.fromkeys(apt + req.apt)),
        pip=tuple(
            dict.fromkeys((() if requirements else pip) + req.pip)
        ),  # requirements.txt replaces the set
        requirements=requirements,
    )


def write_recipe(catalogue: Catalogue, workspace: Path, req: RecipeRequest) -> RecipeResult:
    """The project's Dockerfile: written when missing; a generated one is regenerated (the user's additions
    kept, the old file as `.bak`) when flags ask for something; a hand-written one is never touched."""
    name = naming.normalise_name(req.name)
    recipe.check_pip(req.pip)
    recipe.check_apt(req.apt)
    path = workspace / DOCKERFILE
    result = RecipeResult(path)
    asked = req.framework or req.project_type or req.base or req.pip or req.apt
    if os.path.lexists(path):
        old = read_user_file(path, what="the Dockerfile")
        if not (asked and recipe.is_generated(old)):
            return result  # the user's recipe wins; it is built as it is
        spec = _spec(catalogue, req, name, workspace, recipe.read_labels(old))
        spec = recipe.DockerfileSpec(**{**spec.__dict__, "additions": recipe.additions(old)})
        result.backup = replace_with_backup(path, recipe.render(spec))
        result.regenerated = True
        return result
    spec = _spec(catalogue, req, name, workspace, {})
    result.wrote_dockerfile = write_new(path, recipe.render(spec))
    write_new(workspace / ".dockerignore", DOCKERIGNORE)
    return result


# -- the build --------------------------------------------------------------------------------------------


def _view(client: Client, title: str) -> BuildView:
    from ds01.project.build_view import make_view

    out = client.out
    interactive = sys.stdin.isatty() and out.stderr.isatty() and not out.json_mode
    return make_view(interactive=interactive, console=out.err_console, stream=out.stderr, title=title)


def _dockerfile_member(context: Path, dockerfile: Path) -> str:
    """Its name in the archive: top level (ds01d accepts no folder on the way to it)."""
    return dockerfile.name if dockerfile.parent == context and dockerfile.name else OUTSIDE_NAME


def _recipe_label(context: Path, dockerfile: Path, text: str) -> str:
    """What this build is made from, recorded on the image (`image-update NAME` compares it)."""
    from ds01.project.recipe_hash import recipe_label

    return recipe_label(context, dockerfile, text)


def build_project_image(
    client: Client,
    *,
    name: str,
    context_dir: str | os.PathLike[str],
    dockerfile: str | os.PathLike[str] = "Dockerfile",
    user: str | None = None,
    interface: str = "atomic",
    labels: dict[str, str] | None = None,
    show: bool = True,
    no_cache: bool = False,
) -> dict[str, Any]:
    """Pack `context_dir` (as the user), upload it, and show the build; ds01d's result dict is returned
    (`image`, `id`, `steps`, `seconds`, `old_id`, `stale_containers`, `info`)."""
    from ds01.project.build_view import Follower

    context = Path(os.path.abspath(context_dir))
    path = Path(dockerfile)
    path = path if path.is_absolute() else context / path
    path = Path(os.path.abspath(path))
    text = read_user_file(path, what="the Dockerfile")
    member = _dockerfile_member(context, path)
    sent = dict(recipe.read_labels(text))
    sent.update(labels or {})
    sent.setdefault(naming.LABEL_DOCKERFILE, str(path))
    sent[naming.LABEL_RECIPE] = _recipe_label(context, path, text)
    body = {
        "name": name, "dockerfile": member, "labels": sent, "user": user, "interface": interface,
        "no_cache": no_cache,
    }  # fmt: skip
    with tempfile.TemporaryFile(prefix="ds01-context-") as archive:
        pack_context(context, member, text, archive)
        length = archive.tell()
        archive.seek(0)
        follower = Follower(_view(client, naming.normalise_name(name))) if show else None
        try:
            result = client.call(
                "POST", path_of("images", "build"), body,
                on_event=follower.on_event if follower else None,
                upload=upload_file(archive), upload_length=length,
            )  # fmt: skip
        except BaseException as exc:
            if follower is not None:
                follower.done(str(exc) or "interrupted")
            raise
        if follower is not None:
            follower.done(None)
    if not isinstance(result, dict):
        raise Ds01Error(f"ds01d sent an unexpected build result: {result!r:.200}")
    return result


def requirement_file_lines(path: Path) -> list[str]:
    """The packages of a requirements file the user named (a regular file of at most 1 MiB)."""
    return recipe.requirement_lines(read_user_file(path, what="the requirements file"))
