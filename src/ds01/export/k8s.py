"""Kubernetes exports: `ds01 admin export-quotas --to k8s` and `project-export NAME --to k8s`.

Quotas: one namespace per ds01 group (`ds01-<group>`) with a ResourceQuota (the group's total: the sum of
its members' per-user limits), a LimitRange (the per-container caps), and Kueue objects (one ResourceFlavor,
a ClusterQueue per group with the same totals, a LocalQueue `ds01` in its namespace, a WorkloadPriorityClass
from `priority`). A project: its workspace as a PersistentVolumeClaim and a Pod (or a Job for Kueue) running
the lab registry's image as the user's uid/gid, without privilege escalation, within the user's limits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ds01.errors import QuotaExceeded, UsageError
from ds01.export.quotas import Account, Lossy, QuotaSet, Report, node_rules, where, whole_gpus

KUEUE = "kueue.x-k8s.io/v1beta1"
FLAVOR = "ds01-default"
LOCAL_QUEUE = "ds01"
GPU = "nvidia.com/gpu"
MANAGED = {"app.kubernetes.io/managed-by": "ds01"}
# Kueue has no "unlimited": a null (unlimited) limit becomes a quota no cluster reaches.
UNLIMITED = {"cpu": "100000", "memory": "1Pi", GPU: "100000", "pods": "100000"}
MIG_PROFILE = re.compile(r"^[0-9a-z]([-a-z0-9_.]{0,50}[a-z0-9])?$")
GI, MI = 1 << 30, 1 << 20


@dataclass(frozen=True)
class K8sExport:
    documents: tuple[dict[str, Any], ...]
    lossy: tuple[Lossy, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"documents": list(self.documents), "lossy": [x.as_dict() for x in self.lossy]}

    def yaml(self) -> str:
        import yaml

        return yaml.safe_dump_all(self.documents, sort_keys=False, default_flow_style=False)


# -- names and quantities --------------------------------------------------------------------------------


def dns_label(text: str, limit: int = 63) -> str:
    """A DNS-1123 label (names of namespaces, pods, claims): a-z 0-9 and `-`, alphanumeric at both ends."""
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return re.sub(r"-{2,}", "-", label)[:limit].rstrip("-") or "ds01"


def label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return value.strip("-_.")


def namespace_of(group: str) -> str:
    return dns_label(f"ds01-{group}")


def cpu_quantity(cpus: float) -> str:
    return str(int(cpus)) if float(cpus).is_integer() else f"{round(cpus * 1000)}m"


def memory_quantity(size: int) -> str:
    for unit, name in ((GI, "Gi"), (MI, "Mi")):
        if size % unit == 0:
            return f"{size // unit}{name}"
    return str(size)


# -- quotas ----------------------------------------------------------------------------------------------


def _per_user_totals(acct: Account) -> dict[str, float | int | None]:
    """What one user may hold at once, as the namespace totals count it."""
    count = acct.get("max_containers_per_user")
    cpus, memory = acct.get("max_cpus_total"), acct.get("memory_total")
    if cpus is None and acct.get("max_cpus") is not None and count is not None:
        cpus = acct.get("max_cpus") * count
    if memory is None and acct.get("memory") is not None and count is not None:
        memory = acct.get("memory") * count
    return {"cpu": cpus, "memory": memory, GPU: whole_gpus(acct.get("max_gpu_equivalents")), "pods": count}


def _sum(values: Iterable[float | int | None]) -> float | int | None:
    total: float | int = 0
    for v in values:
        if v is None:
            return None
        total += v
    return total


def group_totals(qs: QuotaSet, group: Account) -> dict[str, float | int | None]:
    """The sum over the group's members (each with their own overrides); an empty group counts as one."""
    members = qs.members(group.name) or [group]
    per_user = [_per_user_totals(m) for m in members]
    return {key: _sum(u[key] for u in per_user) for key in ("cpu", "memory", GPU, "pods")}


def _quantity(key: str, value: float | int) -> str:
    if key == "cpu":
        return cpu_quantity(float(value))
    if key == "memory":
        return memory_quantity(int(value))
    return str(int(value))


def _resource_quota(ns: str, totals: dict[str, float | int | None]) -> dict[str, Any]:
    hard: dict[str, str] = {}
    for key, names in (
        (GPU, [f"requests.{GPU}"]),
        ("cpu", ["requests.cpu", "limits.cpu"]),
        ("memory", ["requests.memory", "limits.memory"]),
        ("pods", ["count/pods"]),
    ):
        value = totals[key]
        if value is not None:
            hard.update({name: _quantity(key, value) for name in names})
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "ds01-quota", "namespace": ns, "labels": dict(MANAGED)},
        "spec": {"hard": hard},
    }


