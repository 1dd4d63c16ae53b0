"""Load: 20 real users each send 10 concurrent `container-create` requests (`--gpus 1` and `--mig-profile
1g.10gb`, mixed: 200 in all) against the simulated 4-GPU box. Every answer is 0 or 4, no GPU slot is ever held
twice, no user exceeds max_gpu_equivalents or max_containers_per_user (watched while the load runs, not only
at the end), and ds01d's memory stays bounded. The figures (requests per second, p50/p99 latency of a create)
are printed; bench/bench_load.py prints the same figures on its own engine.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
USERS = [f"ds01t-load{i:02d}" for i in range(1, 21)]
PER_USER = 10
WORKERS = 20  # 2 cores: more processes at once only queue
RSS_GROWTH_MAX_KB = 100 * 1024
# Known limits for the load users (the default group): a full GPU weighs 1.0, a 1g.10gb slice 1/7.
LIMITS = {
    "max_gpu_equivalents": 1.0,
    "max_gpu_slots_per_container": 1,
    "allow_full_gpu": True,
    "max_containers_per_user": 2,
    "max_cpus": 1,
    "memory": "256m",
    "memory_swap": "256m",
    "shm_size": "64m",
    "members": [],
}
# Half the users may hold one container (of any GPU, with gpueq to spare, so their second request that finds
# a free slot meets the count), half 0.5 gpueq in up to three: each limit gets to bite, whatever the order.
OVERRIDES = {
    user: {"max_containers_per_user": 1, "max_gpu_equivalents": 2.0}
    if n % 2
    else {"max_gpu_equivalents": 0.5, "max_containers_per_user": 3}
    for n, user in enumerate(USERS)
}


def limits_of(user: str) -> dict[str, Any]:
    return {**LIMITS, **OVERRIDES.get(user, {})}


@dataclass(frozen=True)
class Answer:
    user: str
    name: str
    shape: tuple[str, ...]
    rc: int
    seconds: float
    stderr: str


@dataclass
class LoadReport:
    answers: list[Answer]
    wall_s: float
    rss_before_kb: int
    rss_after_kb: int
    samples: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def latencies(self) -> list[float]:
        return sorted(a.seconds for a in self.answers)

    def percentile(self, p: float) -> float:
        lat = self.latencies
        return lat[min(len(lat) - 1, round(p / 100 * (len(lat) - 1)))]

    @property
    def per_second(self) -> float:
        return len(self.answers) / self.wall_s

    def figures(self) -> str:
        codes = defaultdict(int)
        for a in self.answers:
            codes[a.rc] += 1
        return (
            f"{len(self.answers)} creates by {len({a.user for a in self.answers})} users "
            f"in {self.wall_s:.1f} s: "
            f"{self.per_second:.1f} req/s, latency p50 {self.percentile(50) * 1000:.0f} ms, "
            f"p99 {self.percentile(99) * 1000:.0f} ms, "
            f"mean {statistics.fmean(self.latencies) * 1000:.0f} ms; "
            f"answers {dict(sorted(codes.items()))}; ds01d RSS {self.rss_before_kb / 1024:.1f} -> "
            f"{self.rss_after_kb / 1024:.1f} MiB; {self.samples} engine samples, "
            f"{len(self.violations)} invariant violations"
        )


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def holdings_problems(containers: list[dict[str, Any]]) -> list[str]:
    """Every slot held twice, and every user over a limit, among the engine's ds01 containers."""
    problems = []
    held: dict[str, str] = {}
    gpueq: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for c in containers:
        labels = c.get("Labels") or {}
        name = (c.get("Names") or ["?"])[0].lstrip("/")
        user = labels.get("ds01.user", "?")
        count[user] += 1
        gpueq[user] += float(labels.get("ds01.gpu.gpueq") or 0)
        for slot in filter(None, (labels.get("ds01.gpu.slots") or "").split(",")):
            if slot in held:
                problems.append(f"slot {slot} held twice: {held[slot]} and {name}")
            held[slot] = name
    for user, n in count.items():
        if n > limits_of(user)["max_containers_per_user"]:
            problems.append(f"{user} has {n} containers (max {limits_of(user)['max_containers_per_user']})")
    for user, eq in gpueq.items():
        if eq > limits_of(user)["max_gpu_equivalents"] + 1e-9:
            problems.append(f"{user} holds {eq:.3f} gpueq (max {limits_of(user)['max_gpu_equivalents']})")
    return problems


