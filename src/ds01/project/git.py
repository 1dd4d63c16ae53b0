"""git-init for a project folder, run by the client as the user (git is simply the user's git).

Idempotent: an existing repository, .gitignore or .gitattributes is left as it is; the user's name and
e-mail are set in the repository only when git does not know them already.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

from ds01.errors import OperationFailed
from ds01.project.files import Created, check_kind, exists, write_new

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


def _home() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return os.environ.get("HOME", "/")


def git(workspace: Path, *args: str, check: bool = True) -> str:
    """Run git in the workspace with the user's home (and so their ~/.gitconfig)."""
    env = {
        "HOME": _home(),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "GIT_TERMINAL_PROMPT": "0",
    }
    proc = subprocess.run(["git", *args], cwd=workspace, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise OperationFailed(f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def account_identity() -> tuple[str, str]:
    """(full name, e-mail) from the account: the GECOS name (else the login) at this host's domain."""
    entry = pwd.getpwuid(os.getuid())
    gecos = entry.pw_gecos.split(",", 1)[0].strip()
    host = socket.getfqdn() or "localhost"
    return gecos or entry.pw_name, f"{entry.pw_name}@{host}"


def check_git() -> None:
    if shutil.which("git") is None:
        raise OperationFailed("git is not installed on this host", hint="ask an admin to install git")


def init_git(workspace: Path, *, kind: str = "data-science", lfs: bool | None = None) -> Created:
    check_kind(kind)
    check_git()
    result = Created(workspace)
    if not exists(workspace / ".git"):
        branch = git(workspace, "config", "--get", "init.defaultBranch", check=False)
        git(workspace, "init", "-q", *(() if branch else ("-b", "main")))
        result.notes.append("initialised a git repository")
    if write_new(workspace / ".gitignore", GITIGNORE_BLANK if kind == "blank" else GITIGNORE):
        result.files.append(workspace / ".gitignore")
    full_name, email = account_identity()
    for key, value in (("user.name", full_name), ("user.email", email)):
        if not git(workspace, "config", "--get", key, check=False):
            git(workspace, "config", "--local", key, value)
            result.notes.append(f"set {key} = {value}")
    if shutil.which("git-lfs") is not None if lfs is None else lfs:
        _setup_lfs(workspace, result)
    return result


def _setup_lfs(workspace: Path, result: Created) -> None:
    hooks = git(workspace, "rev-parse", "--git-path", "hooks")
    if not exists(workspace / hooks / "pre-push"):
        git(workspace, "lfs", "install", "--local")
        result.notes.append("enabled git-lfs")
    path = workspace / ".gitattributes"
    if write_new(path, GITATTRIBUTES):
        result.files.append(path)


def commit_all(workspace: Path, message: str) -> bool:
    """Commit everything in the workspace; False when there was nothing to commit."""
    git(workspace, "add", "-A")
    if not git(workspace, "status", "--porcelain", check=False):
        return False
    git(workspace, "commit", "-q", "-m", message)
    return True
