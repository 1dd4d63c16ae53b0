"""`container-create` + `container-start` of a CPU-only container against `docker create` + `docker start`
with the same flags (taken from `container-create --dry-run`), side by side. Run as root:

    python bench/bench_container_lifecycle.py [--runs 15]

It starts its own private engine (tests/harness), so nothing on the host's engine is touched.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from _common import BIN, ROOT, print_table, private_engine

IMAGE = "ds01-test/busybox:latest"


def write_config(tmp: Path) -> Path:
    data = yaml.safe_load((ROOT / "config" / "resource-limits.yaml").read_text())
    data["paths"] = {"workspace_root": str(tmp / "ws" / "{user}"), "state_dir": str(tmp / "state"),
                     "log_dir": str(tmp / "log")}  # fmt: skip
    data["containers"] = {"network": "none", "init": True, "env": {}}  # the private engine has no bridge
    data["gpu"] = {"backend": "none"}
    path = tmp / "resource-limits.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True)
    if result.returncode:
        raise SystemExit(f"{shlex.join(argv)} failed ({result.returncode}): {result.stderr.decode()[-500:]}")


def lap(create: list[str], start: list[str], name: str) -> float:
    began = time.perf_counter()
    run(create)
    run(start)
    elapsed = time.perf_counter() - began
    run(["docker", "rm", "-f", name])
    return elapsed


def docker_argv(tmp: Path, name: str) -> list[str]:
    """The ds01 container's flags as a plain `docker create` line, under another name."""
    dry = subprocess.run([str(BIN / "container-create"), name, "--image", IMAGE, "--dry-run"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    argv = shlex.split(dry.stdout)
    argv[argv.index("--name") + 1] = f"{name}-plain"
    (tmp / "ws" / "root" / name).mkdir(parents=True, exist_ok=True)  # docker would make it root's
    return argv


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if not shutil.which("docker"):
        raise SystemExit("the docker CLI is needed for the comparison")
    with private_engine(), tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for sub in ("state", "log", "ws"):
            (tmp / sub).mkdir()
        os.environ["DS01_CONFIG"] = str(write_config(tmp))
        os.environ.pop("SUDO_UID", None)
        plain = docker_argv(tmp, "bench")
        ds01, docker = [], []
        for i in range(args.runs + 1):  # the first lap of each warms caches and is dropped
            d = lap([str(BIN / "container-create"), "bench", "--image", IMAGE],
                    [str(BIN / "container-start"), "bench"], "bench._.0")  # fmt: skip
            p = lap(plain, ["docker", "start", "bench-plain"], "bench-plain")
            if i:
                ds01.append(d)
                docker.append(p)
    base = statistics.median(docker)
    mine = statistics.median(ds01)
    print_table(
        [
            ("docker create + docker start", base, None),
            ("container-create + container-start", mine, mine / base),
        ],
        ("lifecycle (CPU-only, same flags)", "median", "vs docker"),
    )


if __name__ == "__main__":
    main()
