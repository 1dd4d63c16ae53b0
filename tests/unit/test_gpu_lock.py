"""The reservation lock: exclusive across processes, usable by every user, never skipped."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
from pathlib import Path

import pytest

from ds01.errors import LockTimeout, OperationFailed
from ds01.gpu.lock import LOCK_NAME, reservation_lock


def test_lock_file_is_usable_by_every_user(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        with reservation_lock(tmp_path):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / LOCK_NAME).stat().st_mode) == 0o666


def test_a_held_lock_times_out_with_an_error(tmp_path: Path) -> None:
    with reservation_lock(tmp_path):
        started = time.monotonic()
        with pytest.raises(LockTimeout) as info, reservation_lock(tmp_path, timeout=0.3):
            pass
        assert 0.25 < time.monotonic() - started < 2
    assert "reservation lock" in str(info.value) and info.value.exit_code == 1
    with reservation_lock(tmp_path, timeout=0.3):  # released when the block ended
        pass


def test_released_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), reservation_lock(tmp_path):
        raise RuntimeError("create failed")
    with reservation_lock(tmp_path, timeout=0.3):
        pass


def test_a_planted_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("secret")
    target.chmod(0o600)
    (tmp_path / LOCK_NAME).symlink_to(target)
    with pytest.raises(OperationFailed, match="symbolic link"), reservation_lock(tmp_path):
        pass
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def _hold(state_dir: str, log: str) -> None:
    with reservation_lock(Path(state_dir)):
        with open(log, "a") as f:
            f.write(f"in {time.monotonic()}\n")
        time.sleep(0.05)
        with open(log, "a") as f:
            f.write(f"out {time.monotonic()}\n")


def test_exclusive_across_processes(tmp_path: Path) -> None:
    log = tmp_path / "log"
    procs = [
        multiprocessing.get_context("fork").Process(target=_hold, args=(str(tmp_path), str(log)))
        for _ in range(6)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    kinds = [line.split()[0] for line in log.read_text().splitlines()]
    assert kinds == ["in", "out"] * 6  # never two holders at once
