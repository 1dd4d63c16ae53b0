"""Who is asking: the peer credentials of the socket (SO_PEERCRED), fixed at connect time.

Nothing the client sends (fields, headers, environment) changes who the caller is.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from ds01.identity import User, user_by_uid


@dataclass(frozen=True)
class Caller:
    pid: int
    uid: int
    gid: int
    user: User

    @property
    def name(self) -> str:
        return self.user.name


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def caller_of(sock: socket.socket) -> Caller:
    pid, uid, gid = peer_credentials(sock)
    return Caller(pid=pid, uid=uid, gid=gid, user=user_by_uid(uid))
