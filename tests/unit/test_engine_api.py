"""ds01d's Engine API transport (docker-py) against a tiny HTTP server on a Unix socket: answers, the mapping
of engine errors to ds01 errors, and the failures of an unreachable engine. No Docker engine needed (the
real-engine proof is tests/integration/test_gateway_transport.py)."""

from __future__ import annotations

import http.server
import json
import os
import socket
import socketserver
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ds01.docker_gateway import (
    DockerPyTransport,
    _docker_api,
    container_config_json,
    gpu_device_request,
    host_config_json,
)
from ds01.engine_api import TOOLKIT_HINT, demux
from ds01.errors import EngineUnavailable, NotFound, OperationFailed

DEVICE_ERROR = 'could not select device driver "nvidia" with capabilities: [[gpu]]'
# path below /v1.41 -> (status, body)
ANSWERS: dict[str, tuple[int, bytes]] = {
    "/containers/missing/json": (404, b'{"message":"No such container: missing"}'),
    "/containers/busy/start": (409, b'{"message":"container busy is paused"}'),
    "/containers/broken/start": (500, b'{"message":"cgroup trouble"}'),
    "/containers/gpu/start": (500, json.dumps({"message": DEVICE_ERROR}).encode()),
    "/containers/plain/start": (500, b"not json at all\n"),
    "/containers/silent/start": (500, b""),
    "/containers/ok/start": (204, b""),
    "/containers/json": (200, b'[{"Id":"abc","Names":["/thesis._.2001"],"State":"running","Created":7}]'),
}


class _Handler(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, Any]]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        self.seen.append({"method": self.command, "path": path, "query": query, "body": body})
        status, payload = ANSWERS.get(path.removeprefix("/v1.41"), (404, b'{"message":"page not found"}'))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass

    def address_string(self) -> str:
        return "unix"


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def transport_at(path: str, timeout: float) -> DockerPyTransport:
    address = f"unix://{path}"
    return DockerPyTransport(_docker_api(address, timeout), address)


@pytest.fixture(scope="module")
def fake_engine(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DockerPyTransport, list[dict[str, Any]]]]:
    path = tmp_path_factory.mktemp("engine") / "docker.sock"
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_Handler,), {"seen": seen})
    server = _Server(str(path), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield transport_at(str(path), timeout=5), seen
    server.shutdown()
    server.server_close()


def test_json_answer_query_and_body_reach_the_engine(fake_engine: Any) -> None:
    transport, seen = fake_engine
    rows = transport.request("GET", "/containers/json", query={"all": "1", "filters": '{"label":["a=b"]}'})
    assert rows[0]["Names"] == ["/thesis._.2001"]
    assert seen[-1]["path"] == "/v1.41/containers/json"
    assert "all=1" in seen[-1]["query"] and "filters=%7B%22label" in seen[-1]["query"]
    assert transport.request("POST", "/containers/ok/start", body={"x": 1}) is None
    assert seen[-1]["method"] == "POST" and json.loads(seen[-1]["body"]) == {"x": 1}


def test_404_is_not_found_with_the_engines_message(fake_engine: Any) -> None:
    transport, _ = fake_engine
    with pytest.raises(NotFound, match="No such container: missing"):
        transport.request("GET", "/containers/missing/json", what="container missing")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("busy", "start busy: container busy is paused"),
        ("broken", "start broken: cgroup trouble"),
        ("plain", "start plain: not json at all"),
        ("silent", "start silent: the engine answered 500"),
    ],
)
def test_other_errors_are_operation_failed_with_the_engines_message(
    fake_engine: Any, ref: str, expected: str
) -> None:
    transport, _ = fake_engine
    with pytest.raises(OperationFailed) as raised:
        transport.request("POST", f"/containers/{ref}/start", what=f"start {ref}")
    assert str(raised.value) == expected
    assert not isinstance(raised.value, NotFound)


def test_device_driver_error_points_at_the_toolkit(fake_engine: Any) -> None:
    transport, _ = fake_engine
    with pytest.raises(OperationFailed) as raised:
        transport.request("POST", "/containers/gpu/start", what="start gpu")
    assert raised.value.message == "the engine cannot give this container a GPU"
    assert raised.value.hint == TOOLKIT_HINT


def test_missing_socket_is_engine_unavailable(tmp_path: Path) -> None:
    transport = transport_at(str(tmp_path / "nothing.sock"), timeout=2)
    with pytest.raises(EngineUnavailable, match="cannot reach the Docker engine at unix://") as raised:
        transport.request("GET", "/version")
    assert "engine running" in (raised.value.hint or "")


def test_connection_refused_is_engine_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "dead.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))  # bound, never listening: connect() is refused
    try:
        with pytest.raises(EngineUnavailable, match="cannot reach the Docker engine"):
            transport_at(str(path), timeout=2).request("GET", "/version")
    finally:
        dead.close()


def test_an_engine_that_never_answers_times_out(tmp_path: Path) -> None:
    path = tmp_path / "mute.sock"
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.bind(str(path))
    mute.listen(1)  # connections queue up, nobody reads them
    try:
        with pytest.raises(EngineUnavailable, match=r"did not answer in time \(stop x\)"):
            transport_at(str(path), timeout=0.2).request("POST", "/x/stop", what="stop x", timeout=0.1)
    finally:
        mute.close()


