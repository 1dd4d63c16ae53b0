"""A deploy typed on a login node: the job runs on the node Slurm picks, whose own ds01d makes the container;
the command follows it there (`srun --jobid ID --overlap container-list`) and the shell reaches it the same
way. On this one host a second ds01d plays the login node (its own socket, state and `node_name`); each
task on the Slurm node talks to the node's ds01d, as a node's default socket would."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from harness import daemon, slurm
from harness.users import ok, run_as

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def login_node(slurm_cluster: slurm.Cluster, slurm_world: Any) -> Iterator[daemon.Ds01d]:
    """ds01d of a login host `ds01-login` (same config, engine and shared workspaces; its own state)."""
    root = slurm_world / "login"
    for sub, mode in (("", 0o755), ("state", 0o700), ("log", 0o700)):
        (root / sub).mkdir(mode=mode, exist_ok=True)
    config = yaml.safe_load(slurm_world.config.read_text())
    paths = {"state_dir": root / "state", "log_dir": root / "log", "socket": root / "sock"}
    config["paths"].update({k: str(v) for k, v in paths.items()})
    config["cluster"]["node_name"] = "ds01-login"
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    server = daemon.start_ds01d(root / "config.yaml", root / "sock")
    slurm_cluster.node_env(DS01_SOCKET=str(slurm_world.socket))  # tasks on ds01-n1: the node's ds01d
    yield server
    slurm_cluster.node_env()
    daemon.stop_ds01d(server)


@pytest.fixture
def on_login(slurm_cluster: slurm.Cluster, login_node: daemon.Ds01d) -> dict[str, str]:
    """The environment of a command typed on the login node."""
    return {**slurm_cluster.env, "DS01_SOCKET": str(login_node.socket)}


def deploy_from(env: dict[str, str], user: Any, name: str, image: str) -> dict[str, Any]:
    """`container-deploy NAME --gpus 1` typed with `env`: its entry, once the container runs."""
    return dict(json.loads(ok(slurm.deploy(user, env, name, "--gpus", "1", "--image", image)).stdout))


def no_jobs_left(cluster: slurm.Cluster, user: Any) -> None:
    deadline = time.monotonic() + 30
    while cluster.jobs(user.name) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cluster.jobs(user.name) == []


def test_a_deploy_on_a_login_node_follows_its_container_to_the_jobs_node(
    slurm_cluster: slurm.Cluster,
    slurm_world: Any,
    login_node: daemon.Ds01d,
    on_login: dict[str, str],
    unix_users: Any,
    base_image_ref: str,
) -> None:
    alice = unix_users["alice"]
    entry = deploy_from(on_login, alice, "exp", base_image_ref)
    [job] = slurm_cluster.jobs(alice.name)
    assert entry["slurm_job"] == job["id"] and entry["status"] == "running" and job["state"] == "RUNNING"
    assert entry["gpus"][0]["slot"] in {"0", "1", "2", "3"}
    # the node's ds01d made it (its state and events), the login node's holds nothing
    node_events = (slurm_world / "log" / "events.jsonl").read_text()
    assert '"slurm-start"' in node_events
    login_events = slurm_world / "login" / "log" / "events.jsonl"
    assert not login_events.exists() or '"slurm-start"' not in login_events.read_text()
    # the shell from the login node lands in the container on the job's node
    attached = run_as(alice, "container-attach", "exp", input="id -u; exit 4\n", env=on_login)
    assert attached.returncode == 4 and attached.stdout.split() == [str(alice.uid)], attached.stderr
    assert f"joining Slurm job {job['id']}" in attached.stderr
    # the login node's ds01d was asked for the deploy plan only: the container's entry and the shell came
    # from the node's ds01d, asked by alice's tasks in her job
    asked = re.compile(r" ds01d DEBUG (?:GET|POST) (/\S+) (\d+) ")
    login_asks = asked.findall(login_node.log_text())
    assert ("/deploy", str(alice.uid)) in login_asks
    assert not [p for p, _ in login_asks if p.startswith("/containers")], login_asks
    node_asks = asked.findall(slurm_world.server.log_text())
    assert ("/containers", str(alice.uid)) in node_asks  # the wait's container-list through srun
    assert [p for p, uid in node_asks if p.endswith("/exec") and uid == str(alice.uid)], node_asks


def test_a_retire_on_a_login_node_retires_the_container_on_the_jobs_node(
    slurm_cluster: slurm.Cluster,
    slurm_world: Any,
    on_login: dict[str, str],
    unix_users: Any,
    base_image_ref: str,
    engine_clean: Any,
) -> None:
    alice, bob = unix_users["alice"], unix_users["bob"]
    entry = deploy_from(on_login, alice, "exp", base_image_ref)
    [job] = slurm_cluster.jobs(alice.name)
    ws = slurm_world / "ws" / alice.name / "exp"
    subprocess.run(["runuser", "-u", alice.name, "--", "sh", "-c", f"echo kept > {ws / 'note'}"], check=True)
    # another user's retire of that name on the login node finds nothing of theirs: nothing changes
    other = run_as(bob, "container-retire", "exp", "--yes", env=on_login)
    assert other.returncode != 0 and "Traceback" not in other.stderr
    assert [j["state"] for j in slurm_cluster.jobs(alice.name)] == ["RUNNING"]
    # the owner's retire on the login node: the node's ds01d removes the container, Slurm's job is over
    done = ok(run_as(alice, "container-retire", "exp", "--yes", "--json", env=on_login, timeout=120))
    assert "retiring it there" in done.stderr
    [result] = json.loads(done.stdout)
    assert result["name"] == "exp" and result["container"] == entry["container"]
    no_jobs_left(slurm_cluster, alice)
    assert slurm_cluster.job(job["id"]).get("JobState") in ("CANCELLED", "COMPLETED", None)
    assert engine_clean.api.containers(all=True, filters={"name": entry["container"]}) == []
    node_events = (slurm_world / "log" / "events.jsonl").read_text()
    assert '"retire"' in node_events
    assert (ws / "note").read_text() == "kept\n"  # the workspace stays


def test_retire_all_on_a_login_node_retires_the_containers_on_every_node(
    slurm_cluster: slurm.Cluster,
    slurm_world: Any,
    on_login: dict[str, str],
    unix_users: Any,
    base_image_ref: str,
    engine_clean: Any,
) -> None:
    alice, bob = unix_users["alice"], unix_users["bob"]
    made = {name: deploy_from(on_login, alice, name, base_image_ref) for name in ("exp-a", "exp-b")}
    theirs = deploy_from(on_login, bob, "exp-a", base_image_ref)
    # without --yes and without a terminal: one line, nothing retired
    asked = run_as(alice, "container-retire", "--all", env=on_login)
    assert asked.returncode == 2 and "exp-a, exp-b" in asked.stderr, asked.stderr
    done = ok(run_as(alice, "container-retire", "--all", "--yes", "--json", env=on_login, timeout=180))
    retired = {r["name"]: r for r in json.loads(done.stdout)}
    assert sorted(retired) == ["exp-a", "exp-b"], done.stdout
    assert all(retired[n]["container"] == made[n]["container"] for n in made)
    no_jobs_left(slurm_cluster, alice)
    for entry in made.values():
        assert engine_clean.api.containers(all=True, filters={"name": entry["container"]}) == []
    # bob's container of the same name runs on: --all is the caller's own
    assert [j["state"] for j in slurm_cluster.jobs(bob.name)] == ["RUNNING"]
    assert engine_clean.api.containers(filters={"name": theirs["container"]})
    # nothing left: said, exit 0
    again = ok(run_as(alice, "container-retire", "--all", "--yes", env=on_login))
    assert "nothing to retire" in again.stderr
