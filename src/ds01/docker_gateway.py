"""The engine behind one `Gateway` (ds01d's side only): engine failures become ds01 errors (CONTRACT §5), and
everything it returns is plain data (dicts from the Engine API, or small dataclasses), so the layers above
never hold docker-py objects. Every call goes through docker-py, the only importer of `docker`: ds01d makes
one gateway and keeps it, so the import and the connection pool are paid once.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote

from ds01.engine_api import (
    API_VERSION,
    DEFAULT_SOCKET,
    ENGINE_HINT,
    TOOLKIT_HINT,
    ContainerSummary,
    Request,
    Transport,
    api_error,
    container_summary,
    demux,
    engine_address,
    unix_socket_path,
    unreachable,
)
from ds01.errors import Ds01Error, EngineUnavailable, NotFound, OperationFailed

# HostConfig keys ds01 passes (the keyword names of docker-py's `create_host_config`) -> Engine API names.
HOST_CONFIG_KEYS = {
    "binds": "Binds",
    "mounts": "Mounts",
    "network_mode": "NetworkMode",
    "init": "Init",
    "privileged": "Privileged",
    "security_opt": "SecurityOpt",
    "nano_cpus": "NanoCpus",
    "mem_limit": "Memory",
    "memswap_limit": "MemorySwap",
    "shm_size": "ShmSize",
    "pids_limit": "PidsLimit",
    "device_requests": "DeviceRequests",
    "cgroup_parent": "CgroupParent",
}


@dataclass(frozen=True)
class ImageSummary:
    id: str
    tags: tuple[str, ...]
    size: int
    created: int
    labels: Mapping[str, str]


@contextlib.contextmanager
def engine_errors(what: str = "", address: str | None = None) -> Iterator[None]:
    """Map docker-py and requests failures to the ds01 errors the socket transport raises."""
    try:
        yield
    except Ds01Error:
        raise
    except Exception as exc:
        mapped = _from_docker_py(exc, what, address or engine_address())
        if mapped is None:
            raise
        raise mapped from exc


def _from_docker_py(exc: Exception, what: str, address: str) -> Ds01Error | None:
    import docker.errors  # already loaded when docker-py raised; cheap otherwise on this error path
    import requests.exceptions

    if isinstance(exc, docker.errors.NotFound):
        return api_error(404, _explain(exc), what)
    if isinstance(exc, docker.errors.APIError):
        return api_error(int(exc.status_code or 500), _explain(exc), what)
    if isinstance(exc, requests.exceptions.Timeout) and not isinstance(
        exc, requests.exceptions.ConnectionError
    ):
        return EngineUnavailable(
            f"the Docker engine did not answer in time ({what or address})", hint=ENGINE_HINT
        )
    if isinstance(exc, requests.exceptions.ConnectionError | docker.errors.DockerException | PermissionError):
        permission = isinstance(exc, PermissionError) or "Permission denied" in str(exc)
        return unreachable(address, permission=permission)
    return None


def _explain(exc: Any) -> str:
    explanation = getattr(exc, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or exc)


def docker_host() -> str:
    """The engine address ds01 uses, for handing to the docker CLI (which would otherwise follow contexts)."""
    return engine_address()


def gpu_device_request(device_ids: list[str]) -> dict[str, Any]:
    """The HostConfig DeviceRequest for these GPUs (docker-py also accepts it as `device_requests=[...]`)."""
    return {
        "Driver": "nvidia",
        "DeviceIDs": list(device_ids),
        "Capabilities": [["gpu"]],
        "Count": 0,
        "Options": {},
    }


def host_config_json(host_config: Mapping[str, Any]) -> dict[str, Any]:
    """The Engine API HostConfig for `create_host_config`-style keywords; an unknown keyword is refused
    rather than dropped, so no limit or mount is silently lost."""
    unknown = set(host_config) - set(HOST_CONFIG_KEYS)
    if unknown:
        raise TypeError(f"host_config: unsupported keys {sorted(unknown)}")
    hc = {HOST_CONFIG_KEYS[k]: v for k, v in host_config.items() if v is not None}
    hc["NetworkMode"] = hc.get("NetworkMode") or "default"
    if "DeviceRequests" in hc:
        hc["DeviceRequests"] = [dict(r) for r in hc["DeviceRequests"]]
    return hc


def container_config_json(
    *,
    image: str,
    command: list[str] | None,
    labels: Mapping[str, str],
    host_config: Mapping[str, Any],
    environment: Mapping[str, str],
    user: str | None,
    working_dir: str | None,
    hostname: str | None,
    tty: bool,
) -> dict[str, Any]:
    """The body of `POST /containers/create`, as docker-py's `create_container` sends it (no None values)."""
    config = {
        "Image": image,
        "Cmd": command,
        "Labels": dict(labels),
        "Env": [f"{k}={v}" for k, v in environment.items()],
        "User": user,
        "WorkingDir": working_dir,
        "Hostname": hostname,
        "Tty": tty,
        "OpenStdin": tty,
        "StdinOnce": tty,
        "AttachStdin": tty,
        "AttachStdout": True,
        "AttachStderr": True,
        "NetworkDisabled": False,
        "HostConfig": host_config_json(host_config),
    }
    return {k: v for k, v in config.items() if v is not None}


