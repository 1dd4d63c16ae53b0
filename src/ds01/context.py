"""What every operation inside ds01d needs: the config, the caller, their limits, output and the engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ds01.config import Config, load_config
from ds01.errors import PermissionDenied
from ds01.events import log_event
from ds01.identity import User, acting_user, lookup_user, uid_min
from ds01.limits import ResolvedLimits, resolve_limits
from ds01.output import Output

if TYPE_CHECKING:
    from ds01.docker_gateway import Gateway


# nobody / the overflow ids (Debian policy 9.2.2): accounts no lab member has, above UID_MIN all the same
NOBODY_UIDS = frozenset({65534, 65535, 2**32 - 2, 2**32 - 1})


@dataclass
class Context:
    config: Config
    user: User
    out: Output = field(default_factory=Output)
    _gateway: Gateway | None = None
    gateway_factory: Callable[[], Gateway] | None = None  # ds01d's warm, shared gateway

    @classmethod
    def load(cls, *, json_mode: bool = False) -> Context:
        return cls(config=load_config(), user=acting_user(), out=Output(json_mode=json_mode))

    @cached_property
    def limits(self) -> ResolvedLimits:
        return resolve_limits(self.config, self.user)

    @property
    def is_admin(self) -> bool:
        return self.limits.admin

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            if self.gateway_factory is not None:
                self._gateway = self.gateway_factory()
            else:
                from ds01.docker_gateway import connect

                self._gateway = connect()
        return self._gateway

    def limits_for(self, user: User) -> ResolvedLimits:
        return self.limits if user.uid == self.user.uid else resolve_limits(self.config, user)

    def target_user(self, name: str | None) -> User:
        """The user a command acts for: the caller, or with `--user NAME` (admins only) someone else."""
        if not name:
            return self.user
        target = lookup_user(name)
        if target.uid == 0 or target.uid < uid_min() or target.uid in NOBODY_UIDS:
            raise PermissionDenied(
                f"--user may not name root or a system account ({target.name}, uid {target.uid})",
                hint="name a lab member's account",
            )
        if target.uid == self.user.uid:
            return self.user
        if not self.is_admin:
            raise PermissionDenied(
                f"only admins may act for another user ({name})",
                hint="drop --user to act on your own resources",
            )
        return target

    def log(
        self, event_type: str, container: str | None = None, *, user: str | None = None, **details: Any
    ) -> None:
        log_event(
            self.config.paths.log_dir, event_type, user=user or self.user.name, container=container, **details
        )
