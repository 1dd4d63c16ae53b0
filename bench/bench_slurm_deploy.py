"""Submit-to-running through Slurm against a plain deploy, side by side (run as root: it starts a private
dockerd, the test Slurm cluster of tests/harness/slurm.py and two ds01d, one in cluster mode).

    python bench/bench_slurm_deploy.py [--runs 5]

S = `container-deploy NAME --gpus 1 --background` as an ordinary user with `cluster.backend: slurm`: sbatch,
    Slurm schedules the job, its step asks the node's ds01d, which checks the job with slurmctld and runs
    the container; the command returns once the container runs. Slurm's part (SubmitTime to StartTime of
    the job, whole seconds) is shown apart.
P = the same command on a plain server (`cluster.backend: none`).
Each round retires both (and waits for the job to leave squeue) before the next; the medians are printed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from _common import BIN, private_engine, world

IMAGE = "ds01-test/busybox:latest"


def as_user(user: str, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    pairs = [f"{k}={v}" for k, v in env.items()]
    done = subprocess.run(["runuser", "-u", user, "--", "env", *pairs, *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {done.stderr[-400:]}")
    return done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from harness import daemon, slurm, users

    user = users.ensure_user("ds01t-bench")
    deploy = [str(BIN / "container-deploy"), "bench", "--gpus", "1", "--image", IMAGE, "--background"]
    retire = [str(BIN / "container-retire"), "bench", "--yes"]
    times: dict[str, list[float]] = {"S": [], "P": [], "slurm": []}
    with (
        private_engine() as host,
        slurm.running_cluster() as cluster,
        tempfile.TemporaryDirectory(dir="/tmp") as raw,
    ):
        tmp = Path(raw)
        tmp.chmod(0o755)
        assert cluster.inventory is not None
        mode = {"backend": "slurm", "node_name": cluster.node, "partition": cluster.partition}
        servers = {}
        for key, section in (("S", mode), ("P", {"backend": "none"})):
            (tmp / key).mkdir(mode=0o755)
            cfg = world(
                tmp / key, inventory=cluster.inventory, cluster=section,
                user_overrides={user.name: {"max_gpu_equivalents": 4, "allow_full_gpu": True}},
            )  # fmt: skip
            servers[key] = daemon.start_ds01d(
                cfg,
                tmp / key / "ds01.sock",
                env={"DOCKER_HOST": host, "PATH": "/usr/bin:/bin", **cluster.env},
            )
        try:
            for i in range(args.runs + 1):
                for key in ("S", "P"):
                    env = {"DS01_SOCKET": str(tmp / key / "ds01.sock"), **cluster.env}
                    start = time.perf_counter()
                    as_user(user.name, env, *deploy)
                    took = time.perf_counter() - start
                    if key == "S":
                        [job] = cluster.jobs(user.name)
                        info = cluster.job(job["id"])
                        at = [datetime.fromisoformat(info[k]) for k in ("SubmitTime", "StartTime")]
                        queued = (at[1] - at[0]).total_seconds()
                    as_user(user.name, env, *retire)
                    while key == "S" and cluster.jobs(user.name):
                        time.sleep(0.1)
                    if i:  # the first round warms caches
                        times[key].append(took)
                        if key == "S":
                            times["slurm"].append(queued)
        finally:
            for server in servers.values():
                daemon.stop_ds01d(server)
    med = {k: statistics.median(v) for k, v in times.items()}
    span = {k: f"range {min(v):.2f}-{max(v):.2f}" for k, v in times.items()}
    print(f"submit-to-running, container-deploy --gpus 1 --background, {args.runs} rounds, medians:")
    print(f"  S  through Slurm          {med['S']:5.2f} s  ({span['S']})")
    print(f"     of it Slurm pending    {med['slurm']:5.2f} s  (SubmitTime to StartTime, whole seconds)")
    print(f"  P  plain deploy           {med['P']:5.2f} s  ({span['P']})")


if __name__ == "__main__":
    main()
