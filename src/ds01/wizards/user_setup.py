"""`user-setup`: from a new account to a first project, saying as much as the user wants to hear.

The client asks ds01d for the account's limits and workspace root, and does the rest as the user: the
`~/workspace` link to `<workspace_root>/<user>` and `~/ds01-quickstart.md` in the user's own home.
"""

from __future__ import annotations

import os
import pwd
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ds01 import units
from ds01.client import path_of
from ds01.project import files
from ds01.wizards.prompts import Choice, Prompter

Say = Callable[[str], None]
QUICKSTART = "ds01-quickstart.md"
LEVELS = ("new", "some", "expert")


@dataclass(frozen=True)
class Experience:
    ssh: str = "some"  # SSH and VS Code Remote
    git: str = "some"
    containers: str = "some"  # containers and GPUs

    def new_to(self, topic: str) -> bool:
        return bool(getattr(self, topic) == "new")


@dataclass
class SetupResult:
    user: str
    already_set_up: bool
    engine: str
    workspace_root: Path
    quickstart: Path
    limits: dict[str, str] = field(default_factory=dict)
    ssh_block: str = ""
    link: str = ""  # what became of ~/workspace
    link_advice: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "user": self.user,
            "already_set_up": self.already_set_up,
            "engine": self.engine,
            "workspace_root": str(self.workspace_root),
            "quickstart": str(self.quickstart),
            "limits": self.limits,
            "ssh_config": self.ssh_block,
            "workspace_link": self.link,
            "workspace_link_advice": self.link_advice,
        }


def ask_experience(prompter: Prompter, given: Experience | None) -> Experience:
    if given is not None:
        return given
    levels = [Choice("new", "new to it"), Choice("some", "used it a bit"), Choice("expert", "use it daily")]
    return Experience(
        ssh=prompter.select("SSH and VS Code Remote?", levels, default="some", flag="--experience"),
        git=prompter.select("git?", levels, default="some", flag="--experience"),
        containers=prompter.select("Containers and GPUs?", levels, default="some", flag="--experience"),
    )


def ask_first_project(prompter: Prompter, given: str | None) -> str | None:
    """The name of a first project to create and launch now, or None."""
    if given:
        return given
    if not prompter.confirm("Create and launch a first project now?", default=False, flag="--project NAME"):
        return None
    return prompter.text("Name of your first project", default="my-first-project", flag="--project") or None


def plain_limits(lim: Mapping[str, Any]) -> dict[str, str]:
    """The `limits` of `GET /v1/limits` in plain words."""
    gpueq = lim.get("max_gpu_equivalents")
    gpu = (
        "no GPU quota"
        if gpueq == 0
        else (
            "as many GPUs as are free"
            if gpueq is None
            else f"up to {gpueq:g} GPU(s) at once, counting MIG slices by their size"
        )
    )
    memory = lim.get("memory") or "no limit on"
    idle, runtime, cpus = lim.get("idle_timeout_h"), lim.get("max_runtime_h"), lim.get("max_cpus")
    count = lim.get("max_containers_per_user")
    return {
        "GPUs": gpu + ("" if lim.get("allow_full_gpu", True) else " (MIG slices only)"),
        "containers": f"up to {count} at once" if count else "no limit",
        "each container": f"{cpus:g} CPUs, {memory} memory" if cpus else f"{memory} memory",
        "idle GPUs": f"containers idle for {units.format_hours(idle)} are retired (your workspace stays)"
        if idle is not None
        else "never retired for being idle",
        "runtime": f"stopped after {units.format_hours(runtime)}" if runtime else "no limit",
    }


def ssh_block(user: str, host: str | None = None) -> str:
    fqdn = host or socket.getfqdn()
    alias = fqdn.split(".")[0] or "ds01"
    return (
        f"Host {alias}\n    HostName {fqdn}\n    User {user}\n"
        "    IdentityFile ~/.ssh/id_ed25519\n    ServerAliveInterval 60\n"
        # every project's container as <project>.ds01 (container-ssh --config prints the same block)
        f"Host *.ds01\n    User {user}\n    ProxyCommand ssh -q -T {alias} container-ssh %n\n"
        "    ServerAliveInterval 30\n"
    )


def vscode_steps(alias: str) -> list[str]:
    return [
        "On your laptop: ssh-keygen -t ed25519 (once; the key never leaves your laptop)",
        f"Copy the public key here: ssh-copy-id {alias}",
        "Put the Host block above into ~/.ssh/config on your laptop",
        "VS Code: install 'Remote - SSH', then 'Remote-SSH: Connect to Host...' -> <project>.ds01: it lands "
        "inside that project's container, in /workspace, with its GPUs (a terminal: ssh <project>.ds01)",
        f"Jupyter: container-jupyter <project> on {alias}; any other port: container-port <project> PORT "
        "(each prints the ssh -L line for your laptop); on the server itself: container-attach <project>",
    ]


