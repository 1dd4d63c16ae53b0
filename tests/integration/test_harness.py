"""The harness itself: a private engine runs the local base image, and GPU requests reach the fake hook."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker


def test_private_engine_runs_a_container_from_the_local_base_image(engine_clean, base_image_ref):
    out = engine_clean.containers.run(
        base_image_ref, ["sh", "-c", "echo hello from $(uname -s)"], remove=True, network_mode="none"
    )
    assert out.decode().strip() == "hello from Linux"


def test_gpu_device_request_reaches_the_container_through_the_fake_hook(
    engine_clean, base_image_ref, docker_engine
):
    from ds01.docker_gateway import gpu_device_request

    before = len(docker_engine.hook_calls())
    uuid = "GPU-11111111-2222-3333-4444-555555555555"
    out = engine_clean.containers.run(
        base_image_ref,
        ["sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES"],
        remove=True,
        network_mode="none",
        device_requests=[gpu_device_request([uuid])],
    )
    assert out.decode().strip() == uuid
    calls = docker_engine.hook_calls()[before:]
    assert len(calls) == 1 and calls[0].startswith("prestart")
