"""The reservation lock: exclusive across processes, ds01d's alone (0600), never skipped."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
from pathlib import Path

import pytest

from ds01.errors import LockTimeout, OperationFailed
from ds01.gpu.lock import LOCK_NAME, reservation_lock


def test_lock_file_is_private_to_its_owner(tmp_path: Path) -> None:
    with reservation_lock(tmp_path):
        pass
    info = (tmp_path / LOCK_NAME).stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()


def test_an_old_world_writable_lock_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / LOCK_NAME
    path.touch()
    path.chmod(0o666)
    with reservation_lock(tmp_path):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_lock_file_of_another_owner_is_refused(tmp_path: Path) -> None:
    path = tmp_path / LOCK_NAME
    path.touch()
    os.chown(path, 65534, 65534)
    with pytest.raises(OperationFailed, match="not a plain file"), reservation_lock(tmp_path):
        pass


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
