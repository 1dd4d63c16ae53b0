"""Benchmark: `gpu-status --json` with 100 labelled GPU containers on a private engine.

Run as root from the repository: `python bench/bench_gpu_status.py [--runs N]`. It starts its own dockerd
(tests/harness), fills it with 100 ds01 GPU containers (90 created, 10 stopped, so the stopped-container
inspect path runs too) on a simulated box of 105 MIG slices, times each command, prints a table of
medians, and exits 1 if `gpu-status --json` takes 0.15 s or more at the median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness import base_image, engine  # noqa: E402

BIN = Path(sys.executable).parent
TARGET_S = 0.15
CONTAINERS, STOPPED = 100, 10
GPUS, SLICES = 15, 7


def write_world(tmp: Path) -> dict[str, str]:
    gpus = [{"name": "NVIDIA A100-SXM4-80GB", "mig": [{"profile": "1g.10gb"}] * SLICES} for _ in range(GPUS)]
    (tmp / "gpus.yaml").write_text(yaml.safe_dump({"gpus": gpus}))
    config = yaml.safe_load((ROOT / "config" / "resource-limits.yaml").read_text())
    config["gpu"] = {"backend": "simulated", "inventory": str(tmp / "gpus.yaml"), "attach": "env"}
    config["paths"] = {
        "workspace_root": str(tmp / "ws"),
        "state_dir": str(tmp / "state"),
        "log_dir": str(tmp / "log"),
    }
    (tmp / "resource-limits.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return {"DS01_CONFIG": str(tmp / "resource-limits.yaml")}


def fill(host: str, image: str) -> None:
    import docker

    from ds01.gpu.simulated import default_mig_uuid

    api = docker.DockerClient(base_url=host, version="1.41").api
    for n in range(CONTAINERS):
        gpu, mig = divmod(n, SLICES)
        uid = 3000 + n % 25
        labels = {
            "ds01.managed": "true",
            "ds01.user": f"user{n % 25}",
            "ds01.uid": str(uid),
            "ds01.project": f"job{n}",
            "ds01.interface": "atomic",
            "ds01.created_at": "2026-11-23T09:00:00Z",
            "ds01.gpu.slots": f"{gpu}.{mig}",
            "ds01.gpu.uuids": default_mig_uuid(gpu, mig),
            "ds01.gpu.gpueq": f"{1 / SLICES:.4f}",
        }
        cid = api.create_container(
            image,
            ["true"],
            name=f"job{n}._.{uid}",
            labels=labels,
            host_config=api.create_host_config(network_mode="none", init=True),
        )["Id"]
        if n < STOPPED:
            api.start(cid)
            api.wait(cid)


def timed(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark starts its own dockerd")
    eng = engine.start_engine()
    try:
        image = base_image.import_base_image(eng.host)
        fill(eng.host, image)
        with tempfile.TemporaryDirectory(prefix="ds01-bench-") as tmp:
            env = {**os.environ, **write_world(Path(tmp)), "DOCKER_HOST": eng.host, "COLUMNS": "200"}
            cases = [
                ("python -c pass (interpreter floor)", [sys.executable, "-c", "pass"]),
                ("gpu-status --json", [str(BIN / "gpu-status"), "--json"]),
                ("gpu-status --json --free", [str(BIN / "gpu-status"), "--json", "--free"]),
                ("gpu-status (table)", [str(BIN / "gpu-status")]),
            ]
            timed(cases[1][1], env, 3)  # warm the page cache and .pyc files
            results = {name: timed(argv, env, args.runs) for name, argv in cases}
    finally:
        engine.stop_engine(eng)
    print(
        f"{CONTAINERS} labelled GPU containers ({STOPPED} stopped), {GPUS * SLICES} slots, {args.runs} runs"
    )
    print(f"{'command':<38} {'median s':>9} {'p90 s':>7} {'min s':>7}")
    for name, times in results.items():
        p90 = sorted(times)[int(0.9 * (len(times) - 1))]
        print(f"{name:<38} {statistics.median(times):>9.3f} {p90:>7.3f} {min(times):>7.3f}")
    median = statistics.median(results["gpu-status --json"])
    verdict = "ok" if median < TARGET_S else "TOO SLOW"
    print(f"gpu-status --json median {median:.3f} s, target < {TARGET_S} s: {verdict}")
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
