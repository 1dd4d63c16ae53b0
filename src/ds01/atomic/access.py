"""Ways into a project's container, inside ds01d: SSH (`sshd -i` as the user), Jupyter, and ports.

- **SSH.** The container's sshd runs in inetd mode as the container's owner, in one exec whose stream the
  client joins to its stdin/stdout (the laptop's `ProxyCommand`). Its config, the project's host key and the
  user's own public keys reach it in that exec's environment and are written by the exec itself, as the
  user, into a 0700 folder in the container's /tmp (never the workspace). The host key is kept per project
  in `<state_dir>/access/hostkeys/<uid>/<project>` (root-only), so the laptop sees the same key after every
  deploy. Logins land in /workspace with the container's environment (GPU variables included).
- **Ports and Jupyter.** A relay thread in ds01d listens on a Unix socket in the owner's run folder,
  `<run_dir>/users/<uid>/<project>/` (0700, the user's), the socket itself the user's and 0600. Each
  connection (checked again by SO_PEERCRED) is joined to a TCP connection made inside the container's own
  network namespace to 127.0.0.1:PORT. No TCP port is opened on the host. Jupyter is a notebook server run as
  the user on the container's loopback, with a token, behind the same relay (`jupyter.sock`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import secrets
import selectors
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ds01.errors import NotFound, OperationFailed, PermissionDenied, UsageError

if TYPE_CHECKING:
    from ds01.atomic.container_view import ContainerView
    from ds01.config import PathSettings
    from ds01.docker_gateway import Gateway
    from ds01.identity import User

log = logging.getLogger("ds01d")

WORKDIR = "/workspace"
JUPYTER_PORT = 8888  # on the container's own loopback
JUPYTER_SOCKET = "jupyter.sock"
MAX_KEYS_BYTES = 64 * 1024
KEY_LINE = re.compile(
    r"^(?:[^\s\"]+(?:\"[^\"]*\")?[^\s\"]*\s+)?"  # options (no quoted spaces split the type)
    r"(?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp(?:256|384|521)|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)"
    r"\s+[A-Za-z0-9+/=]+(?:\s.*)?$"
)
CLONE_NEWNET = 0x40000000
RELAY_CHUNK = 1 << 16


# -- names of things ---------------------------------------------------------------------------------
def access_dir(paths: PathSettings) -> Path:
    return paths.state_dir / "access"


def user_run_dir(paths: PathSettings, uid: int) -> Path:
    return paths.run_root() / "users" / str(uid)


def project_run_dir(paths: PathSettings, uid: int, project: str) -> Path:
    return user_run_dir(paths, uid) / project


def port_socket_name(port: int) -> str:
    return f"port-{port}.sock"


def check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise UsageError(f"port {port} is out of range", hint="use a TCP port from 1 to 65535, e.g. 8000")
    return port


# -- the user's public keys --------------------------------------------------------------------------
def clean_keys(text: str) -> str:
    """The lines of an authorized_keys file that are public keys; anything else is exit 2."""
    if len(text.encode()) > MAX_KEYS_BYTES:
        raise UsageError("~/.ssh/authorized_keys is over 64 KiB", hint="keep only the keys you log in with")
    keys = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "\0" in line or not KEY_LINE.match(line):
            raise UsageError(
                f"~/.ssh/authorized_keys line {number} is not a public key",
                hint="each line must be like `ssh-ed25519 AAAA... you@laptop`",
            )
        keys.append(line)
    if not keys:
        raise UsageError(
            "no public key in ~/.ssh/authorized_keys",
            hint="add your laptop's public key there first (ssh-copy-id from the laptop does it)",
        )
    return "\n".join(keys) + "\n"


# -- the project's host key -----------------------------------------------------------------------------
def host_key(paths: PathSettings, owner: User, project: str) -> tuple[str, str]:
    """(private, public) host key of `owner`'s project, made once and kept root-only in the state dir."""
    folder = access_dir(paths) / "hostkeys" / str(owner.uid)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    for d in (access_dir(paths), access_dir(paths) / "hostkeys", folder):
        os.chmod(d, 0o700)
    key = folder / project
    pub = folder / f"{project}.pub"
    if not key.exists() or not pub.exists():
        keygen = shutil.which("ssh-keygen")
        if keygen is None:
            raise OperationFailed(
                "ssh-keygen is not installed on this host", hint="ask an admin to install openssh-client"
            )
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            made = Path(tmp) / "key"
            proc = subprocess.run(
                [keygen, "-q", "-t", "ed25519", "-N", "", "-C", f"{project}.ds01", "-f", str(made)],
                capture_output=True, text=True,
            )  # fmt: skip
            if proc.returncode != 0:
                raise OperationFailed(f"ssh-keygen failed: {proc.stderr.strip()[:200]}")
            os.replace(made.with_suffix(".pub"), pub)
            os.replace(made, key)
    return key.read_text(), pub.read_text().strip()


