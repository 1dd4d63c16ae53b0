"""Time to log in to a project's container with `ssh NAME.ds01` (run as root: it starts a private dockerd,
ds01d and a test sshd standing in for the lab server).

    python bench/bench_ssh_login.py [--runs 10]

A = `ssh thesis.ds01 true` as a real user, with the ~/.ssh/config block ds01 prints: the laptop's ssh logs in
    to the lab server, runs `container-ssh thesis` there, which joins an `sshd -i` started as the user in the
    container through ds01d, and logs in again there;
B = `ssh labserver true`: the same user's plain login to the lab server (the first hop alone);
C = `container-run thesis -- true` on the server: a command in the container through ds01d, no SSH.
The medians are printed; A - B is what the container hop costs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _common import BIN, private_engine, world


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    from harness import access_image, access_lab, daemon, users

    user = users.ensure_user("ds01t-bench")
    with private_engine() as host, tempfile.TemporaryDirectory(dir="/tmp") as raw_tmp:
        tmp = Path(raw_tmp)
        tmp.chmod(0o755)
        cfg = world(tmp)
        socket_path = tmp / "ds01.sock"
        server = daemon.start_ds01d(cfg, socket_path, env={"DOCKER_HOST": host, "PATH": "/usr/bin:/bin"})
        image = access_image.import_access_image(host, [user])
        lab = access_lab.start_lab_server(socket_path, [user])
        env = ["env", f"DS01_SOCKET={socket_path}"]
        as_user = ["runuser", "-u", user.name, "--", *env]
        laptop = access_lab.Laptop(user, lab)
        try:
            deploy = [str(BIN / "container-deploy"), "thesis", "--image", image, "--background", "--cpu-only"]
            subprocess.run([*as_user, *deploy], check=True, capture_output=True)
            printed = [str(BIN / "container-ssh"), "--config", "--server", access_lab.SERVER]
            block = subprocess.run([*as_user, *printed], check=True, capture_output=True, text=True).stdout
            laptop.setup(block)

            def a() -> None:
                r = laptop.ssh("thesis.ds01", "true")
                if r.returncode:
                    raise SystemExit(f"ssh thesis.ds01 failed: {r.stderr[-400:]}")

            def b() -> None:
                r = laptop.ssh(access_lab.SERVER, "true")
                if r.returncode:
                    raise SystemExit(f"ssh labserver failed: {r.stderr[-400:]}")

            def c() -> None:
                subprocess.run([*as_user, str(BIN / "container-run"), "thesis", "--", "true"], check=True,
                               capture_output=True)  # fmt: skip

            times: dict[str, list[float]] = {"A": [], "B": [], "C": []}
            for i in range(args.runs + 1):
                for key, fn in (("A", a), ("B", b), ("C", c)):
                    start = time.perf_counter()
                    fn()
                    if i:  # the first round warms caches
                        times[key].append(time.perf_counter() - start)
        finally:
            laptop.cleanup()
            lab.stop()
            daemon.stop_ds01d(server)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"ssh login, {args.runs} rounds, medians:")
    print(f"  A  ssh thesis.ds01 true (into the container)       {med['A'] * 1000:7.1f} ms")
    print(f"  B  ssh labserver true (the lab server alone)        {med['B'] * 1000:7.1f} ms")
    print(f"  C  container-run thesis -- true (on the server)     {med['C'] * 1000:7.1f} ms")
    print(f"  the container hop costs A - B = {(med['A'] - med['B']) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
