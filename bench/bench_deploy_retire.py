"""container-deploy / container-retire against the plain docker CLI doing the same work (run as root).

    python bench/bench_deploy_retire.py [--runs 10]

deploy = `container-deploy NAME --background --cpu-only` vs `docker run -d` with the flags ds01 uses (taken
from `container-create --dry-run`); retire = `container-retire NAME --yes` vs `docker rm -f`, and vs
`docker stop` + `docker rm` (the same work: retire stops gracefully first).
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

import yaml
from _common import BIN, ROOT, print_table, private_engine

IMAGE = "ds01-test/busybox:latest"


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)} failed: {result.stderr.decode()[-400:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    docker = shutil.which("docker") or "docker"
    with private_engine() as host, tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        config = yaml.safe_load((ROOT / "config" / "resource-limits.yaml").read_text())
        config["paths"] = {
            "workspace_root": f"{tmp}/ws",
            "state_dir": f"{tmp}/state",
            "log_dir": f"{tmp}/log",
        }
        config["containers"] = {"network": "none", "init": True, "env": {}}
        config["gpu"] = {"backend": "none"}
        cfg = os.path.join(tmp, "limits.yaml")
        with open(cfg, "w") as f:
            f.write(yaml.safe_dump(config))
        env = dict(os.environ, DS01_CONFIG=cfg, DOCKER_HOST=host)
        dry = subprocess.run(
            [str(BIN / "container-create"), "probe", "--image", IMAGE, "--dry-run"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout.strip()
        argv = shlex.split(dry.splitlines()[-1])
        create_at = argv.index("create")
        times: dict[str, list[float]] = {k: [] for k in ("deploy", "run", "retire", "rm", "stop_rm")}
        for i in range(args.runs):
            ds01_name, plain = f"b{i}", f"plain{i}"
            times["deploy"].append(
                timed(
                    [
                        str(BIN / "container-deploy"),
                        ds01_name,
                        "--background",
                        "--cpu-only",
                        "--image",
                        IMAGE,
                    ],
                    env,
                )
            )
            run = [docker, "-H", host, "run", "-d", *argv[create_at + 1 :]]
            run[run.index("--name") + 1] = plain
            times["run"].append(timed(run, env))
            times["retire"].append(timed([str(BIN / "container-retire"), ds01_name, "--yes"], env))
            times["rm"].append(timed([docker, "-H", host, "rm", "-f", plain], env))
            # retire stops gracefully (SIGTERM first); `docker stop` + `docker rm` is the same work
            timed(run, env)
            start = time.perf_counter()
            timed([docker, "-H", host, "stop", plain], env)
            timed([docker, "-H", host, "rm", plain], env)
            times["stop_rm"].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    print_table(
        [
            ("docker run -d (same flags)", med["run"], None),
            ("container-deploy --background --cpu-only", med["deploy"], med["deploy"] / med["run"]),
            ("docker rm -f", med["rm"], None),
            ("container-retire --yes", med["retire"], med["retire"] / med["rm"]),
            ("docker stop + docker rm", med["stop_rm"], None),
            ("container-retire --yes vs stop + rm", med["retire"], med["retire"] / med["stop_rm"]),
        ],
        ("command", "median", "vs docker"),
    )


if __name__ == "__main__":
    main()
