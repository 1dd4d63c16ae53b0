"""What an image was built from: the Dockerfile and the dependency files its build reads, as one hash.

Every client build records it as the image label `ds01.recipe` (a small JSON text: the overall sha256, and per
file a short hash and a 2-character digest per line, so a later `image-update NAME` can say "Dockerfile
changed (3 lines)" without keeping the old text). The files counted besides the Dockerfile are those a
`COPY`/`ADD` (without `--from`) or a `RUN --mount=type=bind` names; a folder source (`COPY . /src`) counts the
dependency files at its top level (requirements*.txt, pyproject.toml, setup.py, environment.yml, ...), not the
code in it. Files are read with the user's own rights, never through a symlink (a link counts as its target
text).

The label is metadata of the user's own image and the user can forge it (a Dockerfile `LABEL`, a client of
their own): all a forged or broken value can do is make `image-update` rebuild their own image, or not.
ds01d never trusts it for anything else, and an unreadable value counts as "not recorded".
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ds01.project.dockerfile import _flags, _logical_lines, _unquote

MAX_LABEL = 4000  # under ds01d's cap on a label value (4096)
MAX_FILES = 32
MAX_LINES_FILE = 1 << 20  # line digests only for files of at most 1 MiB
MAX_HASHED = 256 << 20  # a bigger file counts by its size and modification time
DEPENDENCY_FILES = (
    "requirements*.txt", "constraints*.txt", "pyproject.toml", "setup.py", "setup.cfg", "environment.yml",
    "environment.yaml", "conda.yml", "Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock", "apt.txt",
    "packages.txt",
)  # fmt: skip
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_GLOB = re.compile(r"[*?\[]")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_DIGESTS = re.compile(r"(?:[A-Za-z0-9_-]{2})*")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


@dataclass(frozen=True)
class FileDigest:
    sha: str  # 16 hex characters of the file's sha256
    lines: str | None = None  # 2 characters per line, or None when not kept


@dataclass(frozen=True)
class Recipe:
    sha256: str
    files: Mapping[str, FileDigest] = field(default_factory=dict)

    def label(self) -> str:
        """The label value, at most MAX_LABEL characters (line digests dropped, biggest first, to fit)."""
        files = dict(self.files)
        while True:
            text = _dump(self.sha256, files)
            if len(text) <= MAX_LABEL:
                return text
            kept = [(len(d.lines), name) for name, d in files.items() if d.lines]
            if not kept:
                return _dump(self.sha256, None)
            name = max(kept)[1]
            files[name] = FileDigest(files[name].sha)


@dataclass(frozen=True)
class Change:
    file: str
    kind: str  # "changed", "added" or "removed"
    lines: int | None = None

    def describe(self) -> str:
        if self.kind != "changed":
            return f"{self.file} {self.kind}"
        if self.lines is None:
            return f"{self.file} changed"
        return f"{self.file} changed ({self.lines} line{'' if self.lines == 1 else 's'})"

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "change": self.kind, "lines": self.lines}


def _dump(sha256: str, files: Mapping[str, FileDigest] | None) -> str:
    body: dict[str, object] = {"v": 1, "sha256": sha256}
    if files is not None:
        body["files"] = {name: [d.sha, d.lines or ""] for name, d in files.items()}
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def parse_label(value: str | None) -> Recipe | None:
    """The recipe an image records; None when it records none or the value does not parse."""
    if not value or len(value) > 2 * MAX_LABEL:
        return None
    try:
        body = json.loads(value)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("v") != 1:
        return None
    sha = body.get("sha256")
    if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
        return None
    files: dict[str, FileDigest] = {}
    raw = body.get("files")
    if isinstance(raw, dict) and len(raw) <= MAX_FILES + 1:
        for name, entry in raw.items():
            if not (isinstance(name, str) and isinstance(entry, list) and len(entry) == 2):
                return Recipe(sha)
            short, lines = entry
            if not (isinstance(short, str) and _HEX16.fullmatch(short) and isinstance(lines, str)):
                return Recipe(sha)
            if not _DIGESTS.fullmatch(lines):
                return Recipe(sha)
            files[name] = FileDigest(short, lines or None)
    return Recipe(sha, files)


def _line_digests(text: str) -> str:
    out = []
    for line in text.splitlines():
        v = int.from_bytes(hashlib.blake2b(line.encode(), digest_size=2).digest(), "big") & 0xFFF
        out.append(_ALPHABET[v >> 6] + _ALPHABET[v & 63])
    return "".join(out)


def _changed_lines(old: str, new: str) -> int | None:
    a = [old[i : i + 2] for i in range(0, len(old), 2)]
    b = [new[i : i + 2] for i in range(0, len(new), 2)]
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    count = sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal")
    return count or None


def changes(old: Recipe, new: Recipe) -> list[Change]:
    """What differs from the recipe an image records (empty when nothing does); the Dockerfile first."""
    if old.sha256 == new.sha256:
        return []
    if not old.files:
        return [Change("the recipe", "changed")]
    out: list[Change] = []
    for name in dict.fromkeys([*new.files, *sorted(old.files)]):
        before, after = old.files.get(name), new.files.get(name)
        if before is None:
            out.append(Change(name, "added"))
        elif after is None:
            out.append(Change(name, "removed"))
        elif before.sha != after.sha:
            lines = _changed_lines(before.lines, after.lines) if before.lines and after.lines else None
            out.append(Change(name, "changed", lines))
    return out or [Change("the recipe", "changed")]


# -- reading the recipe (with the user's own rights) --------------------------------------------------------


def _sources(text: str) -> Iterator[str]:
    """The context paths the build reads: COPY/ADD sources (no --from, no URL, no heredoc) and bind mounts."""
    for line in _logical_lines(text):
        words = line.split()
        keyword = words[0].upper()
        flags, rest = _flags(words[1:])
        if keyword == "RUN":
            for mount in flags.get("mount", []):
                parts = dict(p.partition("=")[::2] for p in _unquote(mount).split(","))
                if parts.get("type", "bind") == "bind" and "from" not in parts:
                    yield parts.get("source") or parts.get("src") or "."
            continue
        if keyword not in ("COPY", "ADD") or "from" in flags or len(rest) < 2:
            continue
        args = rest
        if rest[0].startswith("["):
            try:
                parsed = json.loads(" ".join(rest))
            except ValueError:
                continue
            if not isinstance(parsed, list) or not all(isinstance(a, str) for a in parsed):
                continue
            args = parsed
        for source in args[:-1]:
            source = _unquote(source)
            if "://" in source or source.startswith(("<<", "git@")) or "$" in source:
                continue
            yield source


def _open_dir(root_fd: int, parts: list[str]) -> int | None:
    fd = os.dup(root_fd)
    for part in parts:
        try:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)
        fd = nxt
    return fd


def _digest(dir_fd: int, name: str) -> tuple[str, str | None] | None:
    """(sha256 hex, line digests) of one entry; None for a folder, a FIFO, a device or what cannot be read."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            target = os.fsencode(os.readlink(name, dir_fd=dir_fd))
            return hashlib.sha256(b"symlink\0" + target).hexdigest(), None
        if not stat.S_ISREG(st.st_mode):
            return None
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_size > MAX_HASHED:
            marker = f"large\0{st.st_size}\0{st.st_mtime_ns}".encode()
            return hashlib.sha256(marker).hexdigest(), None
        sha = hashlib.sha256()
        head = b""
        try:
            while chunk := f.read(1 << 16):
                sha.update(chunk)
                if len(head) <= MAX_LINES_FILE:
                    head += chunk
        except OSError:
            return None
    lines = _line_digests(head.decode("utf-8", "replace")) if len(head) <= MAX_LINES_FILE else None
    return sha.hexdigest(), lines