# -- SSH: one exec of `sshd -i` as the user ----------------------------------------------------------------
SSH_DIR = "/tmp/.ds01-ssh-$(id -u)"

SESSION_SCRIPT = """#!/bin/sh
cd /workspace 2>/dev/null || cd
case "$SSH_ORIGINAL_COMMAND" in
  "") exec "${SHELL:-/bin/sh}" -l ;;
  ds01-sftp)
    for s in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server /usr/lib/sftp-server \\
             /usr/libexec/sftp-server; do
      [ -x "$s" ] && exec "$s"
    done
    echo "this image has no sftp-server (openssh-server provides it)" >&2; exit 1 ;;
  *) exec "${SHELL:-/bin/sh}" -c "$SSH_ORIGINAL_COMMAND" ;;
esac
"""

# Runs as the user in the container: writes what sshd needs (from the environment) and becomes sshd.
# Nothing may reach stdout before sshd: it is the SSH stream.
LAUNCH_SCRIPT = """umask 077
sshd=$(command -v sshd 2>/dev/null || true)
[ -n "$sshd" ] || sshd=/usr/sbin/sshd
if [ ! -x "$sshd" ]; then printf '%s\\n' "$DS01_NO_SSHD" >&2; exit 127; fi
d=/tmp/.ds01-ssh-$(id -u)
mkdir -p "$d" 2>/dev/null; chmod 700 "$d" || exit 1
printf '%s\\n' "$DS01_HOST_KEY" > "$d/host_key" || exit 1
printf '%s' "$DS01_KEYS" > "$d/authorized_keys"
printf '%s' "$DS01_SESSION" > "$d/session"; chmod 700 "$d/session"
printf '%s' "$DS01_SSHD_CONFIG" | sed "s#@DIR@#$d#g" > "$d/sshd_config"
unset DS01_HOST_KEY DS01_KEYS DS01_SESSION DS01_SSHD_CONFIG DS01_NO_SSHD
exec "$sshd" -i -f "$d/sshd_config"
"""

SKIP_ENV = frozenset({"HOME", "HOSTNAME", "USER", "LOGNAME", "SHELL", "TERM", "PWD", "SHLVL", "MAIL"})


def _setenv_line(env: list[str]) -> str:
    """`SetEnv` for the container's environment (sshd starts sessions with a fresh one)."""
    parts = []
    for item in env:
        name, sep, value = item.partition("=")
        if not sep or name in SKIP_ENV or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            continue
        if any(c in value for c in '\n\r\0"\\'):
            continue
        parts.append(f'"{name}={value}"')
    return f"SetEnv {' '.join(parts)}\n" if parts else ""


def sshd_config(env: list[str]) -> str:
    return (
        "HostKey @DIR@/host_key\n"
        "AuthorizedKeysFile @DIR@/authorized_keys\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin no\n"
        "UsePAM no\n"
        "PidFile none\n"
        "StrictModes no\n"
        "PrintMotd no\n"
        "PrintLastLog no\n"
        "X11Forwarding no\n"
        "AllowTcpForwarding yes\n"
        "AllowStreamLocalForwarding no\n"
        "PermitTunnel no\n"
        "ForceCommand @DIR@/session\n"
        "Subsystem sftp ds01-sftp\n"
        "LogLevel ERROR\n" + _setenv_line(env)
    )


