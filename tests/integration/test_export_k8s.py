"""Kubernetes exports through the real ds01d, as real users: `ds01 admin export-quotas --to k8s` for every
group of a sample config and `project-export NAME --to k8s` for every project type. Core objects are
validated against the Kubernetes schemas (kubernetes-validate, offline); Kueue objects structurally."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from ds01.project import files
from harness.users import ok, run_as

BIN = Path(sys.executable).parent
K8S = kubernetes_validate.latest_version()
TYPES = ("ml", "cv", "nlp", "rl", "audio", "ts", "llm", "custom")
REGISTRY = "registry.lab.example:5000"
KUEUE = "kueue.x-k8s.io/v1beta1"
GIB = 1 << 30


def as_root(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120)


def validate_core(doc: dict) -> None:
    """Schema-valid for the newest Kubernetes kubernetes-validate knows (strict: no unknown fields)."""
    assert not doc["apiVersion"].startswith("kueue"), doc["kind"]
    kubernetes_validate.validate(doc, K8S, strict=True)


def check_kueue(docs: list[dict]) -> None:
    """Kueue's CRDs are not in the core schemas: their references and shapes are checked here."""
    kinds = {}
    for d in docs:
        if d["apiVersion"] == KUEUE:
            kinds.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    assert set(kinds) == {"ResourceFlavor", "ClusterQueue", "LocalQueue", "WorkloadPriorityClass"}
    namespaces = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    for cq in kinds["ClusterQueue"].values():
        spec = cq["spec"]
        assert spec["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] in namespaces
        (group,) = spec["resourceGroups"]
        for flavor in group["flavors"]:
            assert flavor["name"] in kinds["ResourceFlavor"]
            assert [r["name"] for r in flavor["resources"]] == group["coveredResources"]
            assert all(isinstance(r["nominalQuota"], str) and r["nominalQuota"] for r in flavor["resources"])
    for lq in kinds["LocalQueue"].values():
        assert lq["spec"]["clusterQueue"] in kinds["ClusterQueue"]
        assert lq["metadata"]["namespace"] in namespaces
    assert all(isinstance(p["value"], int) for p in kinds["WorkloadPriorityClass"].values())


@pytest.fixture
def lab(ds01_home, unix_users):
    """alice and carol student, bob and dave researchers (dave with an override), erin an admin."""
    u = {k: v.name for k, v in unix_users.items()}
    ds01_home.reconfigure(
        groups={
            "student": {"max_gpu_equivalents": 1.0, "allow_full_gpu": False, "max_cpus": 8,
                        "memory": "32g", "max_containers_per_user": 3, "max_runtime_h": 24,
                        "members": [u["alice"], u["carol"]]},
            "researcher": {"max_gpu_equivalents": 2.0, "max_gpu_slots_per_container": 2, "max_cpus": 16,
                           "memory": "64g", "max_containers_per_user": 5, "max_runtime_h": 48, "priority": 50,
                           "members": [u["bob"], u["dave"]]},
            "admin": {"admin": True, "max_gpu_equivalents": None, "max_runtime_h": None,
                      "members": [u["erin"]]},
        },
        user_overrides={u["dave"]: {"max_gpu_equivalents": 3.0}},
        cluster={"registry": REGISTRY},
    )  # fmt: skip
    return ds01_home


def test_quota_manifests_for_every_group_validate(lab, unix_users):
    done = ok(as_root("ds01", "admin", "export-quotas", "--to", "k8s", "--json"))
    exported = json.loads(done.stdout)
    docs = exported["documents"]
    for doc in docs:
        if doc["apiVersion"] != KUEUE:
            validate_core(doc)
    check_kueue(docs)
    for group in ("student", "researcher", "faculty", "admin"):
        ns = f"ds01-{group}"
        kinds = {
            d["kind"] for d in docs if d["metadata"].get("namespace") == ns or d["metadata"]["name"] == ns
        }
        assert {"Namespace", "ResourceQuota", "LimitRange", "LocalQueue", "ClusterQueue"} <= kinds, group
    quota = {d["metadata"]["namespace"]: d["spec"]["hard"] for d in docs if d["kind"] == "ResourceQuota"}
    # the group's total is the sum of its members' shares: bob 2 + dave 3 (his override)
    assert quota["ds01-researcher"]["requests.nvidia.com/gpu"] == "5"
    assert quota["ds01-researcher"]["count/pods"] == "10" and quota["ds01-researcher"]["limits.cpu"] == "160"
    assert "requests.nvidia.com/gpu" not in quota["ds01-admin"]  # null: no limit
    limits = next(
        d for d in docs if d["kind"] == "LimitRange" and d["metadata"]["namespace"] == "ds01-student"
    )
    assert limits["spec"]["limits"][0]["max"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}
    keys = {x["key"] for x in exported["lossy"]}
    assert {"max_gpu_equivalents", "allow_full_gpu", "idle_timeout_h", "unlimited"} <= keys

    text = ok(as_root("ds01", "admin", "export-quotas", "--to", "k8s"))
    assert list(yaml.safe_load_all(text.stdout)) == docs  # the YAML is the same objects
    assert "not translated" in text.stderr and "idle_timeout_h" in text.stderr
    assert "idle_timeout_h" not in text.stdout


def write_project(user, world, name: str, project_type: str, gpus: int = 1) -> None:
    """What project-init writes, written as the user into the workspace ds01d made for them."""
    ok(run_as(user, "dir-create", name, "--type", "blank"))
    table = files.tool_table(project_type, "python", f"ds01-{user.uid}/{name}:latest", gpus)
    text = files.pyproject_text(name, f"a {project_type} project", table)
    path = world / "ws" / user.name / name / "pyproject.toml"
    subprocess.run(["runuser", "-u", user.name, "--", "tee", str(path)], input=text, text=True,
                   capture_output=True, check=True)  # fmt: skip


@pytest.mark.parametrize("project_type", TYPES)
def test_project_manifests_for_every_type_validate(lab, unix_users, project_type):
    bob = unix_users["bob"]
    name = f"p-{project_type}"
    write_project(bob, lab, name, project_type)
    done = ok(run_as(bob, "project-export", name, "--to", "k8s"))
    docs = list(yaml.safe_load_all(done.stdout))
    assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "Pod"]
    for doc in docs:
        validate_core(doc)
    claim, pod = docs
    spec = pod["spec"]
    assert (
        spec["securityContext"]["runAsUser"] == bob.uid and spec["securityContext"]["runAsGroup"] == bob.gid
    )
    assert spec["securityContext"]["runAsNonRoot"] is True
    (main,) = spec["containers"]
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["image"] == f"{REGISTRY}/{bob.name}/{name}:latest"
    assert main["resources"]["limits"] == {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "1"}
    assert {"name": "workspace", "mountPath": "/workspace"} in main["volumeMounts"]
    volume = next(v for v in spec["volumes"] if v["name"] == "workspace")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert spec["activeDeadlineSeconds"] == 48 * 3600
    assert pod["metadata"]["namespace"] == "ds01-researcher" == claim["metadata"]["namespace"]
    assert pod["metadata"]["labels"]["ds01.type"] == project_type
    assert "workspace" in done.stderr  # the report: the claim starts empty

    out = lab / "ws" / bob.name / name / "job.yaml"  # -o writes as the user, in the user's own space
    ok(run_as(bob, "project-export", name, "--to", "k8s", "--job", "--gpus", "2", "-o", str(out)))
    assert out.stat().st_uid == bob.uid
    claim, job = yaml.safe_load_all(out.read_text())
    validate_core(job)
    assert job["kind"] == "Job" and job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "ds01"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "ds01-researcher"
    template = job["spec"]["template"]["spec"]
    assert template["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert template["securityContext"]["runAsUser"] == bob.uid


def test_a_mig_only_user_exports_slices_and_not_whole_gpus(lab, unix_users):
    alice = unix_users["alice"]
    write_project(alice, lab, "mig", "ml")
    refused = run_as(alice, "project-export", "mig", "--to", "k8s")  # the table asks 1 whole GPU
    assert refused.returncode == 4 and "MIG" in refused.stderr and refused.stdout == ""
    done = ok(run_as(alice, "project-export", "mig", "--mig-profile", "1g.10gb", "--json"))
    pod = json.loads(done.stdout)["documents"][1]
    validate_core(pod)
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    assert "nvidia.com/gpu" not in pod["spec"]["containers"][0]["resources"]["limits"]
    over = run_as(alice, "project-export", "mig", "--mig-profile", "1g.10gb", "--gpus", "1")
    assert over.returncode == 2


def test_without_a_registry_the_local_image_is_named_and_the_report_says_so(ds01_home, unix_users):
    bob = unix_users["bob"]
    write_project(bob, ds01_home, "local", "custom", gpus=0)
    done = ok(run_as(bob, "project-export", "local", "--json"))
    exported = json.loads(done.stdout)
    pod = exported["documents"][1]
    validate_core(pod)
    assert pod["spec"]["containers"][0]["image"] == f"ds01-{bob.uid}/local:latest"
    assert "nvidia.com/gpu" not in pod["spec"]["containers"][0]["resources"]["limits"]
    assert any(x["key"] == "image" for x in exported["lossy"])
