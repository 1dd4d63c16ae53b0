"""The build context, packed by the client with the user's own rights and streamed to ds01d.

`pack_context` writes an uncompressed tar of a project folder: it never follows a symlink (a link inside the
folder is stored as a link, never dereferenced, so it cannot pull a file from elsewhere into the image),
walks folders through descriptors opened with `O_NOFOLLOW`, opens regular files with
`O_NOFOLLOW | O_NONBLOCK` and checks them with `fstat` (a FIFO or a device is left out and never read),
honours `.dockerignore`, and stops at a size cap. `read_user_file` reads a file the user named (a
Dockerfile, a requirements file): a regular file of at most 1 MiB, or one clear error.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ds01.errors import NotFound, OperationFailed, PermissionDenied, UsageError

MAX_USER_FILE = 1 << 20  # a Dockerfile or requirements file the user names
MAX_CONTEXT = 4 << 30  # the whole build context (ds01d has its own cap)
IGNORE_FILE = ".dockerignore"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY

Warn = Callable[[str], None]


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n < 1 << 30 else f"{n / (1 << 30):.0f} GiB"


def read_user_file(path: Path, *, what: str = "file", limit: int = MAX_USER_FILE) -> str:
    """The text of a file the user named: a regular file (never a FIFO or device) of at most `limit`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise NotFound(f"{what} {path} does not exist", hint="check the path") from None
    except PermissionError:
        raise PermissionDenied(f"you may not read {what} {path}", hint="give a file you can read") from None
    except OSError as exc:
        raise UsageError(f"cannot open {what} {path}: {exc.strerror}", hint="give a regular file") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(
                f"{what} {path} is not a regular file", hint="give the path of a plain text file"
            )
        if st.st_size > limit:
            raise UsageError(f"{what} {path} is over {_mib(limit)}", hint="give a smaller file")
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise UsageError(f"{what} {path} is over {_mib(limit)}", hint="give a smaller file")
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not UTF-8 text", hint="give a text file") from None


# -- .dockerignore ----------------------------------------------------------------------------------------


def _translate(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


@dataclass
class Ignore:
    """Docker's rules: later patterns win, `!` re-includes, a match on a folder covers what is in it."""

    rules: list[tuple[bool, re.Pattern[str]]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Ignore:
        rules = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = os.path.normpath(line[1:].strip() if negate else line).lstrip("/")
            if pattern in ("", "."):
                continue
            rules.append((negate, _translate(pattern)))
        return cls(rules)

    @property
    def has_exceptions(self) -> bool:
        return any(neg for neg, _ in self.rules)

    def excluded(self, rel: str) -> bool:
        parts = rel.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        result = False
        for negate, rx in self.rules:
            if any(rx.fullmatch(p) for p in prefixes):
                result = not negate
        return result


# -- the archive --------------------------------------------------------------------------------------------


@dataclass
class Packed:
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


class _Packer:
    def __init__(self, tar: tarfile.TarFile, ignore: Ignore, skip: str, limit: int) -> None:
        self.tar = tar
        self.ignore = ignore
        self.skip = skip
        self.limit = limit
        self.packed = Packed()

    def _info(self, rel: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
        info = tarfile.TarInfo(rel)
        info.type = kind
        info.mode = stat.S_IMODE(st.st_mode)
        info.mtime = int(st.st_mtime)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def walk(self, dir_fd: int, prefix: str) -> None:
        with os.scandir(dir_fd) as it:
            names = sorted(e.name for e in it)
        for name in names:
            rel = prefix + name
            if rel == self.skip:
                continue
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            ignored = self.ignore.excluded(rel)
            if stat.S_ISDIR(st.st_mode):
                if ignored and not self.ignore.has_exceptions:
                    continue
                self._dir(dir_fd, name, rel, st, ignored)
            elif ignored:
                continue
            elif stat.S_ISLNK(st.st_mode):
                info = self._info(rel, st, tarfile.SYMTYPE)
                info.linkname = os.readlink(name, dir_fd=dir_fd)  # stored as a link, never followed
                info.mode = 0o777
                self.tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                self._file(dir_fd, name, rel)
            else:
                self.packed.skipped.append(rel)  # FIFOs, sockets, devices: never opened

    def _dir(self, dir_fd: int, name: str, rel: str, st: os.stat_result, ignored: bool) -> None:
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except PermissionError:
            raise PermissionDenied(
                f"cannot enter {rel}/ in the build context",
                hint="every folder of the project must be readable by you (or list it in .dockerignore)",
            ) from None
        except OSError:  # swapped for something else since the stat: leave it out
            self.packed.skipped.append(rel)
            return
        try:
            if not ignored:
                self.tar.addfile(self._info(rel, os.fstat(fd), tarfile.DIRTYPE))
            self.walk(fd, rel + "/")
        finally:
            os.close(fd)

    def _file(self, dir_fd: int, name: str, rel: str) -> None:
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except PermissionError:
            raise PermissionDenied(
                f"cannot read {rel} in the build context",
                hint="every file of the project must be readable by you (or list it in .dockerignore)",
            ) from None
        except OSError:  # a symlink or FIFO swapped in since the stat: leave it out, never follow it
            self.packed.skipped.append(rel)
            return
        with os.fdopen(fd, "rb", closefd=True) as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                self.packed.skipped.append(rel)
                return
            self._count(st.st_size)
            info = self._info(rel, st, tarfile.REGTYPE)
            info.size = st.st_size
            try:
                self.tar.addfile(info, f)
            except OSError as exc:
                raise OperationFailed(
                    f"{rel} changed while the build context was packed: {exc}", hint="try again"
                ) from None

    def _count(self, size: int) -> None:
        self.packed.files += 1
        self.packed.bytes += size
        if self.packed.bytes > self.limit:
            raise UsageError(
                f"the build context is over {_mib(self.limit)}",
                hint="list data, models and results in the project's .dockerignore",
            )

    def add_text(self, rel: str, text: str) -> None:
        data = text.encode()
        info = tarfile.TarInfo(rel)
        info.size = len(data)
        info.mode = 0o644
        self.tar.addfile(info, io.BytesIO(data))


def _ignore_rules(root_fd: int) -> Ignore:
    try:
        fd = os.open(IGNORE_FILE, _FILE_FLAGS, dir_fd=root_fd)
    except FileNotFoundError:
        return Ignore()
    except OSError as exc:
        raise UsageError(
            f"cannot read {IGNORE_FILE}: {exc.strerror}", hint="make it a regular file"
        ) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_USER_FILE:
            raise UsageError(f"{IGNORE_FILE} must be a regular file of at most 1 MiB")
        return Ignore.parse(f.read(MAX_USER_FILE).decode("utf-8", "replace"))


def pack_context(
    context_dir: Path, dockerfile_name: str, dockerfile_text: str, out: IO[bytes], *, limit: int = MAX_CONTEXT
) -> Packed:
    """Write the context of `context_dir` to `out`; the Dockerfile goes in as `dockerfile_name`, with the
    text the client read (whatever is at that name in the folder is not read again)."""
    try:
        root_fd = os.open(context_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"the build context {context_dir} does not exist") from None
    except PermissionError:
        raise PermissionDenied(f"you may not read the build context {context_dir}") from None
    except NotADirectoryError:
        raise UsageError(f"the build context {context_dir} is not a folder") from None
    try:
        ignore = _ignore_rules(root_fd)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            packer = _Packer(tar, ignore, dockerfile_name, limit)
            packer.add_text(dockerfile_name, dockerfile_text)
            packer.walk(root_fd, "")
        return packer.packed
    finally:
        os.close(root_fd)
