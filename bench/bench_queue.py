"""The time from a retire to the next waiting container running (run as root: it starts a private dockerd +
ds01d with a simulated one-GPU box).

    python bench/bench_queue.py [--runs 10]

Each round: user 1 deploys `holder --gpus 1` (the only slot); user 2 runs `container-deploy waiter --gpus 1
--wait --background` and waits in the queue; user 1 retires the holder. Measured:
  Q = from the retire command's return (the slot is free) to the waiting client's return (its container
      runs: created, started and seen running by ds01d); the grant may begin before the retire returns;
  R = the same from the retire command's start (its own client and the removal included);
  E = the engine's own `docker run -d` + first `docker top` of the same image (what any start pays).
The aim (issue 16): Q under 1 s plus E.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from _common import BIN, private_engine, world

IMAGE = "ds01-test/busybox:latest"


def as_user(user: str, sock: Path, *argv: str) -> list[str]:
    return ["runuser", "-u", user, "--", "env", f"DS01_SOCKET={sock}", *argv]


def run(argv: list[str]) -> None:
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {r.stderr[-400:]}")


def queued(sock: Path) -> int:
    out = subprocess.run(
        [str(BIN / "ds01"), "queue", "--json"], capture_output=True, text=True,
        env={**os.environ, "DS01_SOCKET": str(sock)}, check=True,
    ).stdout  # fmt: skip
    return int(json.loads(out)["waiting"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    from harness import daemon, users

    docker = shutil.which("docker") or "docker"
    one, two = users.ensure_user("ds01t-bench"), users.ensure_user("ds01t-bench2")
    gpu = ["--gpus", "1", "--image", IMAGE, "--background"]
    q_times: list[float] = []
    e_times: list[float] = []
    r_times: list[float] = []
    with private_engine() as host, tempfile.TemporaryDirectory(dir="/tmp") as raw_tmp:
        tmp = Path(raw_tmp)
        tmp.chmod(0o755)
        inventory = tmp / "gpus.yaml"
        inventory.write_text(
            yaml.safe_dump({"gpus": [{"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "slices": 7}]})
        )
        cfg = world(
            tmp,
            inventory=inventory,
            monitoring={"listen": None},
            groups={"student": {"allow_full_gpu": True}},
        )
        sock = tmp / "ds01.sock"
        server = daemon.start_ds01d(cfg, sock, env={"DOCKER_HOST": host, "PATH": "/usr/bin:/bin"})
        try:
            for i in range(args.runs + 1):
                run(as_user(one.name, sock, str(BIN / "container-deploy"), "holder", *gpu))
                waiter = subprocess.Popen(
                    as_user(two.name, sock, str(BIN / "container-deploy"), "waiter", *gpu, "--wait"),
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                )  # fmt: skip
                while queued(sock) < 1:
                    time.sleep(0.05)
                asked = time.perf_counter()
                run(as_user(one.name, sock, str(BIN / "container-retire"), "holder", "--yes"))
                freed = time.perf_counter()
                _, err = waiter.communicate(timeout=60)
                got = time.perf_counter() - freed
                whole = time.perf_counter() - asked
                if waiter.returncode != 0:
                    raise SystemExit(f"the waiting deploy failed: {err[-400:]}")
                run(as_user(two.name, sock, str(BIN / "container-retire"), "waiter", "--yes"))
                start = time.perf_counter()
                run([docker, "-H", host, "run", "-d", "--name", f"plain{i}", "--network", "none", IMAGE,
                     "sleep", "600"])  # fmt: skip
                run([docker, "-H", host, "top", f"plain{i}"])
                engine = time.perf_counter() - start
                run([docker, "-H", host, "rm", "-f", f"plain{i}"])
                if i:  # the first round warms caches
                    q_times.append(got)
                    r_times.append(whole)
                    e_times.append(engine)
        finally:
            daemon.stop_ds01d(server)
    q, e = statistics.median(q_times), statistics.median(e_times)
    print(f"retire -> next waiting container running, {args.runs} rounds, medians:")
    print(f"  Q  slot freed by a retire -> the waiting deploy returns   {q * 1000:7.1f} ms")
    r = statistics.median(r_times)
    print(f"  R  container-retire starts -> the waiting deploy returns  {r * 1000:7.1f} ms")
    print(f"  E  docker run -d + docker top (the engine's own start)    {e * 1000:7.1f} ms")
    print(f"  Q - E = {(q - e) * 1000:.1f} ms (aim: under 1000 ms)   max Q {max(q_times) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
