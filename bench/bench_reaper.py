"""One reaper pass over 100 running GPU containers of 25 owners (target: under 5 s). Run as root:

    python bench/bench_reaper.py [--containers 100] [--owners 25] [--passes 3] [--engine-stats]

Starts a private dockerd from the test harness, makes the owners real Unix accounts (ds01b-oNN, locked, left
in place like the test suite's), and creates the containers with ds01's labels, each holding its own slot of
a simulated inventory (real slot ids and UUIDs, one MIG slice each: no slot held twice). It moves the
reaper's clock past the grace period so that every container is sampled, times whole passes (dry runs: the
containers stay), and fails unless every container was seen and sampled in every pass.
`--engine-stats` times the fallback that asks the engine (stats, top) instead of reading cgroup files.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from _common import ROOT, private_engine

TARGET_S = 5.0


def write_inventory(tmp: Path, slots: int) -> tuple[Path, list[tuple[str, str]]]:
    """A simulated box with at least `slots` MIG slices (7 x 1g.10gb per GPU); its (slot id, uuid) list."""
    from ds01.gpu.simulated import default_mig_uuid

    gpus = -(-slots // 7)
    data = {
        "gpus": [
            {"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "slices": 7,
             "mig": [{"profile": "1g.10gb"} for _ in range(7)]}
            for _ in range(gpus)
        ]
    }  # fmt: skip
    path = tmp / "gpus.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    ids = [(f"{g}.{m}", default_mig_uuid(g, m)) for g in range(gpus) for m in range(7)]
    return path, ids[:slots]


def write_config(tmp: Path, inventory: Path) -> Path:
    data = yaml.safe_load((ROOT / "config" / "resource-limits.yaml").read_text())
    data["paths"] = {
        "workspace_root": str(tmp / "ws"),
        "state_dir": str(tmp / "state"),
        "log_dir": str(tmp / "log"),
    }
    data["gpu"] = {"backend": "simulated", "inventory": str(inventory)}
    data["containers"] = {"network": "none", "init": True, "env": {}}
    path = tmp / "resource-limits.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def make_owners(count: int) -> list[tuple[str, int]]:
    from harness.users import ensure_user

    owners = []
    for i in range(1, count + 1):
        user = ensure_user(f"ds01b-o{i:02d}")
        owners.append((user.name, user.uid))
    return owners


def create_containers(
    host: str, count: int, workspace: Path, owners: list[tuple[str, int]], slots: list[tuple[str, str]]
) -> None:
    import docker

    client = docker.DockerClient(base_url=host, version="1.41")

    def one(i: int) -> None:
        user, uid = owners[i % len(owners)]
        slot, uuid = slots[i]
        labels = {
            "ds01.managed": "true", "ds01.user": user, "ds01.uid": str(uid), "ds01.project": f"b{i}",
            "ds01.interface": "atomic", "ds01.created_at": "2026-11-23T09:00:00Z",
            "ds01.workspace": str(workspace), "ds01.gpu.slots": slot, "ds01.gpu.uuids": uuid,
            "ds01.gpu.gpueq": f"{1 / 7:g}",
        }  # fmt: skip
        client.containers.run("ds01-test/busybox:latest", ["sleep", "86400"], name=f"b{i}._.{uid}",
                              detach=True, init=True, network_mode="none", labels=labels)  # fmt: skip

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(count)))
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--owners", type=int, default=25)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--engine-stats", action="store_true", help="sample through the engine, not cgroups")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark starts its own dockerd")
    with private_engine() as host, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "ws").mkdir()
        inventory, slots = write_inventory(tmp, args.containers)
        os.environ["DS01_CONFIG"] = str(write_config(tmp, inventory))
        owners = make_owners(args.owners)
        start = time.perf_counter()
        create_containers(host, args.containers, tmp / "ws", owners, slots)
        print(
            f"created and started {args.containers} containers of {len(owners)} owners, "
            f"{len(slots)} distinct slots, in {time.perf_counter() - start:.1f} s"
        )

        from ds01.context import Context
        from ds01.lifecycle.clock import ManualClock
        from ds01.lifecycle.reaper import ReaperOptions, run_pass

        ctx = Context.load()
        clock = ManualClock()
        clock.advance(hours=1)  # past the grace period: every container is sampled
        options = ReaperOptions(dry_run=True, use_cgroups=not args.engine_stats)
        samples = []
        missed = []
        for _ in range(args.passes):
            report = run_pass(ctx, clock, options)
            sampled = sum(1 for e in report.entries if e.decision.values.get("cpu_percent") is not None)
            owners_seen = {e.seen.owner.uid for e in report.entries}
            samples.append(report.elapsed_s)
            print(
                f"pass: {report.elapsed_s:.2f} s, {len(report.entries)} containers of {len(owners_seen)} "
                f"owners, {sampled} sampled"
            )
            if len(report.entries) != args.containers or sampled != args.containers:
                missed.append(f"{len(report.entries)} seen, {sampled} sampled of {args.containers}")
            clock.advance(minutes=5)
    median = statistics.median(samples)
    source = "engine stats/top" if args.engine_stats else "cgroup files"
    verdict = "OK" if median < TARGET_S else "TOO SLOW"
    print(
        f"reaper pass over {args.containers} running containers ({source}): median {median:.2f} s "
        f"(target < {TARGET_S:g} s) {verdict}"
    )
    if missed:
        sys.exit(f"not every container was sampled: {'; '.join(missed)}")
    if median >= TARGET_S and not args.engine_stats:  # the target is for the default (cgroup) path
        sys.exit(1)


if __name__ == "__main__":
    main()