def test_permission_denied_on_the_socket(fake_engine: Any, tmp_path: Path) -> None:
    transport, _ = fake_engine
    path = transport.address.removeprefix("unix://")
    os.chmod(path, 0o600)
    try:
        if os.geteuid() != 0:
            outcome = _permission_outcome(transport)
        else:  # root reads any socket: ask as an unprivileged user in a child process
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read)
                os.setgid(65534)
                os.setuid(65534)
                os.write(write, _permission_outcome(transport).encode())
                os._exit(0)
            os.close(write)
            os.waitpid(pid, 0)
            with os.fdopen(read) as f:
                outcome = f.read()
    finally:
        os.chmod(path, 0o666)
    assert outcome.startswith("EngineUnavailable: permission denied on the Docker socket unix://"), outcome
    assert "ds01d must run as root" in outcome


def _permission_outcome(transport: DockerPyTransport) -> str:
    try:
        transport.request("GET", "/version")
    except EngineUnavailable as exc:
        return f"EngineUnavailable: {exc} | {exc.hint}"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "answered"


def test_demux_joins_the_payloads_of_framed_output() -> None:
    frames = b"".join(struct.pack(">BxxxL", n, len(p)) + p for n, p in ((1, b"out\n"), (2, b"err\n")))
    assert demux(frames) == b"out\nerr\n"
    assert demux(b"") == b""


def _spec_host_config() -> dict[str, Any]:
    from ds01.atomic.container_spec import ContainerSpec, Mount

    spec = ContainerSpec(
        image="ds01-2001/thesis:latest",
        name="thesis._.2001",
        hostname="thesis",
        user="2001:2001",
        command=("sleep", "infinity"),
        labels={"ds01.managed": "true"},
        environment={"NVIDIA_VISIBLE_DEVICES": "void"},
        mounts=(Mount("/srv/ws/alice", "/workspace"), Mount("/srv/data", "/data", read_only=True)),
        network="none",
        init=True,
        nano_cpus=2_000_000_000,
        mem_limit=8 * 1024**3,
        memswap_limit=8 * 1024**3,
        shm_size=1024**3,
        pids_limit=512,
        gpu_device_ids=("GPU-0", "MIG-1"),
    )
    return spec.host_config()


def test_host_config_matches_what_docker_py_would_send() -> None:
    from docker.types import HostConfig

    kwargs = _spec_host_config()
    ours = host_config_json(kwargs)
    theirs = json.loads(json.dumps(HostConfig(version="1.41", **kwargs)))
    assert json.loads(json.dumps(ours)) == theirs | {"Privileged": False}  # said out loud, not left out
    assert ours["DeviceRequests"] == [gpu_device_request(["GPU-0", "MIG-1"])]
    assert "Binds" not in ours  # Binds would let dockerd create missing sources as root, following links
    assert [(m["Type"], m["Source"], m["Target"], m["ReadOnly"]) for m in ours["Mounts"]] == [
        ("bind", "/srv/ws/alice", "/workspace", False),
        ("bind", "/srv/data", "/data", True),
    ]
    with pytest.raises(TypeError, match="cap_add"):
        host_config_json({"cap_add": ["SYS_ADMIN"]})


def test_container_config_matches_what_docker_py_would_send() -> None:
    from docker.types import ContainerConfig

    kwargs = _spec_host_config()
    args: dict[str, Any] = {
        "image": "img:latest",
        "command": ["sleep", "infinity"],
        "labels": {"ds01.managed": "true"},
        "environment": {"A": "1", "B": "x=y"},
        "user": "2001:2001",
        "working_dir": "/workspace",
        "hostname": "thesis",
    }
    for tty in (False, True):
        ours = container_config_json(**args, host_config=kwargs, tty=tty)
        theirs = ContainerConfig(
            "1.41", **args, tty=tty, stdin_open=tty, host_config=host_config_json(kwargs)
        )
        theirs = {k: v for k, v in theirs.items() if v is not None}
        assert json.loads(json.dumps(ours)) == json.loads(json.dumps(theirs))


def test_the_clients_hot_path_imports_no_engine_yaml_gpu_or_rich_library() -> None:
    """deploy, retire, list and status as clients: no docker, requests, yaml, pynvml or rich (issue 11)."""
    code = (
        "import sys\n"
        "import ds01.cli.entrypoints, ds01.cli.container, ds01.cli.orchestration, ds01.cli.gpu, ds01.client\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'docker', 'requests', 'urllib3', 'yaml',"
        " 'pynvml', 'rich', 'questionary'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_tcp_engine_goes_through_docker_py_with_the_same_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from ds01.docker_gateway import DockerPyTransport, connect

    with socket.socket() as probe:  # a local port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
    gateway = connect(timeout=5)
    assert isinstance(gateway.http, DockerPyTransport)
    with pytest.raises(EngineUnavailable, match=f"cannot reach the Docker engine at tcp://127.0.0.1:{port}"):
        gateway.containers()