def _entries(root_fd: int, source: str) -> Iterator[tuple[str, int, str]]:
    """(path in the context, folder fd, name) of what one source names (a folder: its dependency files)."""
    rel = os.path.normpath(source.lstrip("/"))
    if rel == ".." or rel.startswith("../"):
        return
    parts = [] if rel == "." else rel.split("/")
    if any(_GLOB.search(p) for p in parts[:-1]):
        return
    patterns = [parts.pop()] if parts and _GLOB.search(parts[-1]) else []
    fd = _open_dir(root_fd, parts[:-1] if parts and not patterns else parts)
    if fd is None:
        return
    try:
        if not patterns and parts:
            sub = _open_dir(fd, parts[-1:])
            if sub is None:
                yield "/".join(parts), fd, parts[-1]
                return
            os.close(fd)
            fd, patterns = sub, list(DEPENDENCY_FILES)
        elif not patterns:
            patterns = list(DEPENDENCY_FILES)
        prefix = "/".join(parts) + "/" if parts else ""
        with contextlib.suppress(OSError):
            names = sorted(os.listdir(fd))
            for name in names:
                if any(fnmatch.fnmatchcase(name, p) for p in patterns):
                    yield prefix + name, fd, name
    finally:
        os.close(fd)


def read_recipe(context: Path, dockerfile_name: str, dockerfile_text: str) -> Recipe:
    """The recipe a build of `dockerfile_text` in `context` uses, as it is on disk now."""
    full: dict[str, str] = {dockerfile_name: hashlib.sha256(dockerfile_text.encode()).hexdigest()}
    files = {dockerfile_name: FileDigest(full[dockerfile_name][:16], _line_digests(dockerfile_text))}
    try:
        root_fd = os.open(context, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        root_fd = -1
    if root_fd >= 0:
        try:
            for source in _sources(dockerfile_text):
                for rel, dir_fd, name in _entries(root_fd, source):
                    if rel in full or len(full) > MAX_FILES:
                        continue
                    found = _digest(dir_fd, name)
                    if found is not None:
                        full[rel] = found[0]
                        files[rel] = FileDigest(found[0][:16], found[1])
        finally:
            os.close(root_fd)
    total = hashlib.sha256()
    for name in sorted(full):
        total.update(f"{name}\0{full[name]}\n".encode())
    return Recipe(total.hexdigest(), files)


def recipe_label(context: Path, dockerfile: Path, dockerfile_text: str) -> str:
    """The `ds01.recipe` label value of a build."""
    return read_recipe(context, dockerfile.name, dockerfile_text).label()
