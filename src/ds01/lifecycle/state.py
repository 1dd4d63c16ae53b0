"""What the reaper remembers about each container between passes, one JSON file per container.

Files are written whole (temp file, fsync, rename), so a reaper killed mid-write or restarted loses nothing
and never reads half a file. Keyed by container id: a new container with an old name starts afresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ds01.errors import PermissionDenied
from ds01.filelock import flock_within

STATE_SUBDIR = "reaper"
_ID = re.compile(r"^[0-9a-f]{12,64}$")


@dataclass
class ContainerState:
    id: str
    name: str = ""
    started_at: str = ""  # State.StartedAt when this record began: a restart resets the record
    last_activity: str | None = None
    last_check: str | None = None
    idle_streak: int = 0
    idle_warned: list[int] = field(default_factory=list)  # percent levels already delivered
    runtime_warned: list[int] = field(default_factory=list)
    # the first start ds01d saw: max_runtime_h counts from here, across stops, starts and ds01d restarts
    first_started_at: str | None = None

    def reset(self, started_at: str) -> None:
        """A (re)start: the idle record begins afresh; the runtime clock and its warnings do not."""
        self.started_at = started_at
        self.last_activity = None
        self.last_check = None
        self.idle_streak = 0
        self.idle_warned = []

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ContainerState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


OUTSIDE_FILE = "gpu-outside.json"


def load_seen_outside(state_dir: Path) -> set[str]:
    """The GPU uses outside ds01 already reported (slot uuid:pids), so each gets one event."""
    try:
        raw = json.loads((state_dir / STATE_SUBDIR / OUTSIDE_FILE).read_text())
    except (OSError, ValueError):
        return set()
    return {str(k) for k in raw} if isinstance(raw, list) else set()


def save_seen_outside(state_dir: Path, seen: set[str]) -> None:
    store = StateStore(state_dir)
    store._ensure_dir()
    _write_whole(store.dir / OUTSIDE_FILE, (json.dumps(sorted(seen)) + "\n").encode())


def _write_whole(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class StateStore:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / STATE_SUBDIR

    def _path(self, container_id: str) -> Path:
        if not _ID.fullmatch(container_id):
            raise ValueError(f"not a container id: {container_id!r}")
        return self.dir / f"{container_id}.json"

    def load(self, container_id: str) -> ContainerState:
        try:
            raw = json.loads(self._path(container_id).read_text())
            if isinstance(raw, dict):
                return ContainerState.from_dict(raw)
        except (OSError, ValueError, TypeError):
            pass
        return ContainerState(id=container_id)

    def load_all(self) -> dict[str, ContainerState]:
        out: dict[str, ContainerState] = {}
        if not self.dir.is_dir():
            return out
        for path in self.dir.glob("*.json"):
            if _ID.fullmatch(path.stem):
                out[path.stem] = self.load(path.stem)
        return out

    def save(self, record: ContainerState) -> None:
        self._ensure_dir()
        data = (json.dumps(asdict(record), indent=1, sort_keys=True) + "\n").encode()
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".json")
        try:
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            os.replace(tmp, self._path(record.id))
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def forget(self, container_id: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._path(container_id).unlink()

    def prune(self, keep: set[str]) -> list[str]:
        """Drop the records of containers that no longer exist (a stopped container keeps its record, and
        with it the time of its first start)."""
        gone = [cid for cid in self.load_all() if cid not in keep]
        for cid in gone:
            self.forget(cid)
        return gone

    def _ensure_dir(self) -> None:
        from ds01.events import ensure_private_dir

        ensure_private_dir(self.dir.parent)  # the state dir: ds01d's alone (0700)
        self.dir.mkdir(exist_ok=True, mode=0o700)
        st = os.lstat(self.dir)
        # the state decides what gets stopped: refuse a directory someone else could have planted
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            raise PermissionDenied(
                f"{self.dir} is not a directory owned by uid {os.geteuid()}",
                hint="remove it and let the reaper recreate it",
            )

    @contextlib.contextmanager
    def lock(self, timeout_s: float = 30.0) -> Iterator[None]:
        """One reaper at a time (a service and a timer must not both act on the same container)."""
        self._ensure_dir()
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            flock_within(
                fd,
                timeout_s,
                message=f"another reaper pass holds {self.dir / '.lock'}",
                hint="wait for it to finish, or stop the other reaper",
                poll_s=0.2,
            )
            yield
        finally:
            os.close(fd)