def quickstart_text(user: str, alias: str, exp: Experience) -> str:
    lines = [
        f"# ds01 quick reference for {user}",
        "",
        "Three words: the **image** is the recipe (your Dockerfile), the **container** is a laptop you can",
        "hand back, the **workspace** (`~/workspace/<project>` here, `/workspace` inside) is the hard drive",
        "that stays.",
        "",
        "## Every day",
        "    project-launch my-thesis --open     # build if needed, start, and open a shell",
        "    container-retire my-thesis          # at night: frees the GPU; files stay",
        "",
        "## Sometimes",
        "    project-init my-thesis              # a new project: workspace, recipe, git",
        "    image-update my-thesis --add pkg    # add a Python package to the recipe and rebuild",
        "    check-limits                        # your quota and what you use",
        "    gpu-status                          # who holds which GPU",
        "    container-list                      # your containers",
        "    container-attach my-thesis          # a shell in a running container",
        "",
        "## Connecting",
        f"    ssh {alias}",
    ]
    if exp.new_to("git"):
        lines += [
            "",
            "## git in one minute",
            "    git status / git add FILE / git commit -m 'what changed' / git log --oneline",
        ]
    if exp.new_to("containers"):
        lines += [
            "",
            "## Good to know",
            "- Anything installed inside a container with pip is gone when it is retired:",
            "  put it in the recipe with image-update, or retire with --save-changes.",
            "- Idle GPUs are reclaimed; write checkpoints to /workspace.",
        ]
    return "\n".join(lines) + "\n"


def home_of(uid: int) -> Path:
    return Path(pwd.getpwuid(uid).pw_dir)


def link_workspace(home: Path, target: Path) -> tuple[str, str]:
    """`~/workspace` -> `<workspace_root>/<user>`, made by the user; anything already there stays.
    (what happened, advice)"""
    link = home / "workspace"
    if link.is_symlink():
        if os.readlink(link) == str(target):
            return f"{link} -> {target}", ""
        return (
            f"{link} is a link to {os.readlink(link)}, left as it is",
            f"your projects are in {target}; to reach them at ~/workspace: "
            f"rm {link} && ln -s {target} {link}",
        )
    if os.path.lexists(link):
        kind = "folder" if link.is_dir() else "file"
        return (
            f"{link} is a {kind} of your own, left as it is",
            f"your projects are in {target} (that is what containers see at /workspace); move what you "
            f"need from {link} into a project there, then: mv {link} {link}.old && ln -s {target} {link}",
        )
    try:
        os.symlink(target, link)
    except OSError as exc:
        return f"could not make {link}: {exc.strerror}", f"your projects are in {target}"
    return f"{link} -> {target} (new)", ""


def _write_home(uid: int, root: Path, exp: Experience, alias: str) -> dict[str, Any]:
    """As the owner: the ~/workspace link and, once, the quick reference."""
    home = home_of(uid)
    quickstart = home / QUICKSTART
    already = files.exists(quickstart)
    link, advice = link_workspace(home, root)
    if not already:
        files.write_new(quickstart, quickstart_text(pwd.getpwuid(uid).pw_name, alias, exp))
    return {"already": already, "link": link, "advice": advice}


def is_set_up(user: str | None) -> bool:
    return files.exists(home_of(files.owner_uid(user)) / QUICKSTART)


def setup_user(client: Any, exp: Experience, *, user: str | None = None, say: Say) -> SetupResult:
    version = client.call("GET", path_of("version"))
    limits = client.call("GET", path_of("limits"), {"user": user})
    root = Path(client.call("GET", path_of("workspaces"), {"user": user})["root"])
    uid = files.owner_uid(user)
    alias = socket.getfqdn().split(".")[0] or "ds01"
    done = files.as_owner(uid, lambda: _write_home(uid, root, exp, alias), lambda d: d, lambda d: d)
    result = SetupResult(
        str(limits["user"]),
        bool(done["already"]),
        f"ds01d {version.get('version', '?')}",
        root,
        home_of(uid) / QUICKSTART,
        plain_limits(limits["limits"]),
        ssh_block(str(limits["user"])),
        str(done["link"]),
        str(done["advice"]),
    )
    if exp.new_to("containers") and not result.already_set_up:
        say(
            "An image is a recipe, a container is a laptop you can hand back, and your workspace is the "
            "hard drive that stays."
        )
    return result
