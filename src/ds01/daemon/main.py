"""`ds01d`: the privileged service (CONTRACT §1, §4). Runs in the foreground; SIGTERM stops it cleanly and
containers keep running. `ds01d --check-config [FILE]` validates a config and exits 0 or 2."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ds01 import __version__, protocol
from ds01.errors import ConfigError, Ds01Error, ExitCode

if TYPE_CHECKING:
    from ds01.daemon.service import Daemon

log = logging.getLogger("ds01d")


def _config_path(arg: str | None) -> Path:
    from ds01.config import config_path

    return Path(arg) if arg else config_path()


def check_config(path: Path) -> int:
    from ds01.config import load_config

    try:
        cfg = load_config(path)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return int(ExitCode.USAGE)
    for notice in getattr(cfg, "notices", ()):
        print(f"notice: {notice}", file=sys.stderr)
    print(f"{path}: OK")
    return 0


def _notify_systemd(state: str) -> None:
    """sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET, when systemd gave one."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    import socket

    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(state.encode(), addr)


def _reconcile(daemon: Daemon) -> None:
    """Finish or undo the operations a previous ds01d was killed in (daemon/reconcile.py)."""
    from ds01.context import Context
    from ds01.daemon.reconcile import run_on_start, start_retry_thread
    from ds01.identity import user_by_uid

    def context() -> Context:
        return Context(config=daemon.config, user=user_by_uid(0), gateway_factory=daemon.gateway)

    run_on_start(context())
    start_retry_thread(context, daemon.stopping)
    from ds01.daemon.endpoints.run_once import start_settling

    start_settling(daemon)  # one-shot runs (container-run --rm) whose client is gone are removed


def _restore_relays(daemon: Daemon) -> None:
    """The port and Jupyter relays a previous ds01d ran, opened again in the background."""

    def run() -> None:
        from ds01.atomic import access

        try:
            access.RELAYS.restore(daemon.gateway, daemon.config.paths)
        except Exception:  # the engine may be away; the first access request tries again
            log.warning("restoring port relays failed", exc_info=True)

    threading.Thread(target=run, name="relays", daemon=True).start()


def serve(config: Path, socket_path: Path, *, pidfile: Path | None, reaper: bool) -> int:
    from ds01.daemon.routes import load_endpoints
    from ds01.daemon.server import Server
    from ds01.daemon.service import Daemon

    if os.geteuid() != 0 and not os.environ.get("DS01D_ALLOW_NONROOT"):
        print("error: ds01d must run as root (it alone talks to the Docker engine)", file=sys.stderr)
        return int(ExitCode.PERMISSION)
    try:
        daemon = Daemon(config, socket_path)
    except Ds01Error as err:
        print(f"error: {err}", file=sys.stderr)
        return int(err.exit_code)
    load_endpoints()
    _reconcile(daemon)  # before the socket exists: no request sees half-done work
    server = Server(daemon, socket_path)
    _restore_relays(daemon)
    if pidfile:
        pidfile.write_text(f"{os.getpid()}\n")

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        daemon.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if reaper:
        from ds01.daemon.loop import start_lifecycle_loop

        start_lifecycle_loop(daemon)
    from ds01.daemon.metrics import start_metrics

    start_metrics(daemon)  # /metrics on monitoring.listen (followed when the config changes)
    from ds01.daemon.endpoints.observability import start_greeting_cache

    start_greeting_cache(daemon)  # <run_dir>/users/<uid>/greeting, for the login greeting
    from ds01.daemon.queue import start_queue

    start_queue(daemon)  # the wait for GPUs: detached requests left waiting come back
    log.info("ds01d %s listening on %s (config %s)", __version__, socket_path, config)
    _notify_systemd("READY=1")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        nvml = sys.modules.get("ds01.gpu.nvml")
        if nvml is not None:
            nvml.shutdown()
        with contextlib.suppress(OSError):
            socket_path.unlink()
        if pidfile:
            with contextlib.suppress(OSError):
                pidfile.unlink()
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ds01d", description=__doc__)
    parser.add_argument("--config", help="the config file (default: $DS01_CONFIG, /etc/ds01/..., shipped)")
    parser.add_argument(
        "--socket", help=f"the socket to listen on (default: paths.socket, {protocol.DEFAULT_SOCKET})"
    )
    parser.add_argument(
        "--check-config", nargs="?", const="", metavar="FILE", help="validate and exit 0 or 2"
    )
    parser.add_argument("--pidfile", help="write the pid here while running")
    parser.add_argument("--no-reaper", action="store_true", help="do not run the lifecycle loop (tests)")
    parser.add_argument("--log-level", default=os.environ.get("DS01D_LOG_LEVEL", "INFO"))
    parser.add_argument("--version", action="version", version=f"ds01d {__version__}")
    args = parser.parse_args(argv)
    if args.check_config is not None:
        sys.exit(check_config(_config_path(args.check_config or args.config)))
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    config = _config_path(args.config)
    sock = args.socket
    if not sock:
        from ds01.config import load_config

        try:
            sock = str(load_config(config).paths.socket)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(int(ExitCode.USAGE))
    sys.exit(
        serve(
            config,
            Path(sock),
            pidfile=Path(args.pidfile) if args.pidfile else None,
            reaper=not args.no_reaper,
        )
    )


if __name__ == "__main__":
    main()
