"""`container-retire`: stop + remove, optionally saving what was installed into the project image first.

The GPU is free the moment this returns (the container carrying its labels is gone); the workspace and the
image stay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ds01 import naming
from ds01.atomic.container_view import ContainerView
from ds01.atomic.containers import stop_container
from ds01.atomic.removal import remove_and_release
from ds01.context import Context
from ds01.events import crash_point

# pip's record of an installed distribution: <site-packages>/<name>-<version>.dist-info
DIST_INFO = re.compile(r"/(?:site|dist)-packages/([A-Za-z0-9_.]+?)-([0-9][^/]*?)\.dist-info$")


@dataclass(frozen=True)
class SavedChanges:
    image: str
    packages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Retirement:
    view: ContainerView
    stopped: bool
    saved: SavedChanges | None
    gpu_slots: list[str]


def added_packages(ctx: Context, view: ContainerView) -> list[str]:
    """`name==version` of every Python distribution installed in the container since its image was built."""
    found = {}
    for path in ctx.gateway.changes(view.id):
        match = DIST_INFO.search(path)
        if match:
            found[match.group(1).replace("_", "-").lower()] = match.group(2)
    return [f"{name}=={version}" for name, version in sorted(found.items())]


def save_changes(ctx: Context, view: ContainerView) -> SavedChanges:
    """Commit the container to its project image. Raises on failure, before anything is removed."""
    uid = view.uid if view.uid is not None else ctx.user.uid
    repository = naming.image_repository(view.name, uid)
    packages = added_packages(ctx, view)
    labels = {key: value for key, value in view.labels.items() if not key.startswith("ds01.gpu.")}
    labels.update(
        {naming.LABEL_CREATED_AT: naming.utc_now_iso(), naming.LABEL_COMMITTED_FROM: view.docker_name}
    )
    for key in (naming.LABEL_GPU_SLOTS, naming.LABEL_GPU_UUIDS, naming.LABEL_GPU_GPUEQ):
        labels[key] = ""  # a commit inherits the container's labels; an image holds no GPU
    labels[naming.LABEL_RECIPE] = _recipe_of_image(ctx, view)
    ctx.gateway.commit(view.id, repository=repository, tag="latest", labels=labels)
    ctx.log(
        "commit",
        view.docker_name,
        user=view.user or ctx.user.name,
        image=f"{repository}:latest",
        packages=packages,
    )
    return SavedChanges(image=f"{repository}:latest", packages=packages)


def _recipe_of_image(ctx: Context, view: ContainerView) -> str:
    """The recipe the container's image was built from. A container blanks every `ds01.*` label it inherits,
    so a commit would record none; kept, `image-update NAME` still rebuilds when the recipe is edited."""
    image_id = str((ctx.gateway.inspect(view.id) or {}).get("Image") or view.image)
    image = ctx.gateway.image_inspect(image_id) or {}
    return str(((image.get("Config") or {}).get("Labels") or {}).get(naming.LABEL_RECIPE) or "")


def retire_container(
    ctx: Context, view: ContainerView, *, save: bool = False, timeout: int = 10
) -> Retirement:
    saved = save_changes(ctx, view) if save else None
    crash_point("retire.after_save")
    stopped = stop_container(ctx, view, timeout=timeout)  # a no-op for one that is not running
    crash_point("retire.after_stop")
    freed = remove_and_release(ctx, view, reason="retire")
    return Retirement(view=view, stopped=stopped, saved=saved, gpu_slots=freed)
