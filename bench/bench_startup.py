"""Start-up time: `ds01 --help` and `check-limits --json` against `python -c pass` (run as root).

python bench/bench_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import BIN, print_table, private_engine, time_command


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with private_engine(), tempfile.TemporaryDirectory() as tmp:
        env = {"DS01_STATE_DIR": tmp, "DS01_LOG_DIR": tmp, "DS01_GPU_BACKEND": "none"}
        base = time_command([sys.executable, "-c", "pass"], args.runs)
        rows = [("python -c pass", base, None)]
        for argv in (["ds01", "--help"], ["check-limits", "--json"], ["container", "--help"]):
            t = time_command([str(Path(BIN) / argv[0]), *argv[1:]], args.runs, env=env)
            rows.append((" ".join(argv), t, t / base))
    print_table(rows, ("command", "median", "vs python"))


if __name__ == "__main__":
    main()
