"""The ways into a container from a laptop: `container-ssh` (SSH and VS Code Remote-SSH), `container-jupyter`
and `container-port`. Nothing here opens a TCP port on the server: SSH is joined to the container through
ds01d, Jupyter and ports are Unix sockets in the user's own 0700 run folder, reached with `ssh -L`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ds01.cli.common import JsonOpt, UserOpt, connect, handle_errors
from ds01.client import path_of
from ds01.errors import UsageError

if TYPE_CHECKING:
    from ds01.client import Client

HOST_SUFFIX = ".ds01"
LOCAL_JUPYTER_PORT = 8888

NameArg = Annotated[str | None, typer.Argument(help="Project (container) name, e.g. thesis or thesis.ds01.")]
ServerOpt = Annotated[
    str | None,
    typer.Option("--server", help="This server's name as your laptop reaches it (default: its full name)."),
]


def server_name(server: str | None) -> str:
    import re
    import socket

    if server is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]+\]", server):
        from ds01.errors import UsageError

        raise UsageError(
            f"--server {server[:60]!r} is not a host name", hint="e.g. --server gpu1.lab.example.org"
        )
    return server or socket.getfqdn()


def login_name() -> str:
    import os
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def ssh_config_block(server: str | None = None) -> str:
    """The one `~/.ssh/config` block for the laptop that covers every project: `ssh thesis.ds01`."""
    me = login_name()
    return (
        f"# ds01: ssh <project>{HOST_SUFFIX} lands in that project's container (VS Code: Remote-SSH)\n"
        f"Host *{HOST_SUFFIX}\n"
        f"    User {me}\n"
        f"    ProxyCommand ssh -q -T {me}@{server_name(server)} container-ssh %n\n"
        f"    ServerAliveInterval 30\n"
    )


def _project(name: str) -> str:
    name = name.strip()
    if name.lower().endswith(HOST_SUFFIX):
        name = name[: -len(HOST_SUFFIX)]
    if not name:
        raise UsageError("no project name", hint=f"e.g. container-ssh thesis (or thesis{HOST_SUFFIX})")
    return name


def _authorized_keys() -> str:
    """The user's own ~/.ssh/authorized_keys, read with the user's own rights."""
    import os
    import pwd
    from pathlib import Path

    path = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ssh" / "authorized_keys"
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(64 * 1024 + 1)
    except FileNotFoundError:
        raise UsageError(
            f"{path} does not exist",
            hint="put your laptop's public key there (on the laptop: ssh-copy-id THIS-SERVER)",
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", hint="check its permissions") from None
    if len(text) > 64 * 1024:
        raise UsageError(f"{path} is over 64 KiB", hint="keep only the keys you log in with")
    return text


# -- container-ssh ---------------------------------------------------------------------------------------
@handle_errors
def ssh(
    name: NameArg = None,
    deploy: Annotated[
        bool, typer.Option("--deploy", help="Deploy the container first if it is not there.")
    ] = False,
    config: Annotated[
        bool, typer.Option("--config", help="Print the ~/.ssh/config block for your laptop and exit.")
    ] = False,
    server: ServerOpt = None,
    user: UserOpt = None,
) -> None:
    """SSH into a project's container (what your laptop's `ssh NAME.ds01` runs on this server).

    Joins this command's stdin/stdout to an SSH server started as you inside the container; only the keys
    in your ~/.ssh/authorized_keys are accepted. A stopped container is started. Put the block printed by
    `container-ssh --config` into your laptop's ~/.ssh/config once; then `ssh thesis.ds01`, `scp` and
    VS Code's "Remote-SSH: Connect to Host" all land in /workspace of `thesis`.

    Examples:
      container-ssh --config >> block.txt       (copy it into the laptop's ~/.ssh/config)
      ssh thesis.ds01                           (on the laptop)
      container-ssh thesis --deploy             (deploy first when needed)
    """
    if config:
        sys.stdout.write(ssh_config_block(server))
        return
    if not name:
        raise UsageError(
            "no project name", hint="e.g. container-ssh thesis, or --config for the laptop block"
        )
    project = _project(name)
    from ds01.cli.common import stdin_is_tty

    if stdin_is_tty():  # a person, not a laptop's ssh: the SSH protocol on a terminal helps nobody
        raise UsageError(
            f"container-ssh speaks SSH on its stdin/stdout: it is what `ssh {project}{HOST_SUFFIX}` runs",
            hint=f"for a shell here use container-attach {project}; for the laptop: container-ssh --config",
        )
    keys = _authorized_keys()
    from ds01.client import Client
    from ds01.output import Output

    # stdout is the SSH stream: every message goes to stderr.
    client = Client(Output(stdout=sys.stderr, stderr=sys.stderr))
    from ds01.cli.cluster import on_its_node

    there = on_its_node(client, project, "container-ssh", user=user, pty=False)  # cluster: its node
    if there is not None:
        raise typer.Exit(there)
    if deploy:
        _ensure_deployed(client, project, user)
    from ds01.errors import NotFound

    try:
        stream, result = client.exec_stream(
            path_of("containers", project, "ssh"), {"keys": keys, "user": user, "start": True}
        )
    except NotFound as exc:
        if "no container named" not in exc.message:
            raise
        raise NotFound(
            exc.message, hint=f"deploy it first (container-deploy {project}), or use container-ssh --deploy"
        ) from None
    from ds01.terminal import pump_session

    raise typer.Exit(pump_session(client, str(result["exec_id"]), stream, tty=False))


def _ensure_deployed(client: Client, project: str, user: str | None) -> None:
    from ds01.errors import NotFound

    try:
        client.call("GET", path_of("containers", project), {"user": user})
        return
    except NotFound:
        pass
    client.call("POST", path_of("deploy"), {"name": project, "user": user, "interface": "orchestration"})


# -- container-jupyter -----------------------------------------------------------------------------------
def jupyter_lines(result: dict[str, Any], server: str | None = None) -> list[str]:
    return [
        f"Jupyter runs in {result['project']} as you, in /workspace. On your laptop run:",
        f"  ssh -N -L {LOCAL_JUPYTER_PORT}:{result['socket']} {login_name()}@{server_name(server)}",
        f"then open {result['url']}",
    ]


def start_jupyter(
    client: Client, project: str, user: str | None, server: str | None = None
) -> dict[str, Any]:
    """Start (or find) the project's notebook server and print how to reach it."""
    result: dict[str, Any] = client.call(
        "POST", path_of("containers", project, "jupyter"), {"user": user, "start": True}
    )
    if not client.out.json_mode:
        for line in jupyter_lines(result, server):
            client.out.say(line)
    return result


@handle_errors
def jupyter(
    name: NameArg = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the notebook server.")] = False,
    server: ServerOpt = None,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Start a Jupyter server in a project's container (or show the running one), reachable only by you.

    It runs as you in /workspace, on the container's own loopback, with a token; this server exposes it as a
    Unix socket in your 0700 run folder (no TCP port). Prints the `ssh -L` line for your laptop and the URL.

    Examples:
      container-jupyter thesis
      container-jupyter thesis --stop
    """
    if not name:
        raise UsageError("no project name", hint="e.g. container-jupyter thesis")
    project = _project(name)
    client = connect(json_out)
    if stop:
        result = client.call("DELETE", path_of("containers", project, "jupyter"), {"user": user})
        if json_out:
            client.out.json(result)
        elif result.get("stopped"):
            client.out.success(f"stopped Jupyter in {result['project']}")
        else:
            client.out.info(f"{result['project']} ran no Jupyter server")
        return
    result = start_jupyter(client, project, user, server)
    if json_out:
        client.out.json(result)


# -- container-port --------------------------------------------------------------------------------------
def port_lines(result: dict[str, Any], server: str | None = None) -> list[str]:
    port = result["port"]
    return [
        f"port {port} of {result['project']} is at {result['socket']} (only you can connect).",
        "On your laptop run:",
        f"  ssh -N -L {port}:{result['socket']} {login_name()}@{server_name(server)}",
        f"then use http://localhost:{port}/",
    ]


def open_port(
    client: Client, project: str, port: int, user: str | None, server: str | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = client.call(
        "POST", path_of("containers", project, "ports"), {"port": port, "user": user, "start": True}
    )
    if not client.out.json_mode:
        for line in port_lines(result, server):
            client.out.say(line)
    return result


def _port_number(raw: str) -> int:
    if not raw.strip().isdigit() or not 1 <= int(raw) <= 65535:
        raise UsageError(
            f"PORT {raw[:16]!r} is not a TCP port", hint="use a number from 1 to 65535, e.g. 8000"
        )
    return int(raw)


@handle_errors
def port(
    name: NameArg = None,
    port_: Annotated[str | None, typer.Argument(metavar="PORT", help="The container's TCP port.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the ports made reachable.")] = False,
    remove: Annotated[bool, typer.Option("--remove", help="Stop making PORT reachable.")] = False,
    server: ServerOpt = None,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Make a port of a project's container reachable from your laptop (TensorBoard, an API, Gradio).

    The port on the container's own loopback becomes a Unix socket in your 0700 run folder on this server
    (no TCP port is opened); `ssh -L` from the laptop reaches it.

    Examples:
      container-port thesis 6006
      container-port thesis --list
      container-port thesis 6006 --remove
    """
    if not name:
        raise UsageError("no project name", hint="e.g. container-port thesis 8000")
    project = _project(name)
    client = connect(json_out)
    if list_:
        rows = client.call("GET", path_of("containers", project, "ports"), {"user": user})
        if json_out:
            client.out.json(rows)
            return
        if not rows:
            client.out.info(f"{project}: no ports made reachable (container-port {project} PORT)")
            return
        client.out.table(["port", "kind", "socket"], [[r["port"], r["kind"], r["socket"]] for r in rows])
        return
    if port_ is None:
        raise UsageError("no PORT", hint=f"e.g. container-port {project} 8000 (or --list)")
    number = _port_number(port_)
    if remove:
        result = client.call("DELETE", path_of("containers", project, "ports", str(number)), {"user": user})
        if json_out:
            client.out.json(result)
        else:
            client.out.success(f"port {number} of {project} is no longer reachable")
        return
    result = open_port(client, project, number, user, server)
    if json_out:
        client.out.json(result)
