"""Files in a user's workspace, read and written with the user's own rights.

ds01 runs as root through the lab's sudo rule. Touching a user's files as root would follow a symlink the
user planted (`Dockerfile -> /etc/shadow`) and leave root-owned files behind. Inside `as_owner(user)` the
process's effective uid, gid and groups are the user's, so the kernel applies the user's permissions and
new files belong to the user. Outside root (a user in the docker group) it changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ds01.errors import NotFound, PermissionDenied
from ds01.identity import User


@contextlib.contextmanager
def as_owner(user: User) -> Iterator[None]:
    if os.geteuid() != 0 or user.uid == 0:
        yield
        return
    saved_groups = os.getgroups()
    try:
        groups = os.getgrouplist(user.name, user.gid)
    except OSError:
        groups = [user.gid]
    os.setgroups(groups)
    os.setegid(user.gid)
    os.seteuid(user.uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)
        os.setgroups(saved_groups)


def _denied(path: Path, exc: OSError) -> PermissionDenied:
    return PermissionDenied(f"{path}: {exc.strerror}", hint="use a file in a directory of your own")


def read_text(user: User, path: Path) -> str:
    with as_owner(user):
        try:
            return path.read_text()
        except FileNotFoundError:
            raise NotFound(f"no such file: {path}", hint="check the path") from None
        except IsADirectoryError:
            raise NotFound(f"{path} is a directory, not a file", hint="pass the file's path") from None
        except OSError as exc:
            raise _denied(path, exc) from exc


def exists(user: User, path: Path) -> bool:
    with as_owner(user):
        try:
            return path.exists()
        except OSError:
            return False


def write_new(user: User, path: Path, text: str, *, mode: int = 0o644) -> bool:
    """Create `path` with `text` unless something is there already (never overwrites); True if written."""
    with as_owner(user):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        except FileExistsError:
            return False
        except OSError as exc:
            raise _denied(path, exc) from exc
        with os.fdopen(fd, "w") as f:
            f.write(text)
    return True


def replace_with_backup(user: User, path: Path, text: str) -> Path:
    """Rewrite `path` after copying it to `path.bak`; the new content lands atomically."""
    backup = path.with_name(path.name + ".bak")
    tmp = path.with_name(f".{path.name}.ds01-tmp")
    with as_owner(user):
        try:
            if path.exists():
                shutil.copy2(path, backup, follow_symlinks=True)
            tmp.unlink(missing_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _denied(path, exc) from exc
    return backup


def make_dirs(user: User, path: Path) -> list[Path]:
    """Create missing directories as the user; returns those it made."""
    made = [p for p in (path, *path.parents) if not exists(user, p)]
    with as_owner(user):
        for d in reversed(made):
            try:
                d.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise _denied(d, exc) from exc
    return list(reversed(made))
