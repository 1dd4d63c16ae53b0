"""The gateway's calls (ds01d's only way to the engine, through docker-py) against the private engine:
the answers, and engine failures as ds01 errors."""

from __future__ import annotations

from typing import Any

import pytest

from ds01.docker_gateway import DockerPyTransport, Gateway, connect, gpu_device_request
from ds01.engine_api import TOOLKIT_HINT
from ds01.errors import NotFound, OperationFailed


@pytest.fixture
def gateway(docker_engine: Any, engine_clean: Any) -> Gateway:
    gw = connect()
    assert isinstance(gw.http, DockerPyTransport)
    return gw


def _create(gw: Gateway, image: str, name: str, **host_config: Any) -> str:
    return gw.create(
        image=image,
        name=name,
        command=["sleep", "infinity"],
        labels={"ds01.managed": "true"},
        host_config={"network_mode": "none", "init": True, "privileged": False, **host_config},
        environment={"GREETING": "hello there"},
        user="1000:1000",
        working_dir="/tmp",
        hostname="box",
    )


def test_a_container_through_its_life(gateway: Gateway, base_image_ref: str) -> None:
    cid = _create(gateway, base_image_ref, "life", mem_limit=64 * 1024**2, pids_limit=64)
    raw = gateway.inspect("life")
    assert raw["Id"] == cid
    assert raw["HostConfig"]["Memory"] == 64 * 1024**2 and raw["HostConfig"]["PidsLimit"] == 64
    assert raw["HostConfig"]["Init"] is True and raw["Config"]["User"] == "1000:1000"
    assert "GREETING=hello there" in raw["Config"]["Env"]
    [summary] = gateway.containers(labels=["ds01.managed=true"], name="life")
    assert (summary.id, summary.name, summary.state) == (cid, "life", "created")

    gateway.start(cid)
    gateway.start(cid)  # already running: the engine's 304 is not an error
    code, output = gateway.exec(cid, ["sh", "-c", "echo out; echo err >&2; exit 3"], workdir="/")
    assert code == 3 and sorted(output.splitlines()) == [b"err", b"out"]  # two pipes: any order
    code, output = gateway.exec(cid, ["sh", "-c", "echo $GREETING; id -u; touch /tmp/new"], user="0",
                                environment={"GREETING": "hi"})  # fmt: skip
    assert (code, output) == (0, b"hi\n0\n")
    assert "/tmp/new" in gateway.changes(cid)
    assert any(p[-1] == "sleep" for p in gateway.top(cid)["Processes"])
    assert gateway.stats(cid)["memory_stats"]
    gateway.pause(cid)
    assert gateway.inspect(cid)["State"]["Status"] == "paused"
    gateway.unpause(cid)
    gateway.stop(cid, timeout=5)
    assert gateway.inspect(cid)["State"]["Status"] == "exited"
    image_id = gateway.commit(cid, repository="ds01-test/committed", tag="latest", labels={"ds01.x": "1"})
    image = gateway.image_inspect("ds01-test/committed:latest")
    assert image is not None and image["Id"] == image_id and image["Config"]["Labels"]["ds01.x"] == "1"
    assert [c.id for c in gateway.containers_using(image_id)] == []
    assert any("ds01-test/committed:latest" in i.tags for i in gateway.images(labels=["ds01.x=1"]))
    gateway.remove(cid)
    assert gateway.find(cid) is None
    gateway.remove_image("ds01-test/committed:latest")
    assert gateway.image_inspect("ds01-test/committed:latest") is None


def test_engine_errors_become_ds01_errors(gateway: Gateway, base_image_ref: str) -> None:
    with pytest.raises(NotFound, match="No such container: nowhere"):
        gateway.inspect("nowhere")
    _create(gateway, base_image_ref, "twice")
    with pytest.raises(OperationFailed, match=r"^create twice: Conflict\. The container name \"/twice\""):
        _create(gateway, base_image_ref, "twice")
    with pytest.raises(OperationFailed, match=r"kill twice: .*is not running"):
        gateway.kill("twice")
    odd = gpu_device_request(["GPU-0"]) | {"Driver": "no-such-driver"}
    _create(gateway, base_image_ref, "gpu", device_requests=[odd])
    with pytest.raises(OperationFailed) as raised:
        gateway.start("gpu")
    assert raised.value.message == "the engine cannot give this container a GPU"
    assert raised.value.hint == TOOLKIT_HINT
