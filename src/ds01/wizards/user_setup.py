"""`user-setup`: from a new account to a first project, saying as much as the user wants to hear."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ds01 import units
from ds01.atomic import host_paths, project_files, user_files
from ds01.context import Context
from ds01.identity import User
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

    def as_dict(self) -> dict[str, object]:
        return {
            "user": self.user,
            "already_set_up": self.already_set_up,
            "engine": self.engine,
            "workspace_root": str(self.workspace_root),
            "quickstart": str(self.quickstart),
            "limits": self.limits,
            "ssh_config": self.ssh_block,
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


def plain_limits(ctx: Context, owner: User) -> dict[str, str]:
    lim = ctx.limits_for(owner).limits
    gpu = (
        "no GPU quota"
        if lim.max_gpu_equivalents == 0
        else (
            "as many GPUs as are free"
            if lim.max_gpu_equivalents is None
            else f"up to {lim.max_gpu_equivalents:g} GPU(s) at once, counting MIG slices by their size"
        )
    )
    return {
        "GPUs": gpu + ("" if lim.allow_full_gpu else " (MIG slices only)"),
        "containers": f"up to {lim.max_containers_per_user} at once"
        if lim.max_containers_per_user
        else "no limit",
        "each container": f"{lim.max_cpus:g} CPUs, {units.format_size(lim.memory)} memory"
        if lim.max_cpus
        else f"{units.format_size(lim.memory)} memory",
        "idle GPUs": f"containers idle for {units.format_hours(lim.idle_timeout_h)} are retired "
        "(your workspace stays)"
        if lim.idle_timeout_h is not None
        else "never retired for being idle",
        "runtime": f"stopped after {units.format_hours(lim.max_runtime_h)}"
        if lim.max_runtime_h
        else "no limit",
    }


def ssh_block(owner: User, host: str | None = None) -> str:
    fqdn = host or socket.getfqdn()
    alias = fqdn.split(".")[0] or "ds01"
    return (
        f"Host {alias}\n    HostName {fqdn}\n    User {owner.name}\n"
        "    IdentityFile ~/.ssh/id_ed25519\n    ServerAliveInterval 60\n"
    )


def vscode_steps(alias: str) -> list[str]:
    return [
        "On your laptop: ssh-keygen -t ed25519 (once; the key never leaves your laptop)",
        f"Copy the public key here: ssh-copy-id {alias}",
        "Put the Host block above into ~/.ssh/config on your laptop",
        f"VS Code: install 'Remote - SSH', then 'Remote-SSH: Connect to Host...' -> {alias}",
        "In the remote window: 'Dev Containers: Attach to Running Container...' -> your project; "
        "open /workspace",
    ]


def quickstart_text(owner: User, alias: str, exp: Experience) -> str:
    lines = [
        f"# ds01 quick reference for {owner.name}",
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


def setup_user(ctx: Context, owner: User, exp: Experience, *, say: Say) -> SetupResult:
    quickstart = owner.home / QUICKSTART
    already = user_files.exists(owner, quickstart)
    version = ctx.gateway.version()
    engine = f"Docker {version.get('Version', '?')}"
    root = project_files.workspace_root(ctx, owner)
    _, missing = host_paths.resolve_workspace(owner, root, root=root)
    host_paths.create_dirs(owner, missing)  # owned by the user, also when ds01 runs through sudo
    alias = socket.getfqdn().split(".")[0] or "ds01"
    result = SetupResult(
        owner.name, already, engine, root, quickstart, plain_limits(ctx, owner), ssh_block(owner)
    )
    if not already:
        user_files.write_new(owner, quickstart, quickstart_text(owner, alias, exp))
    if exp.new_to("containers") and not already:
        say(
            "An image is a recipe, a container is a laptop you can hand back, and your workspace is the "
            "hard drive that stays."
        )
    return result
