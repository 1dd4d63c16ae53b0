"""ds01d itself: version and health (anyone), for clients and `ds01 doctor`."""

from __future__ import annotations

import os
import stat
from typing import Any

from ds01 import __version__
from ds01.daemon.routes import Request, route


@route("GET", "/version")
def version(req: Request[Any]) -> dict[str, Any]:
    d = req.daemon
    try:
        mode = stat.S_IMODE(os.stat(d.socket_path).st_mode)
    except OSError:
        mode = None
    return {
        "version": __version__,
        "pid": d.pid,
        "euid": os.geteuid(),
        "socket": str(d.socket_path),
        "socket_mode": f"{mode:04o}" if mode is not None else None,
        "config": str(d.config_path),
        "config_error": d.config_error,
        "caller": {"uid": req.caller.uid, "user": req.caller.name, "admin": req.ctx.is_admin},
    }
