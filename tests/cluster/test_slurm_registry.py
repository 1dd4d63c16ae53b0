"""Cluster mode with a lab registry: an image built once and pushed there (`image-push`) is pulled by the
node's ds01d, with the user's own login, before the job's container is created on a node that lacks it."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from harness import registry, slurm
from harness.users import ok, run_as

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]
PASSWORD = "node-pull-Secret-81"


@pytest.fixture
def reg(docker_engine: Any) -> Iterator[registry.Registry]:
    with registry.running(docker_engine.netns, "alice-lab", PASSWORD) as r:
        yield r


def write_login(user: Any, address: str) -> None:
    folder = user.home / ".docker"
    folder.mkdir(exist_ok=True)
    auth = base64.b64encode(f"alice-lab:{PASSWORD}".encode()).decode()
    (folder / "config.json").write_text(json.dumps({"auths": {address: {"auth": auth}}}))
    for p in (folder, folder / "config.json"):
        os.chown(p, user.uid, user.gid)
    (folder / "config.json").chmod(0o600)


def test_the_node_pulls_the_pushed_project_image_before_create(
    slurm_cluster: slurm.Cluster,
    slurm_world: Any,
    unix_users: Any,
    base_image_ref: str,
    engine_clean: Any,
    reg: registry.Registry,
) -> None:
    alice, bob = unix_users["alice"], unix_users["bob"]
    sections = slurm_world.slurm_sections
    slurm_world.reconfigure(**{**sections, "cluster": {**sections["cluster"], "registry": reg.address}})
    local = f"ds01-{alice.uid}/exp:latest"
    remote = f"{reg.address}/{alice.name}/exp:latest"
    engine_clean.images.get(base_image_ref).tag(f"ds01-{alice.uid}/exp", "latest")
    try:
        write_login(alice, reg.address)
        ok(run_as(alice, "image-push", "exp", remote, "--json"))  # built once, pushed to the lab registry
        engine_clean.images.remove(local)  # a node that never had it
        entry = json.loads(ok(slurm.deploy(alice, slurm_cluster.env, "exp", "--gpus", "1")).stdout)
        assert entry["status"] == "running" and entry["slurm_job"]
        inspect = engine_clean.api.inspect_container(entry["container"])
        assert inspect["Config"]["Image"] == local  # named on this node as on the one that built it
        assert engine_clean.images.get(local).id == engine_clean.images.get(base_image_ref).id
        assert not [t for i in engine_clean.images.list() for t in i.tags if t == remote]  # no stray name
        events = [json.loads(x) for x in (slurm_world / "log" / "events.jsonl").read_text().splitlines()]
        pulls = [e["details"]["image"] for e in events if e["event_type"] == "image_pull"]
        assert pulls == [remote], pulls
        assert PASSWORD not in (slurm_world / "log" / "events.jsonl").read_text()
        assert PASSWORD not in slurm_world.server.log_text()

        # bob has no image of that name anywhere and no login: the pull fails, the job ends, nothing runs
        refused = slurm.deploy(bob, slurm_cluster.env, "exp", "--gpus", "1")
        assert refused.returncode != 0 and f"{reg.address}/{bob.name}/exp" in refused.stderr, refused.stderr
        assert engine_clean.api.containers(all=True, filters={"label": f"ds01.uid={bob.uid}"}) == []
    finally:
        shutil.rmtree(alice.home / ".docker", ignore_errors=True)


def test_an_image_of_another_user_under_ones_name_is_refused_and_dropped(
    slurm_cluster: slurm.Cluster,
    slurm_world: Any,
    unix_users: Any,
    base_image_ref: str,
    engine_clean: Any,
    reg: registry.Registry,
) -> None:
    """Someone with push rights puts an image labelled as bob's (`ds01.uid`) where alice's project image
    would be: the node pulls it, refuses to run it for alice and removes it again."""
    alice, bob = unix_users["alice"], unix_users["bob"]
    sections = slurm_world.slurm_sections
    slurm_world.reconfigure(**{**sections, "cluster": {**sections["cluster"], "registry": reg.address}})
    remote = f"{reg.address}/{alice.name}/exp"
    recipe = f"FROM {base_image_ref}\nLABEL ds01.uid={bob.uid}\n".encode()
    engine_clean.images.build(fileobj=io.BytesIO(recipe), tag=f"{remote}:latest", rm=True)
    auth = {"username": reg.username, "password": PASSWORD}
    pushed = engine_clean.images.push(remote, tag="latest", auth_config=auth)
    assert "digest" in pushed, pushed
    engine_clean.images.remove(f"{remote}:latest")
    write_login(alice, reg.address)
    try:
        refused = slurm.deploy(alice, slurm_cluster.env, "exp", "--gpus", "1")
    finally:
        shutil.rmtree(alice.home / ".docker", ignore_errors=True)
    assert refused.returncode != 0 and "belongs to another user" in refused.stderr, refused.stderr
    assert engine_clean.api.containers(all=True) == []
    names = [t for i in engine_clean.images.list() for t in i.tags]
    assert f"{remote}:latest" not in names and f"ds01-{alice.uid}/exp:latest" not in names, names
    assert slurm_cluster.jobs(alice.name) == []
