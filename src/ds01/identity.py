"""Unix accounts: the caller's (from ds01d's peer credentials, or the client's own uid) and `--user` targets.

No environment variable (SUDO_UID included) ever changes who is acting (CONTRACT §1)."""

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


def _from_pwd(entry: pwd.struct_passwd) -> User:
    return User(
        name=entry.pw_name,
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        home=Path(entry.pw_dir),
        unix_groups=_unix_groups(entry.pw_name, entry.pw_gid),
    )


def user_by_uid(uid: int) -> User:
    try:
        return _from_pwd(pwd.getpwuid(uid))
    except KeyError:
        return User(name=str(uid), uid=uid, gid=uid, home=Path("/nonexistent"))


def acting_user() -> User:
    """The account this process runs as (a client's own user)."""
    return user_by_uid(os.getuid())


def lookup_user(name: str) -> User:
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except KeyError:
        raise NotFound(
            f"no Unix user named {name!r}", hint="check the spelling with `getent passwd`"
        ) from None
    return _from_pwd(entry)


def uid_min() -> int:
    """`UID_MIN` of /etc/login.defs (1000 when unset): below it are system accounts."""
    try:
        with open("/etc/login.defs") as defs:
            for raw in defs:
                parts = raw.split()
                if len(parts) >= 2 and parts[0] == "UID_MIN" and parts[1].isdigit():
                    return int(parts[1])
    except OSError:
        pass
    return 1000