def no_sshd_message(project: str) -> str:
    return (
        f"ds01: the image of {project} has no OpenSSH server; add it with: "
        f"image-update {project} --add-system openssh-server"
    )


def container_env(inspect: Mapping[str, Any]) -> list[str]:
    """The environment of the container's first process as the engine and its hooks set it (the GPU
    variables included), read from procfs; the configured one when that process cannot be read."""
    pid = int((inspect.get("State") or {}).get("Pid") or 0)
    if pid > 1:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read(1 << 20)
            return [item.decode("utf-8", "replace") for item in raw.split(b"\0") if item]
    return list((inspect.get("Config") or {}).get("Env") or [])


def ssh_exec(
    paths: PathSettings, owner: User, project: str, inspect: Mapping[str, Any], keys: str
) -> tuple[list[str], dict[str, str]]:
    """The command and environment of the exec that becomes the container's `sshd -i`."""
    private, _ = host_key(paths, owner, project)
    env_list = container_env(inspect)
    env = {
        "DS01_HOST_KEY": private.strip(),
        "DS01_KEYS": clean_keys(keys),
        "DS01_SESSION": SESSION_SCRIPT,
        "DS01_SSHD_CONFIG": sshd_config(env_list),
        "DS01_NO_SSHD": no_sshd_message(project),
    }
    return ["/bin/sh", "-c", LAUNCH_SCRIPT], env


# -- the owner's run folder ------------------------------------------------------------------------------
WALK = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


