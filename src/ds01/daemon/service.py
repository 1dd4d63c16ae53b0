"""The state ds01d keeps warm between requests: the config (re-read when it changes on disk, the last good
one kept when an edit is broken), the engine gateway, and the exec sessions it handed out."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ds01.config import Config, load_config
from ds01.errors import ConfigError

if TYPE_CHECKING:
    from ds01.docker_gateway import Gateway

log = logging.getLogger("ds01d")


def _fingerprint(path: Path) -> tuple[tuple[str, int, int], ...]:
    """mtime and size of the config and of the members files beside it."""
    paths = [path]
    groups = path.parent / "groups"
    if groups.is_dir():
        paths += sorted(groups.glob("*.members"))
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            out.append((str(p), -1, -1))
            continue
        out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


@dataclass
class ExecSession:
    exec_id: str
    uid: int
    container_id: str
    created: float = field(default_factory=time.monotonic)


class Daemon:
    def __init__(self, config_path: Path, socket_path: Path) -> None:
        self.config_path = config_path
        self.socket_path = socket_path
        self._lock = threading.Lock()
        self._config = load_config(config_path)  # a broken config at start is fatal (exit 2)
        for notice in self._config.notices:
            log.warning("config: %s", notice)
        self._seen = _fingerprint(config_path)
        self.config_error: str | None = None
        self.started = time.time()
        self.execs: dict[str, ExecSession] = {}
        self.stopping = threading.Event()
        self._gateway: Gateway | None = None

    @property
    def config(self) -> Config:
        """The config in force: re-read when the file (or a members file) changed since the last look."""
        seen = _fingerprint(self.config_path)
        if seen != self._seen:
            with self._lock:
                if seen != self._seen:
                    self._seen = seen
                    try:
                        self._config = load_config(self.config_path)
                        for notice in self._config.notices:
                            log.warning("config: %s", notice)
                        self.config_error = None
                        log.info("config reloaded from %s", self.config_path)
                    except ConfigError as err:
                        self.config_error = str(err)
                        log.error("config edit rejected, keeping the last good one: %s", err)
        return self._config

    def gateway(self) -> Gateway:
        """One gateway for every request, made on first use (the engine may come up after ds01d)."""
        if self._gateway is None:
            from ds01.docker_gateway import connect

            with self._lock:
                if self._gateway is None:
                    self._gateway = connect()
        return self._gateway

    def remember_exec(self, session: ExecSession) -> None:
        with self._lock:
            cutoff = time.monotonic() - 7 * 24 * 3600
            for key in [k for k, s in self.execs.items() if s.created < cutoff]:
                del self.execs[key]
            self.execs[session.exec_id] = session

    def exec_session(self, exec_id: str, uid: int) -> ExecSession | None:
        s = self.execs.get(exec_id)
        return s if s is not None and s.uid == uid else None

    @property
    def pid(self) -> int:
        return os.getpid()
