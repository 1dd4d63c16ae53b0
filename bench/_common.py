"""Shared bits of the benchmarks: timing commands, and a private engine from the test harness."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tests"))


def time_command(
    argv: Sequence[str],
    runs: int,
    env: dict[str, str] | None = None,
    ok: Callable[[subprocess.CompletedProcess[bytes]], bool] | None = None,
) -> float:
    """Median wall time in seconds of `runs` runs (after one warm-up)."""
    samples = []
    full_env = dict(os.environ, **(env or {}))
    for i in range(runs + 1):
        start = time.perf_counter()
        result = subprocess.run(list(argv), capture_output=True, env=full_env)
        elapsed = time.perf_counter() - start
        if (ok or (lambda r: r.returncode == 0))(result):
            if i:
                samples.append(elapsed)
        else:
            raise SystemExit(
                f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.decode()[-500:]}"
            )
    return statistics.median(samples)


def time_call(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for i in range(runs + 1):
        start = time.perf_counter()
        fn()
        if i:
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


@contextmanager
def private_engine() -> Iterator[str]:
    """DOCKER_HOST of a private dockerd (root only), with the busybox base image imported."""
    from harness import base_image, engine

    eng = engine.start_engine()
    os.environ["DOCKER_HOST"] = eng.host
    try:
        base_image.import_base_image(eng.host)
        yield eng.host
    finally:
        engine.stop_engine(eng)


def print_table(rows: Sequence[tuple[str, float, float | None]], headers: tuple[str, str, str]) -> None:
    print(f"{headers[0]:<44} {headers[1]:>12} {headers[2]:>10}")
    for name, median, ratio in rows:
        shown = f"{ratio:.2f}x" if ratio is not None else ""
        print(f"{name:<44} {median * 1000:>10.1f}ms {shown:>10}")
