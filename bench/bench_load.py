"""Load: 20 real users x 10 concurrent `container-create --gpus 1` / `--mig-profile 1g.10gb` requests (200
in all) through ds01d against the simulated 4-GPU box (run as root: it starts a private dockerd + ds01d).

    python bench/bench_load.py [--users 20] [--per-user 10] [--workers 20]

Prints requests per second, the p50/p99 latency of a create, the answers (0 granted, 4 no capacity or over
quota), ds01d's memory before and after, and whether any slot was held twice or any user went over a limit
while the load ran (the engine is sampled throughout). The same driver is tests/load/test_load.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import private_engine, world

IMAGE = "ds01-test/busybox:latest"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--per-user", type=int, default=10)
    parser.add_argument("--workers", type=int, default=20)
    args = parser.parse_args()
    import docker

    from harness import daemon, users
    from load.test_load import LIMITS, OVERRIDES, USERS, run_load

    if not 1 <= args.users <= len(USERS):
        raise SystemExit(f"--users: 1 to {len(USERS)}")
    names = [users.ensure_user(n).name for n in USERS[: args.users]]
    with private_engine() as host, tempfile.TemporaryDirectory(dir="/tmp") as raw_tmp:
        tmp = Path(raw_tmp)
        tmp.chmod(0o755)
        cfg = world(
            tmp, groups={"student": dict(LIMITS)}, default_group="student", user_overrides=dict(OVERRIDES)
        )
        server = daemon.start_ds01d(
            cfg, tmp / "ds01.sock", env={"DOCKER_HOST": host, "PATH": "/usr/bin:/bin"}
        )
        client = docker.DockerClient(base_url=host, version="1.41")
        try:
            report = run_load(tmp / "ds01.sock", IMAGE, client.api, server.pid, names,
                              per_user=args.per_user, workers=args.workers)  # fmt: skip
        finally:
            for c in client.api.containers(all=True):
                client.api.remove_container(c["Id"], force=True)
            client.close()
            daemon.stop_ds01d(server)
    print(report.figures())
    bad = [a for a in report.answers if a.rc not in (0, 4)]
    for a in bad[:10]:
        print(f"  unexpected rc {a.rc}: {a.user} {a.name}: {a.stderr.strip()[-200:]}", file=sys.stderr)
    for v in report.violations[:10]:
        print(f"  violation: {v}", file=sys.stderr)
    if bad or report.violations:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
