"""events.jsonl is rotated by size (policies.events_max_mb, keep policies.events_keep), and no line is lost
or torn while several processes write across rotations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

WRITER = """
import sys
from pathlib import Path
from ds01.events import log_event, set_rotation
set_rotation(int(sys.argv[2]), int(sys.argv[3]))
log_dir, who = Path(sys.argv[1]), f"w{sys.argv[5]}"
for i in range(int(sys.argv[4])):
    assert log_event(log_dir, "start", user=who, container=f"c{i}", seq=i, pad="x" * 40)
"""


def write_concurrently(log_dir: Path, *, max_bytes: int, keep: int, writers: int, lines: int) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(log_dir), str(max_bytes), str(keep), str(lines), str(w)]
        )
        for w in range(writers)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0] * writers


def test_concurrent_writers_across_many_rotations_lose_no_line(tmp_path: Path):
    from ds01.events import read_events, rotated

    log_dir = tmp_path / "log"
    write_concurrently(log_dir, max_bytes=8 << 10, keep=1000, writers=6, lines=300)
    files = rotated(log_dir)
    assert len(files) > 20, "it rotated, many times, while the writers ran"
    seen: list[tuple[str, int]] = []
    for path in files:
        data = path.read_bytes()
        assert path.stat().st_size <= 8 << 10 and data.endswith(b"\n")
        assert (path.stat().st_mode & 0o777) == 0o600
        for raw in data.splitlines():
            record = json.loads(raw)  # whole lines only: none torn
            seen.append((record["user"], record["details"]["seq"]))
    assert sorted(seen) == sorted((f"w{w}", i) for w in range(6) for i in range(300)), "each line once"
    events = read_events(log_dir)
    assert len(events) == 1800, "a query reads across the rotated files"
    for w in range(6):  # oldest first: each writer's lines in its own order
        assert [e["details"]["seq"] for e in events if e["user"] == f"w{w}"] == list(range(300))


def test_only_keep_rotated_files_stay(tmp_path: Path):
    from ds01.events import read_events, rotated

    log_dir = tmp_path / "log"
    write_concurrently(log_dir, max_bytes=4 << 10, keep=3, writers=2, lines=200)
    files = rotated(log_dir)
    assert [p.name for p in files] == ["events.jsonl.3", "events.jsonl.2", "events.jsonl.1", "events.jsonl"]
    events = read_events(log_dir)
    assert 0 < len(events) < 400, "the oldest went"
    assert events[-1]["details"]["seq"] == 199, "the newest stay"
    for who in {e["user"] for e in events}:  # what is kept is each writer's latest lines, with no gap
        seqs = [e["details"]["seq"] for e in events if e["user"] == who]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), who


def test_the_config_keys_set_the_rotation(tmp_path: Path):
    import ds01.events as ev
    from ds01.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("policies:\n  events_max_mb: 0.5\n  events_keep: 2\n")
    before = ev._rotation
    try:
        load_config(path)
        assert ev._rotation == (512 << 10, 2)
    finally:
        ev.set_rotation(*before)
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies:\n  events_keep: 0\n")
    ds01d = str(Path(sys.executable).parent / "ds01d")
    done = subprocess.run([ds01d, "--check-config", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2 and "events_keep" in done.stderr + done.stdout
