"""One console script per command (`container-deploy`, `check-limits`, ...), each a one-command app.

The table maps script name -> (module, function); modules are imported only when that script runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ds01.cli.common import single_command

COMMANDS: dict[str, tuple[str, str]] = {
    "container-create": ("ds01.cli.container", "create"),
    "container-start": ("ds01.cli.container", "start"),
    "container-stop": ("ds01.cli.container", "stop"),
    "container-remove": ("ds01.cli.container", "remove"),
    "container-list": ("ds01.cli.container", "list_containers"),
    "container-stats": ("ds01.cli.container", "stats"),
    "container-attach": ("ds01.cli.container", "attach"),
    "container-run": ("ds01.cli.container", "run"),
    "container-logs": ("ds01.cli.container", "logs"),
    "container-pause": ("ds01.cli.container", "pause"),
    "container-unpause": ("ds01.cli.container", "unpause"),
    "container-deploy": ("ds01.cli.orchestration", "deploy"),
    "container-retire": ("ds01.cli.orchestration", "retire"),
    "container-ssh": ("ds01.cli.access", "ssh"),
    "container-jupyter": ("ds01.cli.access", "jupyter"),
    "container-port": ("ds01.cli.access", "port"),
    "image-create": ("ds01.cli.image", "create"),
    "image-list": ("ds01.cli.image", "list_images"),
    "image-update": ("ds01.cli.image", "update"),
    "image-delete": ("ds01.cli.image", "delete"),
    "image-push": ("ds01.cli.image_transfer", "push"),
    "image-save": ("ds01.cli.image_transfer", "save"),
    "dir-create": ("ds01.cli.project_files", "dir_create"),
    "git-init": ("ds01.cli.project_files", "git_init"),
    "readme-create": ("ds01.cli.project_files", "readme_create"),
    "project-init": ("ds01.cli.project", "init"),
    "project-launch": ("ds01.cli.project", "launch"),
    "user-setup": ("ds01.cli.user", "setup"),
    "check-limits": ("ds01.cli.helpers", "check_limits"),
    "gpu-status": ("ds01.cli.gpu", "status"),
    "ds01-doctor": ("ds01.cli.helpers", "doctor"),
    "ds01-reaper": ("ds01.cli.reaper", "reaper"),
    "container-extend": ("ds01.cli.enforcement", "extend"),
    "project-export": ("ds01.cli.export", "project_export"),
}


def _script(name: str) -> Callable[[], None]:
    def main() -> None:
        module, attr = COMMANDS[name]
        single_command(getattr(importlib.import_module(module), attr), name)

    main.__name__ = name.replace("-", "_")
    return main


for _name in COMMANDS:
    globals()[_name.replace("-", "_")] = _script(_name)
