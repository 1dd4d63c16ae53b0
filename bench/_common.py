"""Shared bits of the benchmarks: timing commands, a private engine from the test harness, and the ds01d
config a benchmark runs under."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def world(tmp: Path, *, inventory: Path | None = None, **settings: Any) -> Path:
    """A ds01d config in `tmp` (its workspace, state and log folders made there): the shipped config with
    private paths, no network, the simulated GPUs (`inventory`, default the shipped 4-GPU box), then each
    top-level `settings` key replaced (e.g. `cluster=`, `user_overrides=`), except `groups`: each group
    given is merged into the shipped one of that name."""
    import yaml

    for sub, mode in (("ws", 0o755), ("state", 0o700), ("log", 0o700)):
        (tmp / sub).mkdir(mode=mode)
    config = yaml.safe_load((ROOT / "config" / "resource-limits.yaml").read_text())
    config["paths"] = {k: str(tmp / v) for k, v in
                       (("workspace_root", "ws"), ("state_dir", "state"), ("log_dir", "log"),
                        ("socket", "ds01.sock"))}  # fmt: skip
    config["containers"] = {"network": "none", "init": True, "env": {}}
    shipped = ROOT / "config" / "simulated-gpus.yaml"
    config["gpu"] = {
        "backend": "simulated",
        "inventory": str(inventory or shipped),
        "attach": "device-request",
    }
    config.setdefault("user_overrides", {})
    for group, limits in settings.pop("groups", {}).items():
        config["groups"].setdefault(group, {}).update(limits)
    config.update(settings)
    cfg = tmp / "limits.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return cfg
