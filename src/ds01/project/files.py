"""A project folder's files, written by the client as the user: the data-science layout, the README,
pyproject.toml and requirements.txt.

ds01d makes the folder (`POST /v1/workspaces`); everything inside is plain file work with the caller's own
rights, so the kernel applies the user's permissions and new files are the user's. Nothing here ever
overwrites a file: a second run finds everything in place and changes nothing. Only root acting for a lab
member (`--user`) runs the work in a child process that has fully become that member (`as_owner`).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ds01 import naming
from ds01.errors import Ds01Error, NotFound, PermissionDenied, UsageError

T = TypeVar("T")
KINDS = ("data-science", "blank")

# folder -> the README stub that says what belongs there
DATA_SCIENCE_LAYOUT: dict[str, str] = {
    "data": "Data of this project. Large files stay out of git (see .gitignore).",
    "data/raw": "Original data, exactly as received. Never edit these files; write to data/processed.",
    "data/processed": "Cleaned and transformed data, reproducible from data/raw by code in src/.",
    "notebooks": "Jupyter notebooks for exploration. Move code you reuse into src/.",
    "src": "The project's Python code: data loading, models, training and evaluation.",
    "models": "Trained models and checkpoints (kept out of git; git-lfs tracks model files if you add them).",
    "results": "Figures, tables and metrics produced by the code.",
}


@dataclass
class Created:
    """What a command made; empty lists mean everything was already there."""

    workspace: Path
    dirs: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.dirs or self.files or self.notes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "workspace": str(self.workspace),
            "created_dirs": [str(d) for d in self.dirs],
            "created_files": [str(f) for f in self.files],
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Created:
        return cls(
            Path(data["workspace"]),
            [Path(d) for d in data["created_dirs"]],
            [Path(f) for f in data["created_files"]],
            list(data["notes"]),
        )


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UsageError(f"unknown layout {kind!r}", hint=f"use --type {' or '.join(KINDS)}")


# -- plain file work as the user -------------------------------------------------------------------------


def _denied(path: Path, exc: OSError) -> PermissionDenied:
    return PermissionDenied(f"{path}: {exc.strerror}", hint="use a file in a folder of your own")


def exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise NotFound(f"no such file: {path}", hint="check the path") from None
    except IsADirectoryError:
        raise NotFound(f"{path} is a folder, not a file", hint="pass the file's path") from None
    except OSError as exc:
        raise _denied(path, exc) from exc


def write_new(path: Path, text: str, *, mode: int = 0o644) -> bool:
    """Create `path` with `text` unless something is there already (never overwrites); True if written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except FileExistsError:
        return False
    except OSError as exc:
        raise _denied(path, exc) from exc
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return True


def replace_with_backup(path: Path, text: str) -> Path:
    """Rewrite `path` after copying it to `path.bak`; the new content lands atomically."""
    backup = path.with_name(path.name + ".bak")
    tmp = path.with_name(f".{path.name}.ds01-tmp")
    try:
        if path.exists():
            shutil.copy2(path, backup)
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _denied(path, exc) from exc
    return backup


def make_dirs(path: Path) -> list[Path]:
    """Create missing folders; returns those it made."""
    made = [p for p in (path, *path.parents) if not os.path.lexists(p)]
    for d in reversed(made):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise _denied(d, exc) from exc
    return list(reversed(made))


# -- acting for another user (root only) ------------------------------------------------------------------


def as_owner(
    owner_uid: int, work: Callable[[], T], encode: Callable[[T], Any], decode: Callable[[Any], T]
) -> T:
    """Run `work` as the workspace's owner: directly when the caller is the owner; when root acts for a lab
    member, in a child that has become that member for good (groups, gid, uid), its result sent back as
    JSON. Anyone else cannot write in another user's workspace."""
    if os.getuid() == owner_uid:
        return work()
    if os.geteuid() != 0:
        raise PermissionDenied(
            "only the owner (or root) may write in a workspace's folder",
            hint="ds01d made the folder; ask its owner to run the command",
        )
    from ds01 import protocol

    entry = pwd.getpwuid(owner_uid)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        try:
            os.setgroups(os.getgrouplist(entry.pw_name, entry.pw_gid))
            os.setgid(entry.pw_gid)
            os.setuid(owner_uid)
            os.environ["HOME"] = entry.pw_dir
            payload = {"result": encode(work())}
        except Ds01Error as err:
            payload = {"error": protocol.error_payload(err)}
        except BaseException as exc:  # the parent reports it
            payload = {"error": {"code": "error", "message": f"{type(exc).__name__}: {exc}", "exit_code": 1}}
        with os.fdopen(write_end, "w") as pipe:
            json.dump(payload, pipe)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        raw = pipe.read()
    os.waitpid(pid, 0)
    try:
        answer = json.loads(raw)
    except ValueError:
        raise Ds01Error(f"the work as {entry.pw_name} ended without an answer") from None
    if "error" in answer:
        raise protocol.error_from_payload(answer["error"])
    return decode(answer["result"])