def _q(ref: str) -> str:
    return quote(ref, safe="/:")


def _flag(value: bool) -> str:
    return "1" if value else "0"


class DockerPyTransport(Transport):
    """Engine API requests through docker-py's client (Unix socket, tcp://, ssh://, TLS)."""

    def __init__(self, api: Any, address: str) -> None:
        self.api = api
        self.address = address
        self.timeout = api.timeout

    def _send(self, req: Request) -> tuple[int, bytes]:
        with engine_errors(req.what, self.address):
            response = self.api.request(
                req.method,
                self.api.base_url + req.url,
                data=req.data,
                headers=req.headers,
                timeout=req.timeout,
            )
            return int(response.status_code), bytes(response.content)


class Gateway:
    def __init__(self, transport: Transport, *, address: str, timeout: float, api: Any = None) -> None:
        self.http = transport
        self.address = address
        self.timeout = timeout
        self._api = api

    @property
    def api(self) -> Any:
        """docker-py's low-level client, made on first use: only streams and uploads need it."""
        if self._api is None:
            self._api = _docker_api(self.address, self.timeout)
        return self._api

    def _errors(self, what: str = "") -> contextlib.AbstractContextManager[None]:
        return engine_errors(what, self.address)

    # -- engine -----------------------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        return dict(self.http.request("GET", "/version"))

    def info(self) -> dict[str, Any]:
        return dict(self.http.request("GET", "/info"))

    # -- containers -------------------------------------------------------------------------------
    def containers(
        self, *, labels: list[str] | None = None, name: str | None = None, all: bool = True
    ) -> list[ContainerSummary]:
        filters: dict[str, list[str]] = {}
        if labels:
            filters["label"] = list(labels)
        if name:
            filters["name"] = [name]
        return self._list_containers(filters, all=all, what="")

    def _list_containers(
        self, filters: dict[str, list[str]], *, all: bool, what: str
    ) -> list[ContainerSummary]:
        query = {"all": _flag(all)}
        if filters:
            query["filters"] = json.dumps(filters)
        raw = self.http.request("GET", "/containers/json", query=query, what=what) or []
        return [container_summary(c) for c in raw]

    def inspect(self, ref: str) -> dict[str, Any]:
        return dict(self.http.request("GET", f"/containers/{_q(ref)}/json", what=f"container {ref}"))

    def find(self, name: str) -> dict[str, Any] | None:
        try:
            return self.inspect(name)
        except NotFound:
            return None

    def create(
        self,
        *,
        image: str,
        name: str,
        command: list[str] | None,
        labels: Mapping[str, str],
        host_config: Mapping[str, Any],
        environment: Mapping[str, str] | None = None,
        user: str | None = None,
        working_dir: str | None = None,
        hostname: str | None = None,
        tty: bool = False,
    ) -> str:
        body = container_config_json(
            image=image,
            command=command,
            labels=labels,
            host_config=host_config,
            environment=environment or {},
            user=user,
            working_dir=working_dir,
            hostname=hostname,
            tty=tty,
        )
        result = self.http.request(
            "POST", "/containers/create", query={"name": name}, body=body, what=f"create {name}"
        )
        return str(result["Id"])

    def _post(self, ref: str, action: str, what: str, **query: str) -> None:
        self.http.request("POST", f"/containers/{_q(ref)}/{action}", query=query, what=what)

    def start(self, ref: str) -> None:
        self._post(ref, "start", f"start {ref}")

    def stop(self, ref: str, timeout: int = 10) -> None:
        # The engine answers after the container stopped: up to `timeout` s beyond the usual wait.
        self.http.request(
            "POST",
            f"/containers/{_q(ref)}/stop",
            query={"t": str(timeout)},
            what=f"stop {ref}",
            timeout=timeout,
        )

    def kill(self, ref: str, signal: str = "SIGKILL") -> None:
        self._post(ref, "kill", f"kill {ref}", signal=signal)

    def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        """`volumes`: the container's anonymous volumes go with it (named volumes never do)."""
        query = {"v": _flag(volumes), "force": _flag(force)}
        self.http.request("DELETE", f"/containers/{_q(ref)}", query=query, what=f"remove {ref}")

    def pause(self, ref: str) -> None:
        self._post(ref, "pause", f"pause {ref}")

    def unpause(self, ref: str) -> None:
        self._post(ref, "unpause", f"unpause {ref}")

    def logs(self, ref: str, *, follow: bool = False, tail: int | str = "all") -> Iterator[bytes]:
        with self._errors(f"logs {ref}"):
            out = self.api.logs(ref, stream=True, follow=follow, tail=tail)
        return iter(out)

    def exec(
        self,
        ref: str,
        cmd: list[str],
        *,
        user: str | None = None,
        workdir: str | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Run `cmd` in the container and wait: exit code and stdout+stderr (no TTY, so framed)."""
        what = f"exec in {ref}"
        config = {
            "AttachStdin": False,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": False,
            "Cmd": list(cmd),
            "Privileged": False,
            "User": user or "",
            "Env": [f"{k}={v}" for k, v in (environment or {}).items()],
        }
        if workdir:
            config["WorkingDir"] = workdir
        created = self.http.request("POST", f"/containers/{_q(ref)}/exec", body=config, what=what)
        exec_id = _q(str(created["Id"]))
        output = self.http.request(
            "POST", f"/exec/{exec_id}/start", body={"Detach": False, "Tty": False}, what=what, raw=True
        )
        code = self.http.request("GET", f"/exec/{exec_id}/json", what=what)["ExitCode"]
        return int(code or 0), demux(bytes(output))

    # -- interactive exec (a session's stream is handed to the client) ---------------------------------
    def exec_create(
        self,
        ref: str,
        cmd: list[str],
        *,
        user: str,
        workdir: str,
        tty: bool,
        stdin: bool,
        environment: Mapping[str, str] | None = None,
    ) -> str:
        """Create (not start) an exec of `cmd` as `user` in `workdir`; its id."""
        config = {
            "AttachStdin": stdin,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": tty,
            "Cmd": list(cmd),
            "Privileged": False,
            "User": user,
            "WorkingDir": workdir,
            "Env": [f"{k}={v}" for k, v in (environment or {}).items()],
        }
        created = self.http.request("POST", f"/containers/{_q(ref)}/exec", body=config, what=f"exec in {ref}")
        return str(created["Id"])

    def exec_attach(self, exec_id: str, *, tty: bool) -> socket.socket:
        """Start the exec on a fresh connection to the engine's Unix socket and return that connection,
        upgraded to the exec's raw stream (the engine speaks no more HTTP on it)."""
        path = unix_socket_path(self.address)
        if path is None:
            raise OperationFailed(
                f"interactive sessions need the engine on a Unix socket, not {self.address}",
                hint="ask an admin to point ds01d at the local engine (unix:///var/run/docker.sock)",
            )
        body = json.dumps({"Detach": False, "Tty": tty}).encode()
        head = (
            f"POST /v{API_VERSION}/exec/{_q(exec_id)}/start HTTP/1.1\r\nHost: docker\r\n"
            f"Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            try:
                sock.connect(path)
                sock.sendall(head + body)
                status, headers = _read_head(sock)
            except PermissionError as exc:
                raise unreachable(self.address, permission=True) from exc
            except (OSError, ValueError) as exc:
                raise unreachable(self.address, permission=False) from exc
            if status == 101 or (status == 200 and "raw-stream" in headers.get("content-type", "")):
                sock.settimeout(None)
                return sock
            size = min(int(headers.get("content-length", "0") or 0), 65536)
            detail = b""
            with contextlib.suppress(OSError):
                while len(detail) < size and (chunk := sock.recv(size - len(detail))):
                    detail += chunk
            raise api_error(status, _engine_message(detail), f"exec {exec_id[:12]}")
        except BaseException:
            sock.close()
            raise

    def exec_resize(self, exec_id: str, *, height: int, width: int) -> None:
        query = {"h": str(height), "w": str(width)}
        self.http.request("POST", f"/exec/{_q(exec_id)}/resize", query=query, what="resize")

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return dict(self.http.request("GET", f"/exec/{_q(exec_id)}/json", what=f"exec {exec_id[:12]}"))

    def top(self, ref: str) -> dict[str, Any]:
        query = {"ps_args": "-eo pid,ppid,pcpu,comm"}
        return dict(self.http.request("GET", f"/containers/{_q(ref)}/top", query=query, what=f"top {ref}"))

    def stats(self, ref: str) -> dict[str, Any]:
        query = {"stream": "0"}
        return dict(
            self.http.request("GET", f"/containers/{_q(ref)}/stats", query=query, what=f"stats {ref}")
        )

    def stats_many(self, refs: list[str]) -> dict[str, dict[str, Any]]:
        """One pass over many containers, in parallel (each stats call takes about a second)."""
        if not refs:
            return {}
        from concurrent.futures import ThreadPoolExecutor

        def one(ref: str) -> tuple[str, dict[str, Any]]:
            try:
                return ref, self.stats(ref)
            except (NotFound, OperationFailed):
                return ref, {}

        with ThreadPoolExecutor(max_workers=min(32, len(refs))) as pool:
            return dict(pool.map(one, refs))

    def commit(self, ref: str, *, repository: str, tag: str, labels: Mapping[str, str]) -> str:
        query = {"container": ref, "repo": repository, "tag": tag, "pause": "1"}
        body = {"Labels": dict(labels)}
        result = self.http.request("POST", "/commit", query=query, body=body, what=f"commit {ref}")
        return str(result["Id"])

    def changes(self, ref: str) -> list[str]:
        """Paths added to the container's filesystem since it was created (`docker diff`, kind A)."""
        raw = self.http.request("GET", f"/containers/{_q(ref)}/changes", what=f"diff {ref}") or []
        return [str(c["Path"]) for c in raw if c.get("Kind") == 1]

    # -- images -----------------------------------------------------------------------------------
    def images(self, *, labels: list[str] | None = None) -> list[ImageSummary]:
        query = {"only_ids": "0", "all": "0"}
        if labels:
            query["filters"] = json.dumps({"label": list(labels)})
        raw = self.http.request("GET", "/images/json", query=query) or []
        return [
            ImageSummary(
                i["Id"],
                tuple(i.get("RepoTags") or ()),
                int(i.get("Size", 0)),
                int(i.get("Created", 0)),
                i.get("Labels") or {},
            )
            for i in raw
        ]

    def image_inspect(self, ref: str) -> dict[str, Any] | None:
        try:
            return dict(self.http.request("GET", f"/images/{_q(ref)}/json", what=f"image {ref}"))
        except NotFound:
            return None

    def tag_image(self, ref: str, *, repository: str, tag: str) -> None:
        """Point `repository:tag` at `ref` (an id or a name); the tag moves off any image that had it."""
        query = {"repo": repository, "tag": tag}
        self.http.request("POST", f"/images/{_q(ref)}/tag", query=query, what=f"tag {repository}:{tag}")

    def remove_image(self, ref: str, *, force: bool = False) -> None:
        query = {"force": _flag(force), "noprune": "0"}
        self.http.request("DELETE", f"/images/{_q(ref)}", query=query, what=f"remove image {ref}")

    # -- networks ---------------------------------------------------------------------------------
    def network_inspect(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.http.request("GET", f"/networks/{_q(name)}", what=f"network {name}"))
        except NotFound:
            return None

    def network_create(
        self, name: str, *, labels: Mapping[str, str], options: Mapping[str, str] | None = None
    ) -> str:
        """A bridge network (refused when one of that name exists: the engine would allow duplicates)."""
        body = {
            "Name": name, "Driver": "bridge", "CheckDuplicate": True, "Labels": dict(labels),
            "Options": dict(options or {}), "Attachable": False, "Internal": False,
        }  # fmt: skip
        result = self.http.request("POST", "/networks/create", body=body, what=f"network {name}")
        return str(result["Id"])

    def network_remove(self, name: str) -> None:
        self.http.request("DELETE", f"/networks/{_q(name)}", what=f"network {name}")

    # -- builds from a prepared context, image users, imports from a file -------------------------
    def containers_using(self, image_id: str) -> list[ContainerSummary]:
        """Every container (any state) created from this image or an image built on it."""
        return self._list_containers({"ancestor": [image_id]}, all=True, what=f"image {image_id}")

    def import_image_file(self, path: str, *, repository: str, tag: str, changes: list[str]) -> None:
        """`docker import` of a root filesystem tar on disk, streamed (a Debian rootfs is ~300 MB)."""
        with self._errors(f"import {repository}:{tag}"):
            self.api.import_image_from_file(path, repository=repository, tag=tag, changes=changes)


def _read_head(sock: socket.socket, limit: int = 65536) -> tuple[int, dict[str, str]]:
    """The status and headers of an answer, read one byte at a time: nothing of the stream after them."""
    raw = bytearray()
    while not raw.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte or len(raw) >= limit:
            raise ValueError("the engine's answer ended before its headers did")
        raw += byte
    status_line, *lines = raw.decode("latin-1").split("\r\n")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _engine_message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        return body.decode(errors="replace").strip()


def context_archive(path: str, dockerfile: str) -> tuple[IO[bytes], str]:
    """The build context docker-py would send for `path` (honouring `.dockerignore`) and the Dockerfile's
    name inside it. Call it with the owner's rights so the archive holds only what they may read."""
    from docker.api.build import process_dockerfile
    from docker.utils import tar

    ignore = os.path.join(path, ".dockerignore")
    exclude = None
    if os.path.exists(ignore):
        with open(ignore) as f:
            lines = [x.strip() for x in f.read().splitlines()]
        exclude = [x for x in lines if x and not x.startswith("#")]
    name, extra = process_dockerfile(dockerfile, path)
    try:
        archive = tar(path, exclude=exclude, dockerfile=(name, extra), gzip=False)
    except OSError as exc:
        raise OperationFailed(
            f"cannot read the build context {path}: {exc}",
            hint="every file in the project folder must be readable by you",
        ) from exc
    return archive, str(name)


def _tls_in_env() -> bool:
    return bool(os.environ.get("DOCKER_TLS_VERIFY") or os.environ.get("DOCKER_CERT_PATH"))


def _docker_api(address: str, timeout: float) -> Any:
    """docker-py's low-level client for `address` (TLS settings from the environment when present)."""
    import docker

    with engine_errors(address=address):
        tls = docker.utils.kwargs_from_env().get("tls", False) if _tls_in_env() else False
        return docker.APIClient(base_url=address, version=API_VERSION, timeout=timeout, tls=tls)


def connect(timeout: int = 120) -> Gateway:
    """A gateway to the engine at $DOCKER_HOST (or the system socket); Docker CLI contexts are ignored."""
    address = engine_address()
    sock = unix_socket_path(address)
    if sock is not None and not os.path.exists(sock):
        raise EngineUnavailable(f"cannot reach the Docker engine: no socket at {sock}", hint=ENGINE_HINT)
    api = _docker_api(address, timeout)
    return Gateway(DockerPyTransport(api, address), address=address, timeout=timeout, api=api)


__all__ = [
    "DEFAULT_SOCKET", "TOOLKIT_HINT", "ContainerSummary", "DockerPyTransport", "Gateway", "ImageSummary",
    "Transport", "connect", "docker_host", "engine_errors", "gpu_device_request",
]  # fmt: skip
