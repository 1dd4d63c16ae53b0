"""Endpoints: GPU status (anyone: who holds which slot is shared knowledge on a lab server)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ds01.daemon.routes import Request, route


@dataclass(frozen=True)
class GpusBody:
    free: bool = False


@route("GET", "/gpus", GpusBody)
def gpus(req: Request[GpusBody]) -> dict[str, Any]:
    from ds01.atomic.gpu_status import gpu_status

    return gpu_status(req.ctx.config, free_only=req.body.free, reader=req.ctx.gateway)
