"""Workspaces on ds01d's side: `<workspace_root>/<user>/<name>` (CONTRACT §2).

`<root>` and `<root>/<user>` are root's (0755): the user can neither add nor swap anything at those levels,
so a project folder cannot be replaced by a symlink. ds01d makes `<name>` without following any symlink:
`mkdir` relative to a descriptor of `<root>/<user>` opened with O_NOFOLLOW, and the new folder is handed to
its owner through a descriptor of that folder (O_NOFOLLOW|O_DIRECTORY), never through a path. ds01d never
looks at `~/workspace` (the user's own convenience link) or anything else in a home. What goes inside a
project folder is the client's business, done as the user (`ds01.project.files`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from ds01 import naming
from ds01.config import PathSettings
from ds01.errors import OperationFailed, PermissionDenied
from ds01.identity import User, uid_min

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
PROJECT_MODE = 0o750  # the owner and their primary group; other lab members cannot read it


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
    return paths.workspace_root_for(owner.name)


def workspace_path(paths: PathSettings, owner: User, name: str) -> Path:
    return workspace_root(paths, owner) / naming.normalise_name(name)


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


def _mkdir(name: str, dir_fd: int, mode: int) -> bool:
    try:
        os.mkdir(name, mode, dir_fd=dir_fd)
    except FileExistsError:
        return False
    return True


def _root_only(fd: int, shown: Path) -> None:
    """`<root>` and `<root>/<user>` must be root's and writable by root alone; repair a real folder that is
    not (a tree made by an older ds01 was the user's), through its descriptor."""
    st = os.fstat(fd)
    if st.st_uid != 0 or st.st_gid != 0:
        os.fchown(fd, 0, 0)
    if stat.S_IMODE(st.st_mode) != 0o755:
        os.fchmod(fd, 0o755)
    if not stat.S_ISDIR(os.fstat(fd).st_mode):  # pragma: no cover - O_DIRECTORY guarantees it
        raise OperationFailed(f"{shown} is not a folder")


@contextlib.contextmanager
def _user_root(paths: PathSettings, owner: User, *, create: bool) -> Iterator[int | None]:
    """A descriptor of `<root>/<user>` (made root's 0755 when missing and `create`), or None."""
    root = paths.workspace_root
    if create:
        old = os.umask(0o022)
        try:
            root.mkdir(mode=0o755, parents=True, exist_ok=True)  # the admin's path
        finally:
            os.umask(old)
    elif not root.is_dir():
        yield None
        return
    with _open_dir(str(root)) as root_fd:
        st = os.fstat(root_fd)
        if st.st_uid != 0 or st.st_mode & 0o022:
            raise OperationFailed(
                f"the workspace root {root} is writable by someone other than root",
                hint=f"ask an admin: chown root:root {root} && chmod 755 {root}",
            )
        if create and _mkdir(owner.name, root_fd, 0o755):
            with _open_dir(owner.name, dir_fd=root_fd) as fd:
                os.fchmod(fd, 0o755)
        if not create and not _exists(owner.name, root_fd):
            yield None
            return
        with _open_dir(owner.name, dir_fd=root_fd) as user_fd:
            if create:
                _root_only(user_fd, root / owner.name)
            yield user_fd


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def make_workspace(paths: PathSettings, owner: User, name: str) -> tuple[Path, bool]:
    """`<root>/<user>/<name>`, made and owned by `owner` when missing: (path, created). An existing real
    folder is left exactly as it is; a symlink or a file in its place is refused and left alone."""
    check_owner(owner)
    name = naming.normalise_name(name)
    path = workspace_root(paths, owner) / name
    with _user_root(paths, owner, create=True) as user_fd:
        assert user_fd is not None
        old = os.umask(0o027)
        try:
            created = _mkdir(name, user_fd, PROJECT_MODE)
        finally:
            os.umask(old)
        with _open_dir(name, dir_fd=user_fd) as fd:
            if created:
                os.fchown(fd, owner.uid, owner.gid)
                os.fchmod(fd, PROJECT_MODE)
    return path, created


def ensure_workspace(paths: PathSettings, owner: User, name: str) -> tuple[Path, list[Path]]:
    """`make_workspace` for callers that report what was made: (path, [path] when created)."""
    path, created = make_workspace(paths, owner, name)
    return path, [path] if created else []


def list_workspaces(paths: PathSettings, owner: User) -> list[str]:
    """The project folders in `<root>/<user>`: real folders with a valid name (links are not listed)."""
    check_owner(owner)
    with _user_root(paths, owner, create=False) as user_fd:
        if user_fd is None:
            return []
        with os.scandir(user_fd) as entries:
            return sorted(
                e.name
                for e in entries
                if e.is_dir(follow_symlinks=False) and naming.NAME_PATTERN.fullmatch(e.name)
            )
