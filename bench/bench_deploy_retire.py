"""container-deploy + container-retire, run by a real user through ds01d, against the plain docker CLI doing
the same work and against the floor of any typer client (run as root: it starts a private dockerd + ds01d).

    python bench/bench_deploy_retire.py [--runs 10] [--gpu]

A = `container-deploy NAME --background` + `container-retire NAME --yes`, as an ordinary user (no sudo, no
    docker group), through ds01d with the simulated 4-GPU box (`--gpu`: with `--gpus 1`, else `--cpu-only`);
B = `docker run -d` + `docker rm -f` with the flags ds01 uses (from `container-create --dry-run`), as root;
C = two `python -c "import typer"` as the user: what any typer client pays before doing anything.
The three run interleaved, one round at a time; the medians and A/B and A/(B+C) are printed.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import BIN, private_engine, world

IMAGE = "ds01-test/busybox:latest"


def timed(argv: list[str], user: str | None = None) -> float:
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)} failed: {result.stderr.decode()[-400:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--gpu", action="store_true", help="deploy with --gpus 1 (simulated) instead of --cpu-only"
    )
    args = parser.parse_args()
    from harness import daemon, users

    docker = shutil.which("docker") or "docker"
    user = users.ensure_user("ds01t-bench")
    shape = ["--gpus", "1"] if args.gpu else ["--cpu-only"]
    with private_engine() as host, tempfile.TemporaryDirectory(dir="/tmp") as raw_tmp:
        tmp = Path(raw_tmp)
        tmp.chmod(0o755)
        cfg = world(tmp)
        server = daemon.start_ds01d(
            cfg, tmp / "ds01.sock", env={"DOCKER_HOST": host, "PATH": "/usr/bin:/bin"}
        )
        env = ["env", f"DS01_SOCKET={tmp / 'ds01.sock'}"]
        try:
            subprocess.run([docker, "-H", host, "tag", IMAGE, f"ds01-{user.uid}/bench:latest"], check=True)
            dry = subprocess.run(
                ["runuser", "-u", user.name, "--", *env, str(BIN / "container-create"), "probe", *shape,
                 "--image", f"ds01-{user.uid}/bench:latest", "--dry-run"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            flags = shlex.split(dry.splitlines()[-1])
            flags = flags[flags.index("create") + 1 :]
            plain_ws = tmp / "plain-ws"  # the dry run names ds01d's staging folder, made only at a real start
            plain_ws.mkdir()
            flags = [f"type=bind,source={plain_ws},target=/workspace" if f.startswith("type=bind") else f
                     for f in flags]  # fmt: skip
            times: dict[str, list[float]] = {"A": [], "B": [], "C": []}
            for i in range(args.runs + 1):
                a = timed([*env, str(BIN / "container-deploy"), "bench", "--background", *shape], user.name)
                a += timed([*env, str(BIN / "container-retire"), "bench", "--yes"], user.name)
                run = [docker, "-H", host, "run", "-d", *flags]
                run[run.index("--name") + 1] = f"plain{i}"
                b = timed(run) + timed([docker, "-H", host, "rm", "-f", f"plain{i}"])
                c = sum(timed([sys.executable, "-c", "import typer"], user.name) for _ in range(2))
                if i:  # the first round warms caches
                    times["A"].append(a)
                    times["B"].append(b)
                    times["C"].append(c)
        finally:
            daemon.stop_ds01d(server)
    med = {k: statistics.median(v) for k, v in times.items()}
    what = "--gpus 1 (simulated)" if args.gpu else "--cpu-only"
    print(f"deploy + retire {what}, {args.runs} rounds, medians:")
    print(f"  A  container-deploy + container-retire (user, via ds01d)  {med['A'] * 1000:7.1f} ms")
    print(f"  B  docker run -d + docker rm -f (same flags, root)         {med['B'] * 1000:7.1f} ms")
    print(f"  C  2 x python -c 'import typer' (user)                     {med['C'] * 1000:7.1f} ms")
    floor = med["A"] / (med["B"] + med["C"])
    print(f"  A/B = {med['A'] / med['B']:.2f}x   A/(B+C) = {floor:.2f}x (aim <= 1.3x)")


if __name__ == "__main__":
    main()