def _mkdir_owned(parent_fd: int, name: str, uid: int, gid: int, mode: int) -> int:
    """`name` in `parent_fd` (made if missing, never through a link), owned by uid:gid with `mode`."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, mode, dir_fd=parent_fd)
    fd = os.open(name, WALK, dir_fd=parent_fd)
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.fchown(fd, uid, gid)
    os.fchmod(fd, mode)
    return fd


def open_project_run_dir(paths: PathSettings, owner: User, project: str) -> int:
    """An open descriptor of `<run_dir>/users/<uid>/<project>` (made as needed: `users` root's 0755, the
    rest the owner's 0700), reached without following any link."""
    root = paths.run_root()
    os.makedirs(root, mode=0o755, exist_ok=True)
    fd = os.open(root, WALK)
    try:
        users = _mkdir_owned(fd, "users", 0, 0, 0o755)
    finally:
        os.close(fd)
    try:
        mine = _mkdir_owned(users, str(owner.uid), owner.uid, owner.gid, 0o700)
    except OSError as exc:
        raise _not_a_folder(user_run_dir(paths, owner.uid), exc) from None
    finally:
        os.close(users)
    try:
        return _mkdir_owned(mine, project, owner.uid, owner.gid, 0o700)
    except OSError as exc:
        raise _not_a_folder(project_run_dir(paths, owner.uid, project), exc) from None
    finally:
        os.close(mine)


def _not_a_folder(path: Path, exc: OSError) -> PermissionDenied:
    return PermissionDenied(
        f"{path} is not a folder ds01 can use ({exc.strerror})",
        hint=f"remove it (rm {path}); ds01 makes it again",
    )


def _bind_owned(paths: PathSettings, owner: User, project: str, filename: str) -> socket.socket:
    """A listening socket at `<project run dir>/<filename>`, the owner's and 0600. It is bound in a
    root-only folder and then renamed into place, so no link the user planted is ever followed."""
    private = paths.run_root() / ".relay"
    os.makedirs(private, mode=0o700, exist_ok=True)
    os.chmod(private, 0o700)
    tmp_name = f"{secrets.token_hex(8)}.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(private / tmp_name))
        os.chown(private / tmp_name, owner.uid, owner.gid, follow_symlinks=False)
        os.chmod(private / tmp_name, 0o600)
        listener.listen(16)
        dir_fd = os.open(private, WALK)
        target_fd = open_project_run_dir(paths, owner, project)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(filename, dir_fd=target_fd)
            os.rename(tmp_name, filename, src_dir_fd=dir_fd, dst_dir_fd=target_fd)
        finally:
            os.close(dir_fd)
            os.close(target_fd)
    except BaseException:
        listener.close()
        with contextlib.suppress(OSError):
            os.unlink(private / tmp_name)
        raise
    return listener


def _unlink_in_run_dir(paths: PathSettings, owner: User, project: str, filename: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(project_run_dir(paths, owner.uid, project), WALK)
        try:
            os.unlink(filename, dir_fd=fd)
        finally:
            os.close(fd)


# -- a TCP connection inside the container's network namespace ------------------------------------------
def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _own_netns() -> tuple[int, int]:
    st = os.stat("/proc/self/ns/net")
    return st.st_dev, st.st_ino


def open_netns(gateway: Gateway, container_id: str, owner_uid: int | None = None) -> int:
    """A descriptor of the running container's network namespace (never the host's); with `owner_uid`,
    only of a container that user owns."""
    from ds01 import naming

    raw = gateway.inspect(container_id)
    labels = (raw.get("Config") or {}).get("Labels") or {}
    if owner_uid is not None and str(labels.get(naming.LABEL_UID, "")) != str(owner_uid):
        raise PermissionDenied(f"{container_id} is not the relay owner's container")
    state = raw.get("State") or {}
    pid = int(state.get("Pid") or 0)
    if not state.get("Running") or pid <= 1:
        raise OperationFailed("the container is not running", hint="start it first (container-start NAME)")
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        again = (gateway.inspect(container_id).get("State") or {}).get("Pid")
        st = os.fstat(fd)
        if int(again or 0) != pid:
            raise OperationFailed("the container restarted meanwhile", hint="try again")
        if (st.st_dev, st.st_ino) == _own_netns():
            raise PermissionDenied(
                "the container shares the host's network; ds01 relays only into a container's own network",
                hint="ask an admin: containers.network must not be `host`",
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def connect_in_netns(netns_fd: int, port: int, timeout: float = 5.0) -> socket.socket:
    """A TCP connection to 127.0.0.1:`port` as seen inside the namespace: made by a short-lived thread
    that joins the namespace (a socket stays in the namespace it was made in; no other thread moves)."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            if _libc().setns(netns_fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns: {os.strerror(err)}")
            box["sock"] = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    t = threading.Thread(target=work, name=f"netns-connect-{port}", daemon=True)
    t.start()
    t.join(timeout + 5)
    if "sock" in box:
        sock: socket.socket = box["sock"]
        sock.settimeout(None)
        return sock
    err = box.get("error")
    if isinstance(err, OSError):
        raise err
    raise OSError(f"no connection to port {port}")


# -- relays --------------------------------------------------------------------------------------------
@dataclass
class Relay:
    uid: int
    gid: int
    project: str
    container_id: str  # the container's name (`thesis._.1001`): the relay outlives a redeploy
    port: int
    filename: str
    path: str
    listener: socket.socket
    kind: str = "port"  # or "jupyter"
    closed: threading.Event = field(default_factory=threading.Event)

    def describe(self) -> dict[str, Any]:
        return {"project": self.project, "port": self.port, "socket": self.path, "kind": self.kind}


class Relays:
    """The relays ds01d runs: (uid, project, filename) -> Relay; one accept thread each."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.relays: dict[tuple[int, str, str], Relay] = {}
        self.restored = False

    # The port relays are recorded (root-only) so that a restarted ds01d opens them again.
    def _save(self, paths: PathSettings) -> None:
        with self.lock:
            rows = [
                {"uid": r.uid, "project": r.project, "container": r.container_id, "port": r.port}
                for r in self.relays.values()
                if r.kind == "port"
            ]
        path = access_dir(paths) / "ports.json"
        os.makedirs(path.parent, mode=0o700, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(rows, f)
        os.replace(tmp, path)

    def restore(self, gateway_factory: Any, paths: PathSettings) -> None:
        """Once per ds01d: the recorded port relays of containers that still exist, opened again."""
        from ds01.identity import user_by_uid

        with self.lock:
            if self.restored:
                return
            self.restored = True
        try:
            rows = json.loads((access_dir(paths) / "ports.json").read_text())
        except (OSError, ValueError):
            return
        dropped = False
        for row in rows if isinstance(rows, list) else []:
            try:
                uid, port = int(row["uid"]), check_port(int(row["port"]))
                project, container = str(row["project"]), str(row["container"])
                if self.get(uid, project, port_socket_name(port)):
                    continue
                if gateway_factory().find(container) is None:  # the container is gone: so is its relay
                    dropped = True
                    continue
                self.open(gateway_factory, paths, user_by_uid(uid), project, container, port)
            except Exception:  # one bad record costs only itself
                dropped = True
                log.warning("port relay not restored: %r", row, exc_info=True)
        if dropped:
            with contextlib.suppress(OSError):
                self._save(paths)

    def open(
        self, gateway_factory: Any, paths: PathSettings, owner: User, project: str, container_id: str,
        port: int, *, filename: str | None = None, kind: str = "port",
    ) -> Relay:  # fmt: skip
        filename = filename or port_socket_name(port)
        key = (owner.uid, project, filename)
        with self.lock:
            old = self.relays.pop(key, None)
        if old is not None:
            self._close(old)
        listener = _bind_owned(paths, owner, project, filename)
        path = str(project_run_dir(paths, owner.uid, project) / filename)
        relay = Relay(owner.uid, owner.gid, project, container_id, port, filename, path, listener, kind)
        with self.lock:
            self.relays[key] = relay
        threading.Thread(
            target=self._accept, args=(relay, gateway_factory), daemon=True, name=f"relay-{project}-{port}"
        ).start()
        if kind == "port":
            self._save(paths)
        return relay

    def of(self, uid: int, project: str | None = None) -> list[Relay]:
        with self.lock:
            return [r for (u, p, _), r in sorted(self.relays.items()) if u == uid and project in (None, p)]

    def get(self, uid: int, project: str, filename: str) -> Relay | None:
        with self.lock:
            return self.relays.get((uid, project, filename))

    def close(self, paths: PathSettings, owner: User, project: str, filename: str) -> bool:
        with self.lock:
            relay = self.relays.pop((owner.uid, project, filename), None)
        if relay is None:
            return False
        self._close(relay)
        _unlink_in_run_dir(paths, owner, project, filename)
        if relay.kind == "port":
            self._save(paths)
        return True

    def close_project(self, paths: PathSettings, owner: User, project: str) -> list[Relay]:
        gone = self.of(owner.uid, project)
        for r in gone:
            self.close(paths, owner, project, r.filename)
        return gone

    def _close(self, relay: Relay) -> None:
        relay.closed.set()
        with contextlib.suppress(OSError):
            relay.listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            relay.listener.close()

    def _accept(self, relay: Relay, gateway_factory: Any) -> None:
        while not relay.closed.is_set():
            try:
                conn, _ = relay.listener.accept()
            except OSError:
                return
            threading.Thread(
                target=self._serve, args=(relay, conn, gateway_factory), daemon=True,
                name=f"relay-conn-{relay.project}-{relay.port}",
            ).start()  # fmt: skip

    def _serve(self, relay: Relay, conn: socket.socket, gateway_factory: Any) -> None:
        upstream: socket.socket | None = None
        try:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _, uid, _ = struct.unpack("3i", creds)
            if uid not in (relay.uid, 0):  # the socket's mode already says so: checked once more
                log.warning("relay %s:%s refused uid %s", relay.project, relay.port, uid)
                return
            netns = open_netns(gateway_factory(), relay.container_id, relay.uid)
            try:
                upstream = connect_in_netns(netns, relay.port)
            finally:
                os.close(netns)
            pump(conn, upstream)
        except Exception as exc:  # a refused or failed connection ends only itself
            log.debug("relay %s:%s: %s", relay.project, relay.port, exc)
        finally:
            conn.close()
            if upstream is not None:
                upstream.close()


def pump(a: socket.socket, b: socket.socket) -> None:
    """Bytes both ways until both sides are done (a half-close is passed on)."""
    sel = selectors.DefaultSelector()
    peers = {a: b, b: a}
    for s in peers:
        sel.register(s, selectors.EVENT_READ)
    open_reads = 2
    try:
        while open_reads:
            for key, _ in sel.select():
                src: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = src.recv(RELAY_CHUNK)
                except OSError:
                    data = b""
                dst = peers[src]
                if data:
                    try:
                        dst.sendall(data)
                    except OSError:
                        return
                    continue
                sel.unregister(src)
                open_reads -= 1
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
    finally:
        sel.close()


RELAYS = Relays()


# -- Jupyter ---------------------------------------------------------------------------------------------
JUPYTER_SCRIPT = """cd /workspace 2>/dev/null || cd
log=/tmp/.ds01-jupyter-$(id -u).log
set -- --no-browser --ip=127.0.0.1 --port={port} --port-retries=0 --notebook-dir=/workspace
# the kernel is named after the project (ipykernel's own installer, into the user's home in the container)
if python3 -m ipykernel install --user --name '{project}' --display-name '{project}' >/dev/null 2>&1; then
  set -- "$@" --MultiKernelManager.default_kernel_name='{project}'
fi
for j in jupyter-lab jupyter-notebook; do
  command -v "$j" >/dev/null 2>&1 && exec "$j" "$@" > "$log" 2>&1
done
for py in python3 python; do
  command -v "$py" >/dev/null 2>&1 && "$py" -c 'import notebook' 2>/dev/null \\
    && exec "$py" -m notebook "$@" > "$log" 2>&1
done
echo "no jupyter in this image" > "$log"
exit 127
"""


def no_jupyter_message(project: str) -> str:
    return f"the image of {project} has no Jupyter server"


def jupyter_hint(project: str) -> str:
    return f"add it with: image-update {project} --add-system python3-notebook (or --add jupyterlab)"


def jupyter_record_path(paths: PathSettings, docker_name: str) -> Path:
    return access_dir(paths) / "jupyter" / f"{docker_name}.json"


def read_jupyter(paths: PathSettings, docker_name: str) -> dict[str, Any] | None:
    try:
        data = json.loads(jupyter_record_path(paths, docker_name).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_jupyter(paths: PathSettings, docker_name: str, record: Mapping[str, Any]) -> None:
    path = jupyter_record_path(paths, docker_name)
    os.makedirs(path.parent, mode=0o700, exist_ok=True)
    os.chmod(access_dir(paths), 0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(dict(record), f)
    os.replace(tmp, path)


def forget_jupyter(paths: PathSettings, docker_name: str) -> None:
    with contextlib.suppress(OSError):
        jupyter_record_path(paths, docker_name).unlink()


def start_jupyter(gateway: Gateway, view: ContainerView, user: str, token: str) -> str:
    """A notebook server as the user on the container's loopback, detached; its exec id."""
    script = JUPYTER_SCRIPT.format(port=JUPYTER_PORT, project=view.name)
    exec_id = gateway.exec_create(
        view.id,
        ["/bin/sh", "-c", script],
        user=user,
        workdir=WORKDIR,
        tty=False,
        stdin=False,
        environment={"JUPYTER_TOKEN": token},  # not in argv, where other processes could read it
    )
    gateway.http.request(
        "POST", f"/exec/{exec_id}/start", body={"Detach": True, "Tty": False}, what="start jupyter", raw=True
    )
    return exec_id


def wait_listening(gateway: Gateway, view: ContainerView, exec_id: str, port: int, wait: float) -> None:
    """Until something in the container accepts on 127.0.0.1:`port`; the server's end is an error."""
    deadline = time.monotonic() + wait
    while True:
        state = gateway.exec_inspect(exec_id)
        if not state.get("Running") and state.get("ExitCode") is not None:
            raise NotFound(no_jupyter_message(view.name), hint=jupyter_hint(view.name))
        netns = open_netns(gateway, view.id)
        try:
            with contextlib.closing(connect_in_netns(netns, port, timeout=1.0)):
                return
        except OSError:
            pass
        finally:
            os.close(netns)
        if time.monotonic() > deadline:
            raise OperationFailed(
                f"the Jupyter server of {view.name} did not start within {wait:.0f} s",
                hint=f"see /tmp/.ds01-jupyter-<uid>.log inside it (container-run {view.name} -- cat ...)",
            )
        time.sleep(0.3)


def new_token() -> str:
    return secrets.token_hex(24)
