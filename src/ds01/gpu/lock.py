"""The one reservation lock: held from reading holdings until the container carrying the labels exists."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from ds01.errors import OperationFailed
from ds01.filelock import flock_within

LOCK_NAME = "gpu-reservation.lock"
POLL_S = 0.02


def _open_lock_file(path: Path) -> int:
    """Open (creating) the lock file without following links: 0600 and ds01d's own, so that no other
    account can open it, let alone hold it and stall every create on the host."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        why = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
        raise OperationFailed(
            f"cannot open the reservation lock {path}: {why}",
            hint="ask an admin to check the ds01 state directory",
        ) from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_uid != os.geteuid():
        os.close(fd)
        raise OperationFailed(
            f"the reservation lock {path} is not a plain file of uid {os.geteuid()}",
            hint="ask an admin to remove it; ds01d recreates it",
        )
    if stat.S_IMODE(info.st_mode) != 0o600:
        os.fchmod(fd, 0o600)  # an older install made it 0666
    return fd


@contextlib.contextmanager
def reservation_lock(state_dir: Path, timeout: float = 10.0) -> Iterator[None]:
    """An exclusive fcntl lock on `<state_dir>/gpu-reservation.lock`; LockTimeout if not had in time."""
    path = Path(state_dir) / LOCK_NAME
    fd = _open_lock_file(path)
    try:
        flock_within(
            fd,
            timeout,
            message=f"another ds01 command has held the GPU reservation lock for over {timeout:g} s",
            hint="try again in a moment; if it persists, ask an admin to look for a hung command",
            poll_s=POLL_S,
        )
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
