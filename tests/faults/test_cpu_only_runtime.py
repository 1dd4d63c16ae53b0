"""A CPU-only container sees no GPU even where the engine's default runtime is nvidia: the private engine's
default runtime is a fake `nvidia` runtime (runc underneath) that records what the real one would act on."""

from __future__ import annotations

from typing import Any

import pytest

from harness.users import run_as

pytestmark = pytest.mark.docker


def _cuda_like(client: Any, base: str) -> str:
    """An image that asks for every GPU, as CUDA base images do (ENV NVIDIA_VISIBLE_DEVICES=all)."""
    holder = client.api.create_container(base, ["true"])
    client.api.commit(
        holder["Id"], repository="cuda/like", tag="latest", changes=["ENV NVIDIA_VISIBLE_DEVICES=all"]
    )
    client.api.remove_container(holder["Id"], force=True)
    return "cuda/like:latest"


def test_a_cpu_only_container_runs_under_the_nvidia_default_runtime_with_no_gpu(
    ds01_home: Any, engine_clean: Any, docker_engine: Any, base_image_ref: str, unix_users: Any
) -> None:
    assert engine_clean.api.info()["DefaultRuntime"] == "nvidia"
    image = _cuda_like(engine_clean, base_image_ref)
    # the control: a container made behind ds01's back would get every GPU from this runtime
    plain = engine_clean.api.create_container(image, ["true"], host_config={"NetworkMode": "none"})
    engine_clean.api.start(plain["Id"])
    engine_clean.api.wait(plain["Id"], timeout=30)
    assert docker_engine.runtime_calls()[plain["Id"]] == "all"

    alice = unix_users["alice"]
    up = run_as(alice, "container-deploy", "cpu", "--cpu-only", "--image", image, "--background")
    assert up.returncode == 0, up.stderr
    info = engine_clean.api.inspect_container(f"cpu._.{alice.uid}")
    assert info["HostConfig"]["Runtime"] == "nvidia"  # the default runtime is the one in force
    assert not info["HostConfig"].get("DeviceRequests")
    assert "NVIDIA_VISIBLE_DEVICES=void" in info["Config"]["Env"]
    assert docker_engine.runtime_calls()[info["Id"]] == "void"  # what the runtime acted on: no GPU
    seen = engine_clean.containers.get(info["Id"]).exec_run(["sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES"])
    assert seen.output.decode().strip() == "void"
    assert run_as(alice, "container-retire", "cpu", "--yes").returncode == 0