def _container_caps(acct: Account) -> dict[str, str]:
    caps: dict[str, str] = {}
    if acct.get("max_cpus") is not None:
        caps["cpu"] = cpu_quantity(acct.get("max_cpus"))
    if acct.get("memory") is not None:
        caps["memory"] = memory_quantity(acct.get("memory"))
    if acct.get("max_gpu_slots_per_container") is not None:
        caps[GPU] = str(acct.get("max_gpu_slots_per_container"))
    return caps


def _limit_range(ns: str, group: Account) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "ds01-limits", "namespace": ns, "labels": dict(MANAGED)},
        "spec": {"limits": [{"type": "Container", "max": _container_caps(group)}]},
    }


def _cluster_queue(name: str, ns: str, totals: dict[str, float | int | None]) -> dict[str, Any]:
    resources = [
        {"name": key, "nominalQuota": UNLIMITED[key] if totals[key] is None else _quantity(key, totals[key])}  # type: ignore[arg-type]
        for key in ("cpu", "memory", GPU)
    ]
    return {
        "apiVersion": KUEUE,
        "kind": "ClusterQueue",
        "metadata": {"name": name, "labels": dict(MANAGED)},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "queueingStrategy": "BestEffortFIFO",
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "memory", GPU],
                    "flavors": [{"name": FLAVOR, "resources": resources}],
                }
            ],
        },
    }


def quota_export(qs: QuotaSet) -> K8sExport:
    docs: list[dict[str, Any]] = [
        {"apiVersion": KUEUE, "kind": "ResourceFlavor", "metadata": {"name": FLAVOR, "labels": dict(MANAGED)}}
    ]
    report = Report()
    unlimited: list[str] = []
    for group in qs.groups:
        ns, queue = namespace_of(group.name), namespace_of(group.name)
        totals = group_totals(qs, group)
        unlimited += [f"{group.name}: {k}" for k in ("cpu", "memory", GPU) if totals[k] is None]
        labels = {**MANAGED, "ds01.group": label_value(group.name)}
        docs += [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}},
            _resource_quota(ns, totals),
            _limit_range(ns, group),
            _cluster_queue(queue, ns, totals),
            {
                "apiVersion": KUEUE,
                "kind": "LocalQueue",
                "metadata": {"name": LOCAL_QUEUE, "namespace": ns, "labels": dict(MANAGED)},
                "spec": {"clusterQueue": queue},
            },
            {
                "apiVersion": KUEUE,
                "kind": "WorkloadPriorityClass",
                "metadata": {"name": queue, "labels": dict(MANAGED)},
                "value": int(group.get("priority") or 0),
                "description": f"ds01 group {group.name} (priority {group.get('priority')})",
            },
        ]
    _lossy(report, qs, unlimited)
    return K8sExport(tuple(docs), tuple(report.lossy))


def _lossy(report: Report, qs: QuotaSet, unlimited: Sequence[str]) -> None:
    report.add(
        "max_gpu_equivalents",
        "a namespace quota is the group's total (the sum of its members' shares); Kubernetes has no per-user "
        "quota inside a namespace, so one member may use the whole group's GPUs",
    )
    report.add(
        "max_gpu_equivalents",
        "MIG slices count by weight in ds01; the quota counts nvidia.com/gpu only, in whole GPUs rounded "
        "down (under 1 but over 0: 1); add requests.nvidia.com/mig-<profile> lines for the mixed strategy",
        where(qs, "max_gpu_equivalents", lambda v: v is not None),
    )
    found = where(qs, "allow_full_gpu", lambda v: v is False)
    if found:
        report.add("allow_full_gpu", "no quota refuses a full GPU while allowing MIG slices", found)
    report.add(
        "max_cpus_total",
        "where it is null, the namespace total is max_cpus (memory: memory) times max_containers_per_user",
    )
    if unlimited:
        report.add(
            "unlimited",
            f"Kueue has no unlimited quota: a nominalQuota of {UNLIMITED[GPU]} stands in",
            unlimited,
        )
    report.add(
        "max_runtime_h",
        "no namespace-wide rule: project-export sets activeDeadlineSeconds on each Pod or Job",
        where(qs, "max_runtime_h", lambda v: v is not None),
    )
    report.add(
        "priority",
        "a WorkloadPriorityClass per group; a workload uses it only with the label "
        "kueue.x-k8s.io/priority-class (project-export --job sets it); the queue's fair share is lost",
    )
    for key, what in (("memory_swap", "swap"), ("pids_limit", "pids limit")):
        report.add(
            key, f"the container's {what}: no per-pod limit in Kubernetes (kubelet settings are per node)"
        )
    node_rules(report, qs, "Kubernetes", ds01_on_nodes=False)


# -- a project -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectSpec:
    project: str
    project_type: str
    framework: str
    image: str
    gpus: int = 0
    mig_profile: str | None = None
    job: bool = False
    storage: str = "50Gi"
    namespace: str | None = None


