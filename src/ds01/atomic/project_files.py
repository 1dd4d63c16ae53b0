"""Workspaces on ds01d's side: `<workspace_root>/<user>/<name>` (CONTRACT §2).

`<root>` and `<root>/<user>` are root's (0755): the user can neither add nor swap anything at those levels,
so a project folder cannot be replaced by a symlink. ds01d makes `<name>` without following any symlink
(`host_paths.ensure_workspace`: `mkdir` relative to a descriptor of `<root>/<user>`, the new folder handed to
its owner through its own O_NOFOLLOW|O_DIRECTORY descriptor). ds01d never looks at `~/workspace` (the
user's own convenience link) or anything else in a home: what goes inside a project folder is written by
the client, as the user (`ds01.project.files`).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from ds01 import naming
from ds01.config import PathSettings
from ds01.errors import PermissionDenied
from ds01.identity import User, uid_min

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def check_owner(owner: User) -> None:
    """Workspaces belong to lab members: never root or a system account (CONTRACT §1)."""
    if owner.uid == 0 or owner.uid < uid_min():
        raise PermissionDenied(
            f"{owner.name} (uid {owner.uid}) has no workspace: workspaces belong to lab members",
            hint="pass --user NAME to act for a lab member",
        )
    if "/" in owner.name or owner.name in (".", "..") or not owner.name:
        raise PermissionDenied(f"the account name {owner.name!r} cannot name a folder")


def workspace_root(paths: PathSettings, owner: User) -> Path:
    """`<workspace_root>/<user>`, the admin's root resolved once (as `host_paths` does)."""
    from ds01.atomic import host_paths

    return host_paths.user_root(paths, owner)


@contextlib.contextmanager
def _open_dir(path: str, *, dir_fd: int | None = None) -> Iterator[int]:
    """A descriptor of a real directory; a symlink or anything else is refused (exit 5)."""
    try:
        fd = os.open(path, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise PermissionDenied(
                f"{path} is a symlink or not a folder; ds01 never follows links in the workspace tree",
                hint="move it away (ask an admin if you cannot) and run the command again",
            ) from None
        raise
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _user_root(paths: PathSettings, owner: User) -> Iterator[int | None]:
    """A readable descriptor of `<root>/<user>`, or None when it does not exist yet (nothing is made)."""
    root = workspace_root(paths, owner).parent
    if not root.is_dir():
        yield None
        return
    with _open_dir(str(root)) as root_fd:
        try:
            os.stat(owner.name, dir_fd=root_fd, follow_symlinks=False)
        except FileNotFoundError:
            yield None
            return
        with _open_dir(owner.name, dir_fd=root_fd) as user_fd:
            yield user_fd


def make_workspace(paths: PathSettings, owner: User, name: str) -> tuple[Path, bool]:
    """`<root>/<user>/<name>`, made and owned by `owner` when missing: (path, created). An existing real
    folder of the owner is left exactly as it is; a symlink, a file or someone else's folder in its place is
    refused (exit 5) and left alone. The no-link walk itself is `host_paths.ensure_workspace` (one
    implementation for dir-create, project-init and container-create)."""
    from ds01.atomic import host_paths

    check_owner(owner)
    return host_paths.ensure_workspace(paths, owner, naming.normalise_name(name))


def list_workspaces(paths: PathSettings, owner: User) -> list[str]:
    """The project folders in `<root>/<user>`: real folders with a valid name (links are not listed)."""
    check_owner(owner)
    with _user_root(paths, owner) as user_fd:
        if user_fd is None:
            return []
        with os.scandir(user_fd) as entries:
            return sorted(
                e.name
                for e in entries
                if e.is_dir(follow_symlinks=False) and naming.NAME_PATTERN.fullmatch(e.name)
            )
