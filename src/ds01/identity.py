"""Who is acting (CONTRACT §1): the real uid, or SUDO_UID when running as root."""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from ds01.errors import NotFound
from ds01.naming import sanitise_username


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: Path
    unix_groups: tuple[str, ...] = ()
    via_sudo: bool = False

    @property
    def safe_name(self) -> str:
        return sanitise_username(self.name)

    @property
    def is_root(self) -> bool:
        return self.uid == 0


def _unix_groups(name: str, gid: int) -> tuple[str, ...]:
    try:
        gids = os.getgrouplist(name, gid)
    except OSError:
        gids = [gid]
    names = []
    for g in gids:
        try:
            names.append(grp.getgrgid(g).gr_name)
        except KeyError:
            continue
    return tuple(names)


def _from_pwd(entry: pwd.struct_passwd, *, via_sudo: bool = False) -> User:
    return User(
        name=entry.pw_name,
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        home=Path(entry.pw_dir),
        unix_groups=_unix_groups(entry.pw_name, entry.pw_gid),
        via_sudo=via_sudo,
    )


def acting_uid() -> tuple[int, bool]:
    """The uid ds01 acts for; SUDO_UID counts only when the process really is root."""
    uid = os.getuid()
    sudo_uid = os.environ.get("SUDO_UID", "")
    if uid == 0 and sudo_uid.isdigit():
        return int(sudo_uid), True
    return uid, False


def acting_user() -> User:
    uid, via_sudo = acting_uid()
    try:
        return _from_pwd(pwd.getpwuid(uid), via_sudo=via_sudo)
    except KeyError:
        return User(name=str(uid), uid=uid, gid=uid, home=Path("/nonexistent"), via_sudo=via_sudo)


def lookup_user(name: str) -> User:
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except KeyError:
        raise NotFound(
            f"no Unix user named {name!r}", hint="check the spelling with `getent passwd`"
        ) from None
    return _from_pwd(entry)


def running_as_root() -> bool:
    return os.geteuid() == 0
