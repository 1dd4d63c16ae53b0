"""One console script per command (`container-deploy`, `check-limits`, ...), each a one-command app."""

from __future__ import annotations

from ds01.cli.common import single_command


def check_limits() -> None:
    from ds01.cli.helpers import check_limits as fn

    single_command(fn, "check-limits")


def doctor() -> None:
    from ds01.cli.helpers import doctor as fn

    single_command(fn, "ds01-doctor")


def gpu_status() -> None:
    from ds01.cli.gpu import status as fn

    single_command(fn, "gpu-status")
