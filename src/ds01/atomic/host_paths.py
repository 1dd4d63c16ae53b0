"""Host folders a container mounts: the workspace `<workspace_root>/<owner>/<name>` and `--data`.

ds01d runs as root, so nothing here trusts a path the user can change. Every path is judged lexically first
(it must lie inside an allowed root: the owner's workspace folder, or one of `paths.data_roots`); only then
is it opened, component by component from `/`, with `O_PATH | O_NOFOLLOW | O_DIRECTORY` relative to the
folder opened before, so a symbolic link anywhere on the way is refused instead of followed. A path outside
the allowed roots is refused with the same words whether it exists or not, so ds01d never tells a user what
lies in a folder they cannot read. Workspaces are made with `mkdir(dir_fd=...)` and `fchown` on the opened
folder. The same checks run again at every start (`check_mounts`), because dockerd resolves a bind source
anew each time it starts a container.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ds01 import naming
from ds01.config import PathSettings
from ds01.errors import NotFound, PermissionDenied, UsageError
from ds01.identity import User

READ, WRITE, EXEC = 4, 2, 1
WORKSPACE_MODE = 0o750
USER_ROOT_MODE = 0o755
WALK_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
WORKDIR = "/workspace"
DATA_DIR = "/data"


class _Symlink(Exception):
    """A component of the path is a symbolic link (or not a directory)."""


# -- permissions from mode bits (ds01d is root: os.access would answer for root) -----------------------
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


# -- lexical judgement ------------------------------------------------------------------------------------
def clean_path(raw: str, what: str) -> Path:
    """An absolute path with no `.`/`..` games: `..` is refused outright, not resolved."""
    if not raw or "\x00" in raw:
        raise UsageError(f"{what}: empty path", hint="pass an absolute path")
    if not raw.startswith("/"):
        raise UsageError(f"{what} {raw}: not an absolute path", hint="pass an absolute path")
    parts = [p for p in raw.split("/") if p and p != "."]
    if ".." in parts:
        raise UsageError(f"{what} {raw}: '..' is not allowed in the path", hint="pass the plain path")
    return Path("/", *parts)


def real_root(root: Path) -> Path:
    """An admin-configured root with its own symbolic links resolved (the admin's tree is trusted)."""
    return Path(os.path.realpath(root))


def inside(path: Path, root: Path) -> tuple[str, ...] | None:
    """The components of `path` below `root` (empty when equal), or None when it is not inside."""
    try:
        return path.relative_to(root).parts
    except ValueError:
        return None


# -- opening without following ------------------------------------------------------------------------
@contextlib.contextmanager
def opened(path: Path) -> Iterator[int]:
    """An O_PATH descriptor of the directory `path`, walked from `/` without following any link.

    Raises `_Symlink` for a link or non-directory on the way, FileNotFoundError for a missing component.
    """
    fd = os.open("/", WALK_FLAGS)
    try:
        for part in path.parts[1:]:
            try:
                nxt = os.open(part, WALK_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _Symlink(part) from None
                raise
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def _walk_checked(user: User, root: Path, rel: Sequence[str], want_last: int, what: str, raw: str) -> int:
    """Walk `root/rel` without links; the user must be able to enter every folder on the way below the root
    (checked before the next name is looked up) and get `want_last` on the last one. Returns an O_PATH
    descriptor of that last folder (the caller closes it)."""
    gids = user_gids(user)
    denied = PermissionDenied(f"{what} {raw}: {user.name} may not read it", hint=_DATA_HINT)
    try:
        with opened(root) as fd0:
            fd = os.dup(fd0)
    except (_Symlink, FileNotFoundError, NotADirectoryError):
        raise NotFound(f"{what} {raw}: the allowed folder {root} is missing", hint="tell an admin") from None
    try:
        st = os.fstat(fd)
        for part in rel:
            if not may(user, st, EXEC, gids):
                raise denied
            try:
                nxt = os.open(part, WALK_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                raise NotFound(f"{what} {raw}: no such directory", hint="check the path") from None
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise PermissionDenied(
                        f"{what} {raw}: a symbolic link or file is in the way ({part})",
                        hint="pass the real folder; links are never followed",
                    ) from None
                raise
            os.close(fd)
            fd = nxt
            st = os.fstat(fd)
        if not may(user, st, want_last, gids):
            raise denied
    except BaseException:
        os.close(fd)
        raise
    return fd


_DATA_HINT = "use a folder under a data root or one of your workspaces (ask an admin for a data root)"


# -- workspaces -----------------------------------------------------------------------------------------
def user_root(paths: PathSettings, owner: User) -> Path:
    return real_root(paths.workspace_root) / owner.name


def workspace_path(paths: PathSettings, owner: User, raw: str | None, default_name: str) -> Path:
    """`--workspace`: a project name, or a folder directly in `<workspace_root>/<owner>`; default the
    container's name. Anything else is refused (exit 5) with the same words whether it exists or not."""
    root = user_root(paths, owner)
    if raw is None or raw == "":
        return root / naming.normalise_name(default_name)
    if "/" not in raw:
        return root / naming.normalise_name(raw)
    path = clean_path(raw, "--workspace")
    rel = inside(path, root)
    if rel is None or len(rel) != 1:
        raise PermissionDenied(
            f"--workspace {raw}: a workspace is a folder directly in {root}",
            hint=f"pass a project name (e.g. --workspace thesis) or {root}/NAME",
        )
    return root / naming.normalise_name(rel[0])


def _user_root_fd(paths: PathSettings, owner: User, *, create: bool) -> int:
    """An O_PATH descriptor of `<root>/<owner>` (made root-owned 0755 when missing and `create`)."""
    base = real_root(paths.workspace_root)
    try:
        with opened(base) as fd:
            try:
                ufd = os.open(owner.name, WALK_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(owner.name, USER_ROOT_MODE, dir_fd=fd)
                ufd = os.open(owner.name, WALK_FLAGS, dir_fd=fd)
                with _dir_fd(owner.name, fd) as real:
                    os.fchown(real, 0, 0)
                    os.fchmod(real, USER_ROOT_MODE)
    except (_Symlink, NotADirectoryError):
        raise PermissionDenied(
            f"the workspace root {base} is not a plain folder", hint="tell an admin"
        ) from None
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise NotFound(
                f"{base / owner.name} does not exist", hint="run project-init or dir-create"
            ) from None
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise PermissionDenied(f"{base / owner.name} is a symbolic link", hint="tell an admin") from None
        raise
    st = os.fstat(ufd)
    if st.st_uid != 0 or stat.S_IMODE(st.st_mode) & 0o022:
        os.close(ufd)
        raise PermissionDenied(
            f"{base / owner.name} must be owned by root and not writable by others", hint="tell an admin"
        )
    return ufd


@contextlib.contextmanager
def _dir_fd(name: str, dir_fd: int) -> Iterator[int]:
    """A real (not O_PATH) descriptor of the folder `name` in `dir_fd`, for fchown/fchmod; no links."""
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def ensure_workspace(paths: PathSettings, owner: User, name: str) -> tuple[Path, bool]:
    """`<root>/<owner>/<name>`, made (owned by the owner, 0750) when missing: (path, created).

    An existing one must be a plain folder owned by the owner (not a link, checked on the opened folder).
    """
    name = naming.normalise_name(name)
    ufd = _user_root_fd(paths, owner, create=True)
    created = False
    try:
        try:
            os.mkdir(name, WORKSPACE_MODE, dir_fd=ufd)
            created = True
        except FileExistsError:
            pass
        try:
            with _dir_fd(name, ufd) as fd:
                st = os.fstat(fd)
                if created:
                    os.fchown(fd, owner.uid, owner.gid)
                    os.fchmod(fd, WORKSPACE_MODE)
                elif st.st_uid != owner.uid:
                    raise _not_theirs(paths, owner, name)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _not_theirs(paths, owner, name) from None
            raise
    finally:
        os.close(ufd)
    return user_root(paths, owner) / name, created


def _not_theirs(paths: PathSettings, owner: User, name: str) -> PermissionDenied:
    return PermissionDenied(
        f"workspace {user_root(paths, owner) / name} is not a folder of {owner.name}",
        hint="ask an admin to look at it; ds01 never follows links in a workspace",
    )


def open_workspace(paths: PathSettings, owner: User, path: Path) -> int:
    """An existing workspace, directly in `<root>/<owner>` and a real folder of the owner: its O_PATH
    descriptor (the caller closes it)."""
    root = user_root(paths, owner)
    rel = inside(path, root)
    if rel is None or len(rel) != 1:
        raise PermissionDenied(
            f"workspace {path} is not a folder in {root}",
            hint="remove the container and create it again (the workspace stays)",
        )
    ufd = _user_root_fd(paths, owner, create=False)
    try:
        fd = os.open(rel[0], WALK_FLAGS, dir_fd=ufd)
    except FileNotFoundError:
        raise NotFound(f"workspace {path} is missing", hint=f"make it again: dir-create {rel[0]}") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _not_theirs(paths, owner, rel[0]) from None
        raise
    finally:
        os.close(ufd)
    if os.fstat(fd).st_uid != owner.uid:
        os.close(fd)
        raise _not_theirs(paths, owner, rel[0])
    return fd


def check_workspace(paths: PathSettings, owner: User, path: Path) -> None:
    os.close(open_workspace(paths, owner, path))


# -- --data ---------------------------------------------------------------------------------------------
def open_data_dir(paths: PathSettings, owner: User, raw: str) -> tuple[Path, int]:
    """`--data DIR`: inside a data root, or inside one of the owner's workspaces; a folder the owner could
    read and enter: (path, O_PATH descriptor). Outside those: the same refusal whether the path exists or
    not (nothing is opened)."""
    path = clean_path(raw, "--data")
    for root in [real_root(r) for r in paths.data_roots]:
        rel = inside(path, root)
        if rel is not None:
            return path, _walk_checked(owner, root, rel, READ | EXEC, "--data", raw)
    uroot = user_root(paths, owner)
    rel = inside(path, uroot)
    if rel:  # a workspace or a folder in one; the user root itself is not a workspace
        check_workspace(paths, owner, uroot / rel[0])
        return path, _walk_checked(owner, uroot / rel[0], rel[1:], READ | EXEC, "--data", raw)
    roots = ", ".join(str(r) for r in paths.data_roots) or "none configured"
    raise PermissionDenied(
        f"--data {raw}: only folders under a data root ({roots}) or your workspaces may be mounted",
        hint=_DATA_HINT,
    )


def check_data_dir(paths: PathSettings, owner: User, raw: str) -> Path:
    path, fd = open_data_dir(paths, owner, raw)
    os.close(fd)
    return path


# -- at every start: judged again, then pinned ---------------------------------------------------------
# A check followed by dockerd resolving the same path again would leave a window (a folder swapped for a
# link with renameat2(RENAME_EXCHANGE) right after the check). So a container's bind sources are never the
# user's paths: they are ds01d's own empty folders `<state_dir>/mounts/<container>/{workspace,data}`. At each
# start ds01d opens the real folder without following links, checks it, bind-mounts exactly that opened
# folder (`/proc/self/fd/N`) onto the staging folder, starts the container, and detaches the staging mount
# again (the container keeps its own copy). The real paths are kept in `<state_dir>/mounts/<container>.json`.
MS_BIND = 4096
MNT_DETACH = 2
SLOTS = {WORKDIR: "workspace", DATA_DIR: "data"}


@dataclass(frozen=True)
class HostMount:
    source: str
    target: str
    kind: str  # "bind", "volume", ... ; "binds" for an old-style Binds entry


def host_mounts(inspect: Mapping[str, Any]) -> list[HostMount]:
    hc = inspect.get("HostConfig") or {}
    out = [
        HostMount(str(m.get("Source", "")), str(m.get("Target", "")), str(m.get("Type", "")))
        for m in hc.get("Mounts") or []
    ]
    for b in hc.get("Binds") or []:
        src, _, rest = str(b).partition(":")
        out.append(HostMount(src, rest.split(":")[0], "binds"))
    return out


def staging_root(paths: PathSettings) -> Path:
    return paths.state_dir / "mounts"


def staging_source(paths: PathSettings, container: str, target: str) -> Path:
    return staging_root(paths) / container / SLOTS[target]


def _record_path(paths: PathSettings, container: str) -> Path:
    return staging_root(paths) / f"{container}.json"


def prepare_staging(paths: PathSettings, container: str, sources: Mapping[str, str]) -> None:
    """The staging folders (root's, empty) and the record of the real sources, made before the container."""
    folder = staging_root(paths) / container
    os.makedirs(folder, mode=0o700, exist_ok=True)
    for target in sources:
        os.makedirs(folder / SLOTS[target], mode=0o700, exist_ok=True)
    tmp = _record_path(paths, container).with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(dict(sources), f)
    os.replace(tmp, _record_path(paths, container))


def forget_staging(paths: PathSettings, container: str) -> None:
    """After a remove: the record and the (empty, unmounted) staging folders; anything else stays."""
    with contextlib.suppress(OSError):
        _record_path(paths, container).unlink()
    folder = staging_root(paths) / container
    for slot in SLOTS.values():
        with contextlib.suppress(OSError):
            (folder / slot).rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


def _recorded(paths: PathSettings, container: str) -> dict[str, str]:
    try:
        with open(_record_path(paths, container), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise PermissionDenied(
            f"{container}: ds01d has no record of its mounts",
            hint="remove it and create it again (the workspace stays)",
        )
    return {str(k): str(v) for k, v in data.items()}


def _open_source(paths: PathSettings, owner: User, target: str, source: str) -> int:
    if target == WORKDIR:
        return open_workspace(paths, owner, clean_path(source, "workspace"))
    return open_data_dir(paths, owner, source)[1]


def _refuse(m: HostMount) -> PermissionDenied:
    return PermissionDenied(
        f"the container mounts {m.source or m.kind} at {m.target}, which ds01 does not allow",
        hint="remove it and create it again with container-create",
    )


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _bind(fd: int, target: Path) -> None:
    import ctypes

    if _libc().mount(f"/proc/self/fd/{fd}".encode(), str(target).encode(), None, MS_BIND, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bind mount onto {target}: {os.strerror(err)}")


def _detach(target: Path) -> None:
    _libc().umount2(str(target).encode(), MNT_DETACH)


@dataclass
class Pins:
    """The folders pinned for one start: target -> O_PATH descriptor of the judged folder."""

    folders: dict[str, int] = field(default_factory=dict)

    def mismatched(self, pid: int) -> list[str]:
        """The targets where the started container (its process `pid`) does not see the pinned folder, e.g.
        when ds01d and the engine do not share a mount namespace. A process already gone is not judged."""
        wrong = []
        for target, fd in self.folders.items():
            want = os.fstat(fd)
            try:
                seen = os.stat(f"/proc/{pid}/root{target}", follow_symlinks=False)
            except OSError:
                continue
            if (seen.st_dev, seen.st_ino) != (want.st_dev, want.st_ino):
                wrong.append(target)
        return wrong


@contextlib.contextmanager
def pinned_mounts(
    paths: PathSettings, owner: User, container: str, inspect: Mapping[str, Any]
) -> Iterator[Pins]:
    """For the `with` block (the engine's start): every bind source judged again as at create and pinned
    to the folder that was judged. A mount ds01 does not make (Binds, another target) is refused."""
    record: dict[str, str] | None = None
    fds: list[int] = []
    mounted: list[Path] = []
    pins = Pins()
    try:
        for m in host_mounts(inspect):
            if m.kind != "bind" or m.target not in SLOTS:
                raise _refuse(m)
            stage = staging_source(paths, container, m.target)
            if m.source != str(stage):  # made before staging: judged, not pinned
                os.close(_open_source(paths, owner, m.target, m.source))
                continue
            record = record if record is not None else _recorded(paths, container)
            if m.target not in record:
                raise _refuse(m)
            fd = _open_source(paths, owner, m.target, record[m.target])
            fds.append(fd)
            os.makedirs(stage, mode=0o700, exist_ok=True)
            _bind(fd, stage)
            mounted.append(stage)
            pins.folders[m.target] = fd
        yield pins
    finally:
        for stage in reversed(mounted):
            _detach(stage)
        for fd in fds:
            os.close(fd)


def check_mounts(paths: PathSettings, owner: User, inspect: Mapping[str, Any], container: str = "") -> None:
    """The judgement of `pinned_mounts` without starting anything."""
    with pinned_mounts(paths, owner, container, inspect):
        pass
