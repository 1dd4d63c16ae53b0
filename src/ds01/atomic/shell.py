"""attach and run: a shell or a command inside the container, through the docker CLI.

The process becomes `docker exec` (os.execvp), so the terminal, window resizes, Ctrl-D and the exit code
behave exactly as Docker's own.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

from ds01.atomic.container_spec import WORKDIR
from ds01.atomic.container_view import ContainerView
from ds01.docker_gateway import docker_host
from ds01.errors import OperationFailed

# bash when the image has it, else sh, in one exec (no extra round trip to look first).
SHELL = ("/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh")


def docker_cli() -> str:
    path = shutil.which("docker")
    if not path:
        raise OperationFailed(
            "the docker command-line client is not installed on this host",
            hint="ask an admin to install it (Debian: apt-get install docker.io)",
        )
    return path


def exec_argv(
    view: ContainerView, command: list[str] | None, *, interactive: bool, tty: bool, fallback_user: str
) -> list[str]:
    """`docker exec` as the container's user in /workspace: a shell, or the given command."""
    flags = ["-i"] if interactive else []
    if tty:
        flags = ["-it"]
    user = view.user_spec or fallback_user
    return [
        docker_cli(),
        "--host",
        docker_host(),
        "exec",
        *flags,
        "-u",
        user,
        "-w",
        WORKDIR,
        view.id,
        *(command or SHELL),
    ]


def exec_into(argv: list[str]) -> NoReturn:
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        raise OperationFailed(f"cannot run {argv[0]}: {exc.strerror}") from exc