# -- the folder, from ds01d -------------------------------------------------------------------------------


def request_workspace(client: Any, name: str, user: str | None = None) -> tuple[Path, bool]:
    """Ask ds01d for `<workspace_root>/<owner>/<name>` (made, owned by the owner, when missing):
    (path, created). `client` is a `ds01.client.Client`."""
    from ds01 import protocol

    answer = client.call("POST", protocol.API + "/workspaces", {"name": name, "user": user})
    return Path(answer["path"]), bool(answer["created"])


def owner_uid(user: str | None) -> int:
    """The uid of `--user NAME` (ds01d has checked who may name whom), else the caller's own."""
    if not user:
        return os.getuid()
    try:
        return (pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)).pw_uid
    except KeyError:
        raise NotFound(
            f"no Unix user named {user!r}", hint="check the spelling with `getent passwd`"
        ) from None


# -- dir-create -----------------------------------------------------------------------------------------


def create_dirs(workspace: Path, kind: str = "data-science") -> Created:
    check_kind(kind)
    result = Created(workspace)
    if kind == "blank":
        return result
    for rel, text in DATA_SCIENCE_LAYOUT.items():
        folder = workspace / rel
        result.dirs.extend(make_dirs(folder))
        readme = folder / "README.md"
        if write_new(readme, f"# {rel}/\n\n{text}\n"):
            result.files.append(readme)
    return result


# -- readme-create ------------------------------------------------------------------------------------


LAYOUT_SECTION = """
## Layout

- `data/raw`, `data/processed`: input data (kept out of git)
- `notebooks`: exploration
- `src`: code
- `models`, `results`: outputs
"""


def readme_text(name: str, project_type: str | None = None, description: str | None = None) -> str:
    """project_type is a layout (data-science, blank) or a project type for the title (nlp, cv, ...)."""
    kind = f" ({project_type} project)" if project_type and project_type not in KINDS else ""
    about = description or "What this project is about, in two sentences."
    return f"""\
# {name}{kind}

{about}

## Work on it

    project-launch {name} --open      # build the image if needed, start a container, open a shell

Inside the container this folder is `/workspace`; it is the only place that persists.

## Environment

The `Dockerfile` here is the recipe of the environment. Add packages with
`image-update {name} --add "pkg1 pkg2"`, or edit `requirements.txt` and run `image-update {name} --rebuild`.
{"" if project_type == "blank" else LAYOUT_SECTION}"""


def create_readme(
    workspace: Path, name: str, *, project_type: str | None = None, description: str | None = None
) -> Created:
    result = Created(workspace)
    readme = workspace / "README.md"
    if write_new(readme, readme_text(name, project_type, description)):
        result.files.append(readme)
    return result


# -- pyproject.toml and requirements.txt ------------------------------------------------------------------


PYPROJECT = "pyproject.toml"
REQUIREMENTS = "requirements.txt"


def tool_table(project_type: str, framework: str, image: str, gpus: int | None) -> str:
    return (
        "[tool.ds01]\n"
        f'type = "{project_type}"\nframework = "{framework}"\nimage = "{image}"\n'
        f"gpus = {gpus if gpus is not None else 1}  # what project-launch asks for\n"
        f'created = "{naming.utc_now_iso()}"\n'
    )


def pyproject_text(name: str, description: str | None, table: str) -> str:
    # one line of TOML basic string: no quote, backslash, newline or other control character gets through
    about = " ".join("".join(c if c.isprintable() else " " for c in description or "").split())
    about = about.replace('"', "'").replace("\\", "/")
    return (
        f'[project]\nname = "{name}"\nversion = "0.1.0"\ndescription = "{about}"\n'
        f'requires-python = ">=3.10"\n\n{table}'
    )


def ensure_tool_table(path: Path, table: str) -> bool:
    """An existing pyproject.toml gains a [tool.ds01] table when it has none (a `.bak` keeps the old one);
    nothing else changes. True when it was added."""
    text = read_text(path)
    try:
        has_table = "ds01" in tomllib.loads(text).get("tool", {})
    except tomllib.TOMLDecodeError:
        has_table = True  # not ours to repair
    if has_table:
        return False
    replace_with_backup(path, text.rstrip("\n") + "\n\n" + table)
    return True


def read_tool_table(workspace: Path) -> dict[str, Any]:
    """The project's `[tool.ds01]` table ({} when there is none or it does not parse)."""
    path = workspace / PYPROJECT
    try:
        table = tomllib.loads(path.read_text()).get("tool", {}).get("ds01", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    return table if isinstance(table, dict) else {}


def requirements_text(project_type: str, pip: Iterable[str]) -> str:
    head = (
        f"# Python packages of this project ({project_type}). Edit, then: image-update NAME --rebuild\n"
        "# One per line, with a version if it matters (torch==2.5.1).\n"
    )
    return head + "".join(f"{p}\n" for p in pip)
