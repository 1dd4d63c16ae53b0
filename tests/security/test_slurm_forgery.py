"""Cluster mode: a job's step asks ds01d for a container, and ds01d believes only slurmctld. Forged steps,
run as real users against the real ds01d, engine and Slurm, are refused with nothing created: another user's
job, a GPU index the job does not hold, a job that is not running on this node, no job at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import slurm
from harness.users import run_as

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def world(slurm_cluster: slurm.Cluster, ds01_home: Any, unix_users: Any, engine_clean: Any) -> Any:
    ds01_home.slurm_sections = slurm.cluster_mode(slurm_cluster, [u.name for u in unix_users.values()])
    ds01_home.reconfigure(**ds01_home.slurm_sections)
    yield ds01_home
    slurm_cluster.cancel_all()


def step(
    user: Any, job_id: str, gpus: str, name: str = "forged", image: str | None = None, mig: str | None = None
) -> Any:
    """`ds01 cluster-step` as the user, with the Slurm variables (and MIG profile) the user chose."""
    env = {"SLURM_JOB_ID": job_id, "SLURM_JOB_GPUS": gpus}
    extra = [*(["--image", image] if image else []), *(["--mig-profile", mig] if mig else [])]
    return run_as(user, "ds01", "cluster-step", name, *extra, env=env, timeout=60)


CALL = (
    "import json, sys\nfrom ds01.client import Client, path_of\nfrom ds01.output import Output\n"
    "from ds01.errors import Ds01Error\n"
    "try:\n    print(json.dumps(Client(Output()).call(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))))\n"
    "except Ds01Error as e:\n    print(e.message, file=sys.stderr); sys.exit(int(e.exit_code))\n"
)


def call_as(user: Any, method: str, path: str, body: dict[str, Any]) -> Any:
    """One request to ds01d as the user (what a hand-written client could send)."""
    return run_as(user, "python", "-c", CALL, method, path, json.dumps(body), timeout=60)


def running_job(cluster: slurm.Cluster, user: Any, gpus: int = 2) -> tuple[str, list[int]]:
    job_id = slurm.sbatch_as(cluster, user.name, f"--gres=gpu:{gpus}")
    job = cluster.wait_state(job_id, {"RUNNING"}, timeout=30)
    return job_id, slurm.job_gpu_indices(job)


def unchanged(engine: Any, ds01_home: Path, user: Any, before: list[str]) -> None:
    assert sorted(c["Id"] for c in engine.api.containers(all=True)) == before
    assert not (ds01_home / "ws" / user.name / "forged").exists()


def refused(result: Any, code: int, words: str) -> None:
    assert result.returncode == code, f"rc {result.returncode}: {result.stdout}\n{result.stderr}"
    assert words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_another_users_job_is_refused(
    slurm_cluster: slurm.Cluster, world: Any, unix_users: Any, engine_clean: Any, base_image_ref: str
) -> None:
    alice, bob = unix_users["alice"], unix_users["bob"]
    job_id, idx = running_job(slurm_cluster, alice)
    before = sorted(c["Id"] for c in engine_clean.api.containers(all=True))
    refused(step(bob, job_id, ",".join(map(str, idx)), image=base_image_ref), 5, "is not yours")
    unchanged(engine_clean, world, bob, before)
    # the owner's own step with the same values is served: the refusal was about the user
    body = {"job_id": job_id, "name": "ok", "gpu_indices": idx, "image": base_image_ref}
    done = call_as(alice, "POST", "/v1/cluster/start", body)
    assert done.returncode == 0, done.stderr
    assert engine_clean.api.containers(filters={"label": f"ds01.slurm_job={job_id}"})


def test_an_index_the_job_does_not_hold_is_refused(
    slurm_cluster: slurm.Cluster, world: Any, unix_users: Any, engine_clean: Any, base_image_ref: str
) -> None:
    alice = unix_users["alice"]
    job_id, idx = running_job(slurm_cluster, alice, gpus=1)
    other = next(i for i in range(4) if i not in idx)
    before = sorted(c["Id"] for c in engine_clean.api.containers(all=True))
    for forged in (str(other), f"{idx[0]},{other}", "", f"{idx[0]},{idx[0]}"):
        refused(step(alice, job_id, forged, image=base_image_ref), 5, "holds GPU indices")
    unchanged(engine_clean, world, alice, before)
    assert not any(s["holder"] for s in json.loads(run_as(alice, "gpu-status", "--json").stdout)["slots"])


def test_a_job_not_running_on_this_node_is_refused(
    slurm_cluster: slurm.Cluster, world: Any, unix_users: Any, engine_clean: Any, base_image_ref: str
) -> None:
    alice = unix_users["alice"]
    pending = slurm.sbatch_as(
        slurm_cluster, alice.name, "--gres=gpu:1", f"--nodelist={slurm_cluster.down_node}"
    )
    assert slurm_cluster.job(pending)["JobState"] == "PENDING"
    before = sorted(c["Id"] for c in engine_clean.api.containers(all=True))
    refused(step(alice, pending, "0", image=base_image_ref), 5, "not running")
    # a running job, but this ds01d is another node's (its node name is the down node's)
    job_id, idx = running_job(slurm_cluster, alice, gpus=1)
    sections = world.slurm_sections
    world.reconfigure(
        **{**sections, "cluster": {**sections["cluster"], "node_name": slurm_cluster.down_node}}
    )
    refused(
        step(alice, job_id, ",".join(map(str, idx)), image=base_image_ref),
        5,
        f"not on {slurm_cluster.down_node}",
    )
    unchanged(engine_clean, world, alice, before)


def test_no_job_at_all_is_refused(
    slurm_cluster: slurm.Cluster, world: Any, unix_users: Any, engine_clean: Any, base_image_ref: str
) -> None:
    alice = unix_users["alice"]
    before = sorted(c["Id"] for c in engine_clean.api.containers(all=True))
    refused(step(alice, "999999", "0", image=base_image_ref), 3, "knows no job 999999")
    refused(step(alice, "1;id", "0", image=base_image_ref), 2, "not a Slurm job id")
    unchanged(engine_clean, world, alice, before)
    # without cluster mode the endpoints refuse whatever the job
    world.reconfigure(**{**world.slurm_sections, "cluster": {"backend": "none"}})
    refused(step(alice, "1", "0", image=base_image_ref), 2, "not in cluster mode")
    unchanged(engine_clean, world, alice, before)


def test_a_step_stops_only_its_own_jobs_container(
    slurm_cluster: slurm.Cluster, world: Any, unix_users: Any, engine_clean: Any, base_image_ref: str
) -> None:
    """POST /cluster/stop: another user's container (exit 5), the owner's with another job id (exit 5);
    an admin (root) may stop it."""
    alice, bob = unix_users["alice"], unix_users["bob"]
    deployed = run_as(
        alice, "container-deploy", "exp", "--gpus", "1", "--image", base_image_ref, "--background", "--json",
        env=slurm_cluster.env,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    entry = json.loads(deployed.stdout)
    stop = {"job_id": entry["slurm_job"], "name": entry["container"]}
    refused(call_as(bob, "POST", "/v1/cluster/stop", stop), 5, "not yours")
    refused(
        call_as(alice, "POST", "/v1/cluster/stop", {**stop, "job_id": "1"}), 5, "does not run in Slurm job 1"
    )
    assert engine_clean.api.inspect_container(entry["container"])["State"]["Running"]
    import subprocess
    import sys

    env = {"DS01_SOCKET": str(world.socket), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", CALL, "POST", "/v1/cluster/stop", json.dumps(stop)],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not engine_clean.api.inspect_container(entry["container"])["State"]["Running"]


def test_slurms_own_words_in_a_job_name_or_path_fool_nobody(
    slurm_cluster: slurm.Cluster, world: Any, unix_users: Any, engine_clean: Any, base_image_ref: str
) -> None:
    """Slurm keeps spaces and newlines in a job's name, comment and output paths; a user who writes a
    running state and a detail line holding all four GPUs into them gets nothing."""
    alice = unix_users["alice"]
    node = slurm_cluster.node
    fake = f"x\n     Nodes={node} CPU_IDs=0 Mem=1 GRES=gpu:4(IDX:0-3)\n   JobState=RUNNING NodeList={node}"
    pending = slurm.sbatch_as(
        slurm_cluster,
        alice.name,
        "--gres=gpu:1",
        f"--nodelist={slurm_cluster.down_node}",
        f"--job-name={fake}",
    )
    one = slurm.sbatch_as(slurm_cluster, alice.name, "--gres=gpu:1", f"--comment={fake}")
    slurm_cluster.wait_state(one, {"RUNNING"}, timeout=30)
    partial = f"x Nodes={node} CPU_IDs=0 Mem=1 GRES=gpu:4(IDX:0-3)"  # only the detail, on a pending job
    pending2 = slurm.sbatch_as(
        slurm_cluster,
        alice.name,
        "--gres=gpu:1",
        f"--nodelist={slurm_cluster.down_node}",
        f"--job-name={partial}",
    )
    before = sorted(c["Id"] for c in engine_clean.api.containers(all=True))
    refused(step(alice, pending, "0,1,2,3", image=base_image_ref), 5, "cannot trust")
    refused(step(alice, one, "0,1,2,3", image=base_image_ref), 5, "cannot trust")
    refused(step(alice, pending2, "0,1,2,3", image=base_image_ref), 5, "not running")
    unchanged(engine_clean, world, alice, before)
    assert not any(s["holder"] for s in json.loads(run_as(alice, "gpu-status", "--json").stdout)["slots"])


def test_root_gets_no_container_in_a_users_job_and_jobs_are_shown_to_their_owner(
    slurm_cluster: slurm.Cluster, world: Any, unix_users: Any, engine_clean: Any, base_image_ref: str
) -> None:
    """POST /cluster/start as root naming alice's job: not root's job (and root owns no containers);
    GET /cluster/jobs: each user sees their own ds01 jobs, an admin everyone's."""
    import subprocess
    import sys

    alice, bob = unix_users["alice"], unix_users["bob"]
    job_a, idx = running_job(slurm_cluster, alice)
    before = sorted(c["Id"] for c in engine_clean.api.containers(all=True))
    body = {"job_id": job_a, "name": "mine", "gpu_indices": idx, "image": base_image_ref}
    env = {"DS01_SOCKET": str(world.socket), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", CALL, "POST", "/v1/cluster/start", json.dumps(body)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 5 and "is not yours" in done.stderr, done.stderr
    assert sorted(c["Id"] for c in engine_clean.api.containers(all=True)) == before
    for user in (alice, bob):
        slurm.sbatch_as(slurm_cluster, user.name, "--gres=gpu:1", "--job-name=ds01:exp")
    mine = json.loads(call_as(bob, "GET", "/v1/cluster/jobs", {}).stdout)
    assert {(j["user"], j["name"]) for j in mine} == {(bob.name, "exp")}
    done = subprocess.run(
        [sys.executable, "-c", CALL, "GET", "/v1/cluster/jobs", "{}"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert {(j["user"], j["name"]) for j in json.loads(done.stdout)} == {
        (alice.name, "exp"),
        (bob.name, "exp"),
    }


@pytest.fixture
def mig_world(slurm_cluster: slurm.Cluster, world: Any) -> Any:
    """The cluster and ds01d with MIG instances (`slurm.MIG_LAYOUT`), Slurm's gres typed by profile."""
    slurm.use_mig(slurm_cluster, True)
    yield world
    slurm.use_mig(slurm_cluster, False)


def test_a_forged_mig_index_or_profile_is_refused(
    slurm_cluster: slurm.Cluster, mig_world: Any, unix_users: Any, engine_clean: Any, base_image_ref: str
) -> None:
    """A MIG job (`--gres=gpu:3g.40gb:1`): another 3g.40gb index, another profile, a claim of a whole GPU,
    and a whole-GPU job claiming a MIG instance are refused; the owner's exact step is served."""
    alice = unix_users["alice"]
    mig_job = slurm.sbatch_as(slurm_cluster, alice.name, "--gres=gpu:3g.40gb:1")
    [idx] = slurm.job_gpu_indices(slurm_cluster.wait_state(mig_job, {"RUNNING"}, timeout=30))
    types = slurm.mig_types()
    files = slurm.gres_files(slurm_cluster)
    same_profile = [n for n, k in enumerate(files) if types[k] == "3g.40gb" and n != idx]
    assert len(same_profile) == 2
    whole = slurm.sbatch_as(slurm_cluster, alice.name, f"--gres=gpu:{slurm.WHOLE_TYPE}:1")
    [whole_idx] = slurm.job_gpu_indices(slurm_cluster.wait_state(whole, {"RUNNING"}, timeout=30))
    before = sorted(c["Id"] for c in engine_clean.api.containers(all=True))
    for forged in same_profile:  # an index of the same profile the job does not hold
        refused(
            step(alice, mig_job, str(forged), image=base_image_ref, mig="3g.40gb"), 5, "holds GPU indices"
        )
    refused(step(alice, mig_job, str(idx), image=base_image_ref, mig="1g.10gb"), 5, "not MIG 1g.10gb")
    refused(step(alice, mig_job, str(idx), image=base_image_ref), 5, "not whole GPUs")
    refused(step(alice, whole, str(whole_idx), image=base_image_ref, mig="3g.40gb"), 5, "not MIG 3g.40gb")
    unchanged(engine_clean, mig_world, alice, before)
    assert not any(s["holder"] for s in json.loads(run_as(alice, "gpu-status", "--json").stdout)["slots"])
    # the owner's exact step is served, with the one slot behind the job's index
    body = {"job_id": mig_job, "name": "ok", "gpu_indices": [idx], "image": base_image_ref,
            "mig_profile": "3g.40gb"}  # fmt: skip
    done = call_as(alice, "POST", "/v1/cluster/start", body)
    assert done.returncode == 0, done.stderr
    slots = json.loads(run_as(alice, "gpu-status", "--json").stdout)["slots"]
    assert [s["id"] for s in slots if s["holder"]] == [slots[files[idx]]["id"]]


def test_a_retire_names_only_the_callers_own_job_on_another_node(
    slurm_cluster: slurm.Cluster, world: Any, unix_users: Any, engine_clean: Any
) -> None:
    """POST /retire in cluster mode, on a ds01d of another node than the job's: its owner is told the job
    (to retire it there, through the job), nothing is removed here; another user and an admin's --user
    learn nothing of it (no such container here, exit 3), and the job runs on."""
    import subprocess
    import sys

    alice, bob = unix_users["alice"], unix_users["bob"]
    job_a = slurm.sbatch_as(slurm_cluster, alice.name, "--gres=gpu:1", "--job-name=ds01:exp")
    slurm_cluster.wait_state(job_a, {"RUNNING"}, timeout=30)
    sections = world.slurm_sections
    world.reconfigure(**{**sections, "cluster": {**sections["cluster"], "node_name": "ds01-login"}})
    before = sorted(c["Id"] for c in engine_clean.api.containers(all=True))

    owner = call_as(alice, "POST", "/v1/retire", {"name": "exp"})
    assert owner.returncode == 0, owner.stderr
    assert json.loads(owner.stdout) == {"elsewhere": {"job_id": job_a, "node": slurm_cluster.node}}
    other = call_as(bob, "POST", "/v1/retire", {"name": "exp"})
    assert other.returncode == 3 and other.stdout == "" and "no container named" in other.stderr, other.stderr
    env = {"DS01_SOCKET": str(world.socket), "PATH": "/usr/bin:/bin"}
    admin = subprocess.run(
        [sys.executable, "-c", CALL, "POST", "/v1/retire", json.dumps({"name": "exp", "user": alice.name})],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert admin.returncode == 3 and admin.stdout == "" and "no container named" in admin.stderr, admin.stderr
    assert slurm_cluster.job(job_a)["JobState"] == "RUNNING"
    assert sorted(c["Id"] for c in engine_clean.api.containers(all=True)) == before