def check_request(user: Account, spec: ProjectSpec) -> None:
    """The export asks for no more than ds01 would give the user (exit 4 otherwise)."""
    slots = user.get("max_gpu_slots_per_container")
    share = whole_gpus(user.get("max_gpu_equivalents"))
    if spec.mig_profile is not None and not MIG_PROFILE.fullmatch(spec.mig_profile):
        raise UsageError(f"--mig-profile {spec.mig_profile!r} is not a MIG profile name", hint="e.g. 1g.10gb")
    if spec.gpus and spec.mig_profile:
        raise UsageError(
            "--gpus and --mig-profile exclude each other", hint="a pod gets GPUs or one MIG slice"
        )
    if spec.gpus and not user.get("allow_full_gpu"):
        raise QuotaExceeded(
            f"{user.name}'s group ({user.group}) allows MIG slices only",
            hint="pass --mig-profile (e.g. 1g.10gb)",
        )
    wanted = spec.gpus or (1 if spec.mig_profile else 0)
    for limit_name, cap in (("max_gpu_slots_per_container", slots), ("max_gpu_equivalents", share)):
        if cap is not None and wanted > cap:
            raise QuotaExceeded(
                f"{wanted} GPU(s) is over {user.name}'s {limit_name} ({cap})", hint=f"ask for at most {cap}"
            )


def _resources(user: Account, spec: ProjectSpec) -> dict[str, str]:
    res: dict[str, str] = {}
    cpus = user.get("max_cpus")
    if cpus is not None:
        res["cpu"] = cpu_quantity(cpus)
    if user.get("memory") is not None:
        res["memory"] = memory_quantity(user.get("memory"))
    if spec.mig_profile:
        res[f"nvidia.com/mig-{spec.mig_profile}"] = "1"
    elif spec.gpus:
        res[GPU] = str(spec.gpus)
    return res


def _pod_spec(user: Account, spec: ProjectSpec, claim: str) -> dict[str, Any]:
    resources = _resources(user, spec)
    volumes: list[dict[str, Any]] = [{"name": "workspace", "persistentVolumeClaim": {"claimName": claim}}]
    mounts: list[dict[str, Any]] = [{"name": "workspace", "mountPath": "/workspace"}]
    if user.get("shm_size") is not None:
        shm = {"medium": "Memory", "sizeLimit": memory_quantity(user.get("shm_size"))}
        volumes.append({"name": "dshm", "emptyDir": shm})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": {
            "runAsUser": user.uid,
            "runAsGroup": user.gid,
            "fsGroup": user.gid,
            "runAsNonRoot": True,
        },
        "containers": [
            {
                "name": "main",
                "image": spec.image,
                "workingDir": "/workspace",
                "env": [{"name": "DS01_PROJECT", "value": spec.project}],
                "resources": {"requests": dict(resources), "limits": dict(resources)},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
    }
    return pod


def project_export(user: Account, spec: ProjectSpec) -> K8sExport:
    check_request(user, spec)
    if user.uid is None or user.gid is None or user.uid == 0:
        raise UsageError(f"{user.name} has no uid/gid to run as", hint="export a lab member's project")
    ns = spec.namespace or namespace_of(user.group or "default")
    name = dns_label(f"{user.name}-{spec.project}")
    claim = dns_label(f"{name}-workspace")
    labels = {
        **MANAGED,
        "app.kubernetes.io/name": label_value(spec.project),
        "ds01.user": label_value(user.name),
        "ds01.type": label_value(spec.project_type),
        "ds01.framework": label_value(spec.framework),
    }
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim, "namespace": ns, "labels": labels},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": spec.storage}}},
    }
    pod = _pod_spec(user, spec, claim)
    deadline = user.get("max_runtime_h")
    workload: dict[str, Any]
    if spec.job:
        job_labels = {
            **labels,
            "kueue.x-k8s.io/queue-name": LOCAL_QUEUE,
            "kueue.x-k8s.io/priority-class": namespace_of(user.group or "default"),
        }
        workload = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": ns, "labels": job_labels},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": labels}, "spec": pod}},
        }
        if deadline is not None:
            workload["spec"]["activeDeadlineSeconds"] = max(1, int(deadline * 3600))
    else:
        if deadline is not None:
            pod["activeDeadlineSeconds"] = max(1, int(deadline * 3600))
        workload = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
        }
        workload["spec"] = pod
    report = Report()
    report.add(
        "workspace",
        "the claim starts empty: copy the workspace in (kubectl cp), or bind the claim to a PersistentVolume "
        "of the lab's shared storage that holds it",
    )
    report.add("idle_timeout_h", "nothing stops an idle pod in Kubernetes")
    if spec.mig_profile:
        report.add(
            "mig_profile", f"needs the GPU operator's mixed MIG strategy (nvidia.com/mig-{spec.mig_profile})"
        )
    return K8sExport((pvc, workload), tuple(report.lossy))
