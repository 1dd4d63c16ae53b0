"""GPUs through the real request path (the private engine's fake NVIDIA hook); creates under contention."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from harness.users import ok, run_as

pytestmark = pytest.mark.docker

# 4 GPUs, the last split into MIG slices (3/7 + 2/7 + 1/7 + 1/7 gpueq): 7 slots in all.
INVENTORY = {
    "gpus": [
        {"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "slices": 7,
         "uuid": f"GPU-0000000{i}-0000-0000-0000-000000000000"}
        for i in range(3)
    ] + [
        {"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "slices": 7,
         "uuid": "GPU-00000003-0000-0000-0000-000000000000",
         "mig": [{"profile": p, "uuid": f"MIG-0000000{j}-3333-0000-0000-000000000000"}
                 for j, p in enumerate(("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"))]},
    ]
}  # fmt: skip


def reconfigure(home, **sections):
    """Change sections of the test's config (a `groups` entry is added to the shipped groups)."""
    path = home / "resource-limits.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def init_env(user, name):
    """The environment of the container's first process, as the engine (and its NVIDIA hook) set it."""
    out = ok(run_as(user, "container-run", name, "--", "sh", "-c", "tr '\\0' '\\n' < /proc/1/environ")).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture
def inventory(ds01_home):
    path = ds01_home / "gpus.yaml"
    path.write_text(yaml.safe_dump(INVENTORY))
    reconfigure(ds01_home, gpu={"inventory": str(path)})
    return path


def test_cpu_only_sees_no_gpu_and_never_calls_the_hook(inventory, engine_clean, unix_users, base_image_ref,
                                                       docker_engine):  # fmt: skip
    alice = unix_users["alice"]
    before = len(docker_engine.hook_calls())
    entry = json.loads(ok(run_as(alice, "container-create", "cpu", "--image", base_image_ref, "--cpu-only",
                                 "--json")).stdout)  # fmt: skip
    assert entry["gpus"] == []
    assert init_env(alice, "cpu")["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert len(docker_engine.hook_calls()) == before
    assert engine_clean.api.inspect_container(f"cpu._.{alice.uid}")["HostConfig"]["DeviceRequests"] is None


def test_gpu_container_sees_exactly_its_allocated_uuid(inventory, engine_clean, unix_users, base_image_ref,
                                                       docker_engine, ds01_home):  # fmt: skip
    alice = unix_users["alice"]  # a student: MIG slices only
    before = len(docker_engine.hook_calls())
    entry = json.loads(ok(run_as(alice, "container-create", "gpu", "--image", base_image_ref, "--gpus", "1",
                                 "--json")).stdout)  # fmt: skip
    (gpu,) = entry["gpus"]
    assert gpu["uuid"].startswith("MIG-") and gpu["gpueq"] == pytest.approx(int(gpu["profile"][0]) / 7)
    labels = engine_clean.api.inspect_container(f"gpu._.{alice.uid}")["Config"]["Labels"]
    assert labels["ds01.gpu.slots"] == gpu["slot"] and labels["ds01.gpu.uuids"] == gpu["uuid"]
    assert init_env(alice, "gpu")["NVIDIA_VISIBLE_DEVICES"] == gpu["uuid"]
    assert len(docker_engine.hook_calls()) == before + 1
    # a command run in the container gets it too (an exec has only Config.Env from the engine)
    echo = ("sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES")
    echoed = ok(run_as(alice, "container-run", "gpu", "--", *echo)).stdout
    assert echoed.strip() == gpu["uuid"]

    ok(run_as(alice, "container-stop", "gpu"))
    stopped = ok(run_as(alice, "container-stop", "gpu"))
    assert f"GPU {gpu['slot']} stays held for 15 min" in stopped.stdout
    ok(run_as(alice, "container-remove", "gpu"))
    assert "container-remove" not in ok(run_as(alice, "container-list")).stdout


def test_start_refuses_when_the_containers_gpu_left_the_inventory(inventory, engine_clean, unix_users,
                                                                  base_image_ref):  # fmt: skip
    alice = unix_users["alice"]
    entry = json.loads(ok(run_as(alice, "container-create", "gpu", "--image", base_image_ref,
                                 "--mig-profile", "2g.20gb", "--json")).stdout)  # fmt: skip
    relaid = json.loads(json.dumps(INVENTORY))
    relaid["gpus"][3]["mig"] = [{"profile": "7g.80gb", "uuid": "MIG-77777777-3333-0000-0000-000000000000"}]
    inventory.write_text(yaml.safe_dump(relaid))
    result = run_as(alice, "container-start", "gpu")
    assert result.returncode == 1
    assert entry["gpus"][0]["uuid"] in result.stderr and "no longer on this host" in result.stderr
    assert engine_clean.api.inspect_container(f"gpu._.{alice.uid}")["State"]["Status"] == "created"


def test_24_concurrent_creates_by_6_users_keep_every_guarantee(ds01_home, inventory, engine_clean, unix_users,
                                                              base_image_ref):  # fmt: skip
    people = list(unix_users.values())
    cohort = {"cohort": {"members": [u.name for u in people], "allow_full_gpu": True,
                         "max_gpu_equivalents": 1.0, "max_gpu_slots_per_container": 1,
                         "max_containers_per_user": 2}}  # fmt: skip
    reconfigure(ds01_home, groups=cohort)
    jobs = [(u, f"c{i}") for i in range(1, 5) for u in people]

    def create(job):
        user, name = job
        return user, run_as(
            user, "container-create", name, "--image", base_image_ref, "--gpus", "1", timeout=180
        )

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(create, jobs))

    codes = Counter(r.returncode for _, r in results)
    assert set(codes) <= {0, 4}, [r.stderr for _, r in results if r.returncode not in (0, 4)]
    for _, r in results:
        if r.returncode == 4:
            assert re.search(
                r"held by .*ds01t-\w+/c\d|c\d holds|already has \d of \d containers: c\d", r.stderr
            ), r.stderr
            assert len(r.stderr.strip().splitlines()) == 1
    containers = engine_clean.api.containers(all=True, filters={"label": "ds01.managed=true"})
    assert len(containers) == codes[0] and codes[0] >= 4
    slots, uuids = [], []
    gpueq, count = defaultdict(float), Counter()
    for c in containers:
        labels = c["Labels"]
        slots += labels["ds01.gpu.slots"].split(",")
        uuids += labels["ds01.gpu.uuids"].split(",")
        gpueq[labels["ds01.user"]] += float(labels["ds01.gpu.gpueq"])
        count[labels["ds01.user"]] += 1
    assert len(slots) == len(set(slots)) and len(uuids) == len(set(uuids))
    assert all(v <= 1.0 + 1e-6 for v in gpueq.values()), gpueq
    assert all(v <= 2 for v in count.values()), count