def shape_of(i: int) -> tuple[str, ...]:
    return ("--gpus", "1") if i % 2 == 0 else ("--mig-profile", "1g.10gb")


def run_load(
    socket: Path, image: str, api: Any, ds01d_pid: int, users: list[str],
    per_user: int = PER_USER, workers: int = WORKERS,
) -> LoadReport:  # fmt: skip
    """users x per_user `container-create` processes, `workers` at a time, each as its real user; the
    engine is sampled all along for slots held twice and users over their limits."""
    env = ["env", "-i", f"DS01_SOCKET={socket}", f"PATH={os.environ.get('PATH', '/usr/bin:/bin')}"]
    # user by user: each user's requests are in flight together (the race a per-user limit must win)
    jobs = [(u, f"load-{i}", shape_of(i + n)) for n, u in enumerate(users) for i in range(per_user)]

    def one(job: tuple[str, str, tuple[str, ...]]) -> Answer:
        user, name, shape = job
        argv = [
            "runuser",
            "-u",
            user,
            "--",
            *env,
            str(BIN / "container-create"),
            name,
            "--image",
            image,
            *shape,
        ]
        start = time.perf_counter()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
        return Answer(user, name, shape, r.returncode, time.perf_counter() - start, r.stderr)

    report = LoadReport([], 0.0, rss_kb(ds01d_pid), 0)
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            found = api.containers(all=True, filters={"label": "ds01.managed=true"})
            report.samples += 1
            report.violations += holdings_problems(found)
            done.wait(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        report.answers = list(pool.map(one, jobs))
    report.wall_s = time.perf_counter() - start
    done.set()
    watcher.join()
    final = api.containers(all=True, filters={"label": "ds01.managed=true"})
    report.violations += holdings_problems(final)
    report.rss_after_kb = rss_kb(ds01d_pid)
    made = {((c["Labels"] or {}).get("ds01.user"), (c["Labels"] or {}).get("ds01.project")) for c in final}
    ok = {(a.user, a.name) for a in report.answers if a.rc == 0}
    if made != ok:
        report.violations.append(
            f"containers {sorted(made - ok)} exist without a 0; {sorted(ok - made)} 0 without one"
        )
    return report


@pytest.fixture(scope="module")
def load_users() -> list[str]:
    from harness.users import ensure_user

    return [ensure_user(name).name for name in USERS]


@pytest.mark.slow
@pytest.mark.docker
def test_200_concurrent_gpu_creates_by_20_users_keep_every_guarantee(
    ds01_home, engine_clean, base_image_ref, load_users
):
    ds01_home.reconfigure(
        groups={"student": dict(LIMITS)}, default_group="student", user_overrides=dict(OVERRIDES)
    )
    report = run_load(ds01_home.socket, base_image_ref, engine_clean.api, ds01_home.server.pid, load_users)
    print("\n" + report.figures())
    wrong = [a for a in report.answers if a.rc not in (0, 4)]
    assert not wrong, "\n".join(f"{a.user} {a.name} {a.shape}: rc {a.rc}: {a.stderr[-300:]}" for a in wrong)
    assert len(report.answers) == len(USERS) * PER_USER
    assert not report.violations, "\n".join(report.violations[:20])
    assert report.samples >= 3  # the watch really ran during the load
    granted = [a for a in report.answers if a.rc == 0]
    refused = [a for a in report.answers if a.rc == 4]
    assert granted and refused  # the box filled up, and then said so
    assert all(a.stderr.startswith("error: ") and a.stderr.count("\n") == 1 for a in refused)
    reasons = " ".join(a.stderr for a in refused)
    for why in ("no capacity", "would exceed their GPU quota", "already has"):  # every limit was reached
        assert why in reasons, why
    assert report.rss_after_kb - report.rss_before_kb < RSS_GROWTH_MAX_KB, report.figures()
    assert "Traceback" not in ds01_home.server.log_text()
