"""The create spec: limits as engine values, the equivalent `docker create` line, never privileged."""

from __future__ import annotations

import shlex

from ds01.atomic.container_spec import IDLE_COMMAND, ContainerSpec, Mount, limit_args
from ds01.config import Limits


def spec(**over: object) -> ContainerSpec:
    base: dict[str, object] = dict(
        image="ds01-1001/thesis:latest",
        name="thesis._.1001",
        hostname="thesis",
        user="1001:1001",
        command=IDLE_COMMAND,
        labels={"ds01.managed": "true", "ds01.project": "thesis"},
        environment={"NVIDIA_VISIBLE_DEVICES": "void"},
        mounts=(Mount("/home/a/workspace/thesis", "/workspace"), Mount("/srv/data", "/data", read_only=True)),
        network="bridge",
        init=True,
        nano_cpus=2_000_000_000,
        mem_limit=1024**3,
        memswap_limit=1024**3,
        shm_size=64 * 1024**2,
        pids_limit=100,
    )
    base.update(over)
    return ContainerSpec(**base)  # type: ignore[arg-type]


def test_cpus_are_capped_at_the_host_and_swap_never_below_memory():
    lim = limit_args(Limits(max_cpus=8.0, memory=2 * 1024**3, memory_swap=1024**3), host_cpus=2)
    assert lim.nano_cpus == 2_000_000_000
    assert lim.memswap_limit == 2 * 1024**3
    assert limit_args(Limits(max_cpus=0.5), host_cpus=2).nano_cpus == 500_000_000


def test_unlimited_values_are_left_out():
    lim = limit_args(
        Limits(max_cpus=None, memory=None, memory_swap=32 * 1024**3, shm_size=None, pids_limit=None)
    )
    assert (lim.nano_cpus, lim.mem_limit, lim.memswap_limit, lim.shm_size, lim.pids_limit) == (None,) * 5
    assert "nano_cpus" not in spec(nano_cpus=None).host_config()


def test_host_config_is_never_privileged_and_adds_no_capability():
    hc = spec().host_config()
    assert hc["privileged"] is False and "cap_add" not in hc
    assert hc["security_opt"] == ["no-new-privileges"]
    assert hc["init"] is True and hc["network_mode"] == "bridge"
    assert "binds" not in hc  # Binds would let dockerd make a missing source as root
    assert hc["mounts"] == [
        {"Type": "bind", "Source": "/home/a/workspace/thesis", "Target": "/workspace", "ReadOnly": False,
         "BindOptions": {"Propagation": "rprivate"}},
        {"Type": "bind", "Source": "/srv/data", "Target": "/data", "ReadOnly": True,
         "BindOptions": {"Propagation": "rprivate"}},
    ]  # fmt: skip
    assert "device_requests" not in hc


def test_gpu_ids_become_one_nvidia_device_request():
    hc = spec(gpu_device_ids=("MIG-aaa", "MIG-bbb")).host_config()
    (request,) = hc["device_requests"]
    assert request["Driver"] == "nvidia" and request["DeviceIDs"] == ["MIG-aaa", "MIG-bbb"]
    assert request["Capabilities"] == [["gpu"]]


def test_dry_run_line_is_a_shell_quoted_docker_create():
    s = spec(labels={"ds01.workspace": "/home/a/my work"}, gpu_device_ids=("GPU-1", "GPU-2"))
    argv = shlex.split(s.docker_create_line())
    assert argv[:2] == ["docker", "create"]
    assert argv[-3:] == ["ds01-1001/thesis:latest", "sleep", "infinity"]
    assert "--init" in argv and "--privileged" not in argv
    assert argv[argv.index("--user") + 1] == "1001:1001"
    assert argv[argv.index("--workdir") + 1] == "/workspace"
    assert "ds01.workspace=/home/a/my work" in argv
    assert argv[argv.index("--gpus") + 1] == '"device=GPU-1,GPU-2"'
    assert argv[argv.index("--cpus") + 1] == "2"
    assert "type=bind,source=/srv/data,target=/data,readonly" in argv
    assert "--volume" not in argv


def test_image_cmd_leaves_the_command_out():
    assert spec(command=None).docker_create_argv()[-1] == "ds01-1001/thesis:latest"


def test_sizes_in_the_docker_line_read_back_as_the_same_bytes():
    argv = spec(mem_limit=32 * 1024**3, memswap_limit=1536 * 1024**2, shm_size=1000).docker_create_argv()
    assert argv[argv.index("--memory") + 1] == "32g"
    assert argv[argv.index("--memory-swap") + 1] == "1536m"
    assert argv[argv.index("--shm-size") + 1] == "1000b"
