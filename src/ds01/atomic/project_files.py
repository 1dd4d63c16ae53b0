"""A project's folder: dir-create, git-init and readme-create.

All three are idempotent and never overwrite a user's file: a second run finds everything in place and
changes nothing. Everything is created with the owner's rights (see `user_files`), so the files belong to
the user even when ds01 runs as root through sudo.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ds01.atomic import host_paths, user_files
from ds01.context import Context
from ds01.errors import OperationFailed, UsageError
from ds01.identity import User

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

# what a blank project keeps out of git: caches and secrets only
GITIGNORE_BLANK = """\
# ds01: caches and secrets stay out of git
.cache/
__pycache__/
*.py[cod]
.ipynb_checkpoints/
.venv/
.env
*.bak
"""

GITIGNORE = """\
# ds01: data, models, checkpoints and caches stay out of git
data/
models/
checkpoints/
results/
*.ckpt
wandb/
mlruns/
.cache/
__pycache__/
*.py[cod]
.ipynb_checkpoints/
.venv/
.env
*.bak
"""

LFS_PATTERNS = ("*.pt", "*.pth", "*.ckpt", "*.h5", "*.onnx", "*.safetensors", "*.joblib")
GITATTRIBUTES = "# ds01: model files go to git-lfs\n" + "".join(
    f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS
)


@dataclass(frozen=True)
class Created:
    """What a command made; empty lists mean everything was already there."""

    workspace: Path
    dirs: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.dirs or self.files or self.notes)

    def as_dict(self) -> dict[str, object]:
        return {
            "workspace": str(self.workspace),
            "created_dirs": [str(d) for d in self.dirs],
            "created_files": [str(f) for f in self.files],
            "notes": self.notes,
        }


# -- the workspace ------------------------------------------------------------------------------------


def workspace_root(ctx: Context, owner: User) -> Path:
    return ctx.config.paths.workspace_root_for(owner.name, owner.uid, owner.home)


def workspace_path(ctx: Context, owner: User, name: str) -> Path:
    return workspace_root(ctx, owner) / name


def ensure_workspace(ctx: Context, owner: User, name: str) -> tuple[Path, list[Path]]:
    """The project's workspace, created (owned by the user) when missing; also the directories made."""
    path, missing = host_paths.resolve_workspace(
        owner, workspace_path(ctx, owner, name), root=workspace_root(ctx, owner)
    )
    host_paths.create_dirs(owner, missing)
    return path, missing


# -- dir-create -----------------------------------------------------------------------------------------


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UsageError(f"unknown layout {kind!r}", hint=f"use --type {' or '.join(KINDS)}")


def create_dirs(ctx: Context, owner: User, name: str, kind: str = "data-science") -> Created:
    check_kind(kind)
    workspace, made = ensure_workspace(ctx, owner, name)
    result = Created(workspace, dirs=list(made))
    if kind == "blank":
        return result
    for rel, text in DATA_SCIENCE_LAYOUT.items():
        folder = workspace / rel
        result.dirs.extend(user_files.make_dirs(owner, folder))
        readme = folder / "README.md"
        if user_files.write_new(owner, readme, f"# {rel}/\n\n{text}\n"):
            result.files.append(readme)
    return result


# -- readme-create ------------------------------------------------------------------------------------


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


LAYOUT_SECTION = """
## Layout

- `data/raw`, `data/processed`: input data (kept out of git)
- `notebooks`: exploration
- `src`: code
- `models`, `results`: outputs
"""


def create_readme(
    ctx: Context, owner: User, name: str, *, project_type: str | None = None, description: str | None = None
) -> Created:
    workspace, made = ensure_workspace(ctx, owner, name)
    result = Created(workspace, dirs=list(made))
    readme = workspace / "README.md"
    if user_files.write_new(owner, readme, readme_text(name, project_type, description)):
        result.files.append(readme)
    return result


# -- git-init ---------------------------------------------------------------------------------------------


def _git(owner: User, workspace: Path, *args: str, check: bool = True) -> str:
    """Run git as the owner, with their home (and so their ~/.gitconfig)."""
    env = {
        "HOME": str(owner.home),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "GIT_TERMINAL_PROMPT": "0",
    }
    as_user: dict[str, object] = {}
    if os.geteuid() == 0 and owner.uid != 0:
        as_user = {
            "user": owner.uid,
            "group": owner.gid,
            "extra_groups": sorted(host_paths.user_gids(owner) - {owner.gid}),
        }
    proc = subprocess.run(["git", *args], cwd=workspace, env=env, capture_output=True, text=True, **as_user)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise OperationFailed(f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return str(proc.stdout).strip()


def account_identity(owner: User) -> tuple[str, str]:
    """(full name, e-mail) from the account: the GECOS name (else the login) at this host's domain."""
    try:
        gecos = pwd.getpwuid(owner.uid).pw_gecos.split(",", 1)[0].strip()
    except KeyError:
        gecos = ""
    host = socket.getfqdn() or "localhost"
    return gecos or owner.name, f"{owner.name}@{host}"


def init_git(
    ctx: Context, owner: User, name: str, *, kind: str = "data-science", lfs: bool | None = None
) -> Created:
    check_kind(kind)
    if shutil.which("git") is None:
        raise OperationFailed("git is not installed on this host", hint="ask an admin to install git")
    workspace, made = ensure_workspace(ctx, owner, name)
    result = Created(workspace, dirs=list(made))
    if not user_files.exists(owner, workspace / ".git"):
        branch = _git(owner, workspace, "config", "--get", "init.defaultBranch", check=False)
        _git(owner, workspace, "init", "-q", *(() if branch else ("-b", "main")))
        result.notes.append("initialised a git repository")
    ignore = GITIGNORE_BLANK if kind == "blank" else GITIGNORE
    if user_files.write_new(owner, workspace / ".gitignore", ignore):
        result.files.append(workspace / ".gitignore")
    full_name, email = account_identity(owner)
    for key, value in (("user.name", full_name), ("user.email", email)):
        if not _git(owner, workspace, "config", "--get", key, check=False):
            _git(owner, workspace, "config", "--local", key, value)
            result.notes.append(f"set {key} = {value}")
    use_lfs = shutil.which("git-lfs") is not None if lfs is None else lfs
    if use_lfs:
        _setup_lfs(owner, workspace, result)
    return result


def _setup_lfs(owner: User, workspace: Path, result: Created) -> None:
    hooks = _git(owner, workspace, "rev-parse", "--git-path", "hooks")
    if not user_files.exists(owner, workspace / hooks / "pre-push"):
        _git(owner, workspace, "lfs", "install", "--local")
        result.notes.append("enabled git-lfs")
    path = workspace / ".gitattributes"
    if user_files.write_new(owner, path, GITATTRIBUTES):
        result.files.append(path)


def commit_all(owner: User, workspace: Path, message: str) -> bool:
    """Commit everything in the workspace as the owner; False when there was nothing to commit."""
    _git(owner, workspace, "add", "-A")
    if not _git(owner, workspace, "status", "--porcelain", check=False):
        return False
    _git(owner, workspace, "commit", "-q", "-m", message)
    return True
