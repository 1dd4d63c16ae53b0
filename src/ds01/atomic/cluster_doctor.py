"""`ds01 doctor` in cluster mode: Slurm answers and knows this node, the workspaces are on storage every node
shares (the same `workspace_root` path everywhere), and images have a registry to travel through."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ds01.atomic.doctor import Check
from ds01.config import Config

# file systems that can be the same tree on every node
SHARED_FS = {
    "nfs", "nfs4", "cifs", "smb3", "lustre", "gpfs", "beegfs", "cephfs", "ceph", "glusterfs",
    "fuse.glusterfs", "fuse.cephfs", "fuse.sshfs", "ocfs2", "gfs2", "wekafs", "fuse.juicefs", "panfs",
}  # fmt: skip


def filesystem_of(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> tuple[str, str]:
    """(mount point, file system type) of the mount holding `path` (the longest mount point above it)."""
    target = os.path.realpath(path)
    best = ("/", "unknown")
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return best
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        point = fields[4].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, right.split()[0])
    return best


def _run(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def cluster_checks(config: Config) -> list[Check]:
    cluster = config.cluster
    node = cluster.this_node()
    checks = []
    ping = _run(["scontrol", "ping"])
    if ping is None or ping.returncode != 0:
        detail = "scontrol is not installed" if ping is None else (ping.stdout + ping.stderr).strip()[:200]
        checks.append(Check("slurm", "failure", f"slurmctld does not answer: {detail}",
                            "install Slurm's client tools and check slurm.conf and munge"))  # fmt: skip
    else:
        known = _run(["scontrol", "-o", "show", "node", node])
        if known is None or known.returncode != 0 or f"NodeName={node} " not in known.stdout + " ":
            checks.append(Check("slurm", "failure", f"Slurm knows no node {node!r} (this host)",
                                "set cluster.node_name to this host's NodeName in slurm.conf"))  # fmt: skip
        else:
            checks.append(Check("slurm", "ok", f"slurmctld answers; this host is node {node}"))
    root = config.paths.workspace_root
    point, fstype = filesystem_of(root)
    if fstype in SHARED_FS:
        checks.append(Check("shared workspaces", "ok", f"{root} is on {fstype} ({point}), shared storage"))
    else:
        checks.append(Check(
            "shared workspaces", "warning",
            f"{root} is on {fstype} ({point}): local to this node, so a job on another node would not see "
            "the workspaces",
            f"mount the same shared storage (NFS, Lustre, CephFS, ...) at {root} on every node",
        ))  # fmt: skip
    if cluster.registry:
        checks.append(Check("cluster registry", "ok", f"images travel through {cluster.registry}"))
    else:
        checks.append(Check(
            "cluster registry", "warning",
            "cluster.registry is not set: an image built on one node is not on the others",
            "set cluster.registry to the lab registry",
        ))  # fmt: skip
    return checks
