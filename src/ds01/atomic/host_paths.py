"""Host directories a container mounts: the workspace (the user's, created if missing) and `--data`.

ds01 runs as root through sudo, so `os.access` would answer for root. Every check here is made for the
owner's uid and groups from the ownership and mode bits, the way the kernel would decide.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ds01.errors import NotFound, PermissionDenied, UsageError
from ds01.identity import User

READ, WRITE, EXEC = 4, 2, 1
WORKSPACE_MODE = 0o750


def user_gids(user: User) -> set[int]:
    try:
        return set(os.getgrouplist(user.name, user.gid))
    except (OSError, KeyError):
        return {user.gid}


def may(user: User, st: os.stat_result, want: int, gids: set[int] | None = None) -> bool:
    """Would `user` get the `want` bits (READ|WRITE|EXEC) on a file with this stat?"""
    if user.uid == 0:
        return True
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == user.uid:
        bits = mode >> 6
    elif st.st_gid in (gids if gids is not None else user_gids(user)):
        bits = mode >> 3
    else:
        bits = mode
    return bits & want == want


def _blocking_ancestor(user: User, path: Path, gids: set[int]) -> Path | None:
    """The first existing ancestor the user cannot traverse, if any."""
    for parent in reversed(path.parents):
        try:
            st = parent.stat()
        except FileNotFoundError:
            return None
        if not may(user, st, EXEC, gids):
            return parent
    return None


def check_data_dir(user: User, raw: Path) -> Path:
    """`--data DIR`: an existing directory the user could read and enter themselves."""
    path = Path(os.path.realpath(raw.expanduser()))
    gids = user_gids(user)
    # Refuse before saying whether it exists, so a path the user cannot see stays unseen.
    blocked = _blocking_ancestor(user, path, gids)
    if blocked is not None:
        raise PermissionDenied(
            f"--data {raw}: {user.name} cannot enter {blocked}", hint="pass a directory you own or can read"
        )
    try:
        st = path.stat()
    except FileNotFoundError:
        raise NotFound(f"--data {raw}: no such directory", hint="check the path") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"--data {raw} is not a directory", hint="pass a directory; it is mounted at /data")
    if not may(user, st, READ | EXEC, gids):
        raise PermissionDenied(
            f"--data {raw}: {user.name} may not read it", hint="pass a directory you own or can read"
        )
    return path


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return probe


def resolve_workspace(user: User, raw: Path, *, root: Path | None) -> tuple[Path, list[Path]]:
    """The real workspace path and the directories still to create (outermost first).

    An existing workspace must belong to the user. A missing one may be created only under a directory of
    theirs, or (for a root like `/srv/ws/{user}` that does not exist yet) right under that root's parent.
    """
    path = Path(os.path.realpath(raw.expanduser()))
    if path.exists():
        st = path.stat()
        if not stat.S_ISDIR(st.st_mode):
            raise UsageError(f"workspace {path} is not a directory", hint="pass --workspace DIR")
        if st.st_uid != user.uid:
            raise PermissionDenied(
                f"workspace {path} does not belong to {user.name}",
                hint="pass --workspace with a directory of your own",
            )
        return path, []
    anchor = _nearest_existing(path)
    allowed_anchor = root is not None and anchor == Path(os.path.realpath(root)).parent
    if anchor.stat().st_uid != user.uid and user.uid != 0 and not allowed_anchor:
        raise PermissionDenied(
            f"workspace {path}: {anchor} does not belong to {user.name}",
            hint="pass --workspace with a directory of your own",
        )
    missing = [p for p in (path, *path.parents) if not p.exists()]
    return path, list(reversed(missing))


def create_dirs(user: User, dirs: list[Path]) -> None:
    """Make the workspace's missing directories, owned by the user even when ds01 runs as root."""
    for d in dirs:
        try:
            d.mkdir(mode=WORKSPACE_MODE)
        except FileExistsError:
            continue
        except OSError as exc:
            raise PermissionDenied(
                f"cannot create the workspace {d}: {exc.strerror}",
                hint="pass --workspace with a directory of your own",
            ) from exc
        if os.geteuid() == 0 and user.uid != 0:
            os.chown(d, user.uid, user.gid)
