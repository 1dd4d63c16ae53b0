"""The only module that imports `docker`. It turns engine failures into ds01 errors (CONTRACT §5).

Everything it returns is plain data (dicts from the Engine API, or small dataclasses), so the layers above
never hold docker-py objects.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

import docker
import docker.errors
import requests.exceptions
from docker.types import DeviceRequest

from ds01.errors import EngineUnavailable, NotFound, OperationFailed

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
# Engine API 1.41 = Docker 20.10, the oldest engine we support; pinning it skips a version round trip.
API_VERSION = os.environ.get("DS01_DOCKER_API_VERSION", "1.41")
ENGINE_HINT = "is the Docker daemon running? On a lab server run ds01 commands through the lab's sudo rule"
TOOLKIT_HINT = (
    "the NVIDIA container toolkit is missing or not configured on this host; ask an admin to install "
    "nvidia-container-toolkit, or use --cpu-only"
)


@dataclass(frozen=True)
class ContainerSummary:
    id: str
    name: str
    image: str
    state: str
    status: str
    labels: Mapping[str, str]
    created: int


@dataclass(frozen=True)
class ImageSummary:
    id: str
    tags: tuple[str, ...]
    size: int
    created: int
    labels: Mapping[str, str]


@contextlib.contextmanager
def engine_errors(what: str = "") -> Iterator[None]:
    """Map docker-py and requests failures to ds01 errors with a hint of how to fix them."""
    try:
        yield
    except docker.errors.NotFound as exc:
        raise NotFound(_explain(exc) or f"{what} not found") from exc
    except docker.errors.APIError as exc:
        text = _explain(exc)
        if "could not select device driver" in text:
            raise OperationFailed("the engine cannot give this container a GPU", hint=TOOLKIT_HINT) from exc
        prefix = f"{what}: " if what else ""
        raise OperationFailed(f"{prefix}{text}") from exc
    except (requests.exceptions.ConnectionError, docker.errors.DockerException, PermissionError) as exc:
        text = str(exc)
        if "Permission denied" in text or isinstance(exc, PermissionError):
            raise EngineUnavailable(
                f"permission denied on the Docker socket {_socket()}",
                hint="run ds01 through the lab's sudo rule (e.g. `sudo container-list`) or ask an admin",
            ) from exc
        raise EngineUnavailable(f"cannot reach the Docker engine at {_socket()}", hint=ENGINE_HINT) from exc


def _explain(exc: docker.errors.APIError | docker.errors.NotFound) -> str:
    explanation = getattr(exc, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or exc)


def _socket() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def docker_host() -> str:
    """The engine address ds01 uses, for handing to the docker CLI (which would otherwise follow contexts)."""
    return _socket()


def gpu_device_request(device_ids: list[str]) -> DeviceRequest:
    return DeviceRequest(driver="nvidia", device_ids=list(device_ids), capabilities=[["gpu"]])


class Gateway:
    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.api = client.api

    # -- engine -----------------------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        with engine_errors():
            return dict(self.api.version())

    def info(self) -> dict[str, Any]:
        with engine_errors():
            return dict(self.api.info())

    # -- containers -------------------------------------------------------------------------------
    def containers(
        self, *, labels: list[str] | None = None, name: str | None = None, all: bool = True
    ) -> list[ContainerSummary]:
        filters: dict[str, Any] = {}
        if labels:
            filters["label"] = labels
        if name:
            filters["name"] = name
        with engine_errors():
            raw = self.api.containers(all=all, filters=filters)
        return [_summary(c) for c in raw]

    def inspect(self, ref: str) -> dict[str, Any]:
        with engine_errors(f"container {ref}"):
            return dict(self.api.inspect_container(ref))

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
        with engine_errors(f"create {name}"):
            hc = self.api.create_host_config(**host_config)
            result = self.api.create_container(
                image=image,
                name=name,
                command=command,
                labels=dict(labels),
                host_config=hc,
                environment=dict(environment or {}),
                user=user,
                working_dir=working_dir,
                hostname=hostname,
                tty=tty,
                stdin_open=tty,
            )
        return str(result["Id"])

    def start(self, ref: str) -> None:
        with engine_errors(f"start {ref}"):
            self.api.start(ref)

    def stop(self, ref: str, timeout: int = 10) -> None:
        with engine_errors(f"stop {ref}"):
            self.api.stop(ref, timeout=timeout)

    def kill(self, ref: str, signal: str = "SIGKILL") -> None:
        with engine_errors(f"kill {ref}"):
            self.api.kill(ref, signal=signal)

    def remove(self, ref: str, *, force: bool = False) -> None:
        with engine_errors(f"remove {ref}"):
            self.api.remove_container(ref, force=force, v=False)

    def pause(self, ref: str) -> None:
        with engine_errors(f"pause {ref}"):
            self.api.pause(ref)

    def unpause(self, ref: str) -> None:
        with engine_errors(f"unpause {ref}"):
            self.api.unpause(ref)

    def logs(self, ref: str, *, follow: bool = False, tail: int | str = "all") -> Iterator[bytes]:
        with engine_errors(f"logs {ref}"):
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
        with engine_errors(f"exec in {ref}"):
            ex = self.api.exec_create(
                ref, cmd, user=user or "", workdir=workdir, environment=dict(environment or {})
            )
            output = self.api.exec_start(ex["Id"])
            code = self.api.exec_inspect(ex["Id"])["ExitCode"]
        return int(code or 0), bytes(output)

    def top(self, ref: str) -> dict[str, Any]:
        with engine_errors(f"top {ref}"):
            return dict(self.api.top(ref, ps_args="-eo pid,ppid,pcpu,comm"))

    def stats(self, ref: str) -> dict[str, Any]:
        with engine_errors(f"stats {ref}"):
            return dict(self.api.stats(ref, stream=False))

    def stats_many(self, refs: list[str]) -> dict[str, dict[str, Any]]:
        """One pass over many containers, in parallel (each stats call takes about a second)."""
        if not refs:
            return {}

        def one(ref: str) -> tuple[str, dict[str, Any]]:
            try:
                return ref, self.stats(ref)
            except (NotFound, OperationFailed):
                return ref, {}

        with ThreadPoolExecutor(max_workers=min(32, len(refs))) as pool:
            return dict(pool.map(one, refs))

    def commit(self, ref: str, *, repository: str, tag: str, labels: Mapping[str, str]) -> str:
        with engine_errors(f"commit {ref}"):
            result = self.api.commit(ref, repository=repository, tag=tag, conf={"Labels": dict(labels)})
        return str(result["Id"])

    def changes(self, ref: str) -> list[str]:
        """Paths added to the container's filesystem since it was created (`docker diff`, kind A)."""
        with engine_errors(f"diff {ref}"):
            raw = self.api.diff(ref) or []
        return [str(c["Path"]) for c in raw if c.get("Kind") == 1]

    def archive_get(self, ref: str, path: str) -> bytes:
        with engine_errors(f"copy from {ref}"):
            stream, _ = self.api.get_archive(ref, path)
            return b"".join(stream)

    # -- images -----------------------------------------------------------------------------------
    def images(self, *, labels: list[str] | None = None) -> list[ImageSummary]:
        filters = {"label": labels} if labels else None
        with engine_errors():
            raw = self.api.images(filters=filters)
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
            with engine_errors(f"image {ref}"):
                return dict(self.api.inspect_image(ref))
        except NotFound:
            return None

    def remove_image(self, ref: str, *, force: bool = False) -> None:
        with engine_errors(f"remove image {ref}"):
            self.api.remove_image(ref, force=force, noprune=False)

    def build(
        self,
        *,
        path: str,
        dockerfile: str,
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
        nocache: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Stream the legacy builder's JSON events (docker-py cannot drive BuildKit)."""
        with engine_errors(f"build {tag}"):
            stream = self.api.build(
                path=path,
                dockerfile=dockerfile,
                tag=tag,
                buildargs=dict(buildargs),
                labels=dict(labels),
                nocache=nocache,
                rm=True,
                forcerm=True,
                decode=True,
            )
            yield from stream

    def import_image(self, data: bytes, *, repository: str, tag: str, changes: list[str]) -> None:
        with engine_errors(f"import {repository}:{tag}"):
            self.api.import_image_from_data(data, repository=repository, tag=tag, changes=changes)

    # -- builds from a prepared context, image users, imports from a file -------------------------
    def build_archive(self, context: IO[bytes], *, dockerfile: str, tag: str, buildargs: Mapping[str, str],
                      labels: Mapping[str, str], nocache: bool = False) -> Iterator[dict[str, Any]]:
        """Like `build`, from a context archive made by `context_archive` (read with the user's rights)."""
        with engine_errors(f"build {tag}"):
            stream = self.api.build(
                fileobj=context, custom_context=True, dockerfile=dockerfile, tag=tag,
                buildargs=dict(buildargs), labels=dict(labels), nocache=nocache, rm=True, forcerm=True,
                decode=True,
            )
            yield from stream

    def containers_using(self, image_id: str) -> list[ContainerSummary]:
        """Every container (any state) created from this image or an image built on it."""
        with engine_errors(f"image {image_id}"):
            raw = self.api.containers(all=True, filters={"ancestor": image_id})
        return [_summary(c) for c in raw]

    def import_image_file(self, path: str, *, repository: str, tag: str, changes: list[str]) -> None:
        """`docker import` of a root filesystem tar on disk, streamed (a Debian rootfs is ~300 MB)."""
        with engine_errors(f"import {repository}:{tag}"):
            self.api.import_image_from_file(path, repository=repository, tag=tag, changes=changes)


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
        raise OperationFailed(f"cannot read the build context {path}: {exc}",
                              hint="every file in the project folder must be readable by you") from exc
    return archive, str(name)


def connect(timeout: int = 120) -> Gateway:
    """A gateway to the engine at $DOCKER_HOST (or the system socket); Docker CLI contexts are ignored."""
    base_url = _socket()
    if base_url.startswith("unix://"):
        sock = base_url[len("unix://") :]
        if not os.path.exists(sock):
            raise EngineUnavailable(f"cannot reach the Docker engine: no socket at {sock}", hint=ENGINE_HINT)
        if not os.access(sock, os.R_OK | os.W_OK):
            raise EngineUnavailable(
                f"permission denied on the Docker socket {sock}",
                hint="run ds01 through the lab's sudo rule (e.g. `sudo container-list`) or ask an admin",
            )
    with engine_errors():
        client = docker.DockerClient(base_url=base_url, version=API_VERSION, timeout=timeout)
    return Gateway(client)


def _summary(raw: Mapping[str, Any]) -> ContainerSummary:
    names = raw.get("Names") or ["/"]
    return ContainerSummary(
        id=raw["Id"],
        name=names[0].lstrip("/"),
        image=raw.get("Image", ""),
        state=raw.get("State", ""),
        status=raw.get("Status", ""),
        labels=raw.get("Labels") or {},
        created=int(raw.get("Created", 0)),
    )


__all__ = [
    "ContainerSummary", "Gateway", "ImageSummary", "connect", "docker_host", "engine_errors",
    "gpu_device_request",
]  # fmt: skip
