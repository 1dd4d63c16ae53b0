"""Warnings users actually see: on every terminal they have open, in `/workspace/.ds01-alerts`, and by
e-mail when `notify.smtp` is configured (to `notify.addresses[user]`, else `user@notify.domain`).

Terminals are the host pseudo-terminals the user owns plus the shells inside the container (found through
the container's processes). The alerts file is appended by a child process running as the user, with
O_NOFOLLOW: root never writes into a path the user controls.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ds01.lifecycle.decision import minutes

if TYPE_CHECKING:
    from ds01.config import NotifySettings

ALERTS_FILE = ".ds01-alerts"
KEEPALIVE_FILE = ".keep-alive"
PTS_DIR = Path("/dev/pts")
# Unix98 pseudo-terminal slaves use majors 136-143 (Documentation/admin-guide/devices.txt)
PTY_MAJORS = range(136, 144)
_PTS_TARGET = re.compile(r"^/dev/pts/\d+$")


@dataclass(frozen=True)
class Notice:
    severity: str  # WARNING, FINAL WARNING, STOPPED
    container: str
    lines: tuple[str, ...]

    def for_terminal(self) -> bytes:
        head = f"*** ds01 {self.severity}: container {self.container} ***"
        body = "\r\n".join((head, *self.lines))
        return ("\r\n" + body + "\r\n").encode()

    def for_file(self, now: datetime) -> bytes:
        stamp = now.strftime("%Y-%m-%d %H:%M UTC")
        body = "\n".join(f"  {line}" for line in self.lines)
        return f"[{stamp}] {self.severity}: container {self.container}\n{body}\n".encode()


@dataclass(frozen=True)
class Recipient:
    uid: int
    gid: int
    groups: tuple[int, ...]
    workspace: str | None  # host path of the container's /workspace
    container_pids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Delivery:
    terminals: int
    alerts_file: bool
    email: bool | None = None  # None: no mail relay configured (or no address for the user)

    def as_dict(self) -> dict[str, int | bool | None]:
        out: dict[str, int | bool | None] = {"terminals": self.terminals, "alerts_file": self.alerts_file}
        if self.email is not None:
            out["email"] = self.email
        return out


MAILED = ("WARNING", "FINAL WARNING", "STOPPED")  # idle and runtime warnings and stops


def deliver(notice: Notice, to: Recipient, now: datetime, settings: NotifySettings | None = None) -> Delivery:
    written = write_terminals(notice.for_terminal(), to)
    saved = bool(to.workspace) and append_as_user(
        Path(str(to.workspace)) / ALERTS_FILE, notice.for_file(now), to
    )
    mailed = None
    if settings is not None and settings.smtp is not None and notice.severity in MAILED:
        mailed = send_mail(notice, to, now, settings)
    return Delivery(written, saved, mailed)


# -- e-mail ------------------------------------------------------------------------------------------------
def _username(uid: int) -> str | None:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def mail_message(notice: Notice, user: str, address: str, now: datetime, sender: str) -> Any:
    from email.message import EmailMessage
    from email.utils import format_datetime, make_msgid

    msg = EmailMessage()
    msg["Subject"] = f"ds01 {notice.severity}: container {notice.container}"
    msg["From"] = sender
    msg["To"] = address
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain="ds01")
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    body = [f"Hello {user},", "", *notice.lines, "", f"Sent by ds01 at {now.strftime('%Y-%m-%d %H:%M UTC')}."]
    msg.set_content("\n".join(body) + "\n")
    return msg


def send_mail(notice: Notice, to: Recipient, now: datetime, settings: NotifySettings) -> bool:
    """One message through `notify.smtp`; False (never an exception) when it could not be handed over."""
    import logging
    import smtplib

    user = _username(to.uid)
    address = settings.address_for(user) if user else None
    if not address or settings.smtp is None or user is None:
        return False
    host, port = settings.smtp
    try:
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            if settings.starttls:
                smtp.starttls()
            smtp.send_message(mail_message(notice, user, address, now, settings.sender))
        return True
    except (OSError, smtplib.SMTPException) as exc:
        logging.getLogger("ds01d").warning("notice e-mail to %s failed: %s", address, exc)
        return False


# -- terminals -------------------------------------------------------------------------------------------
def user_terminals(uid: int, pts_dir: Path = PTS_DIR) -> list[Path]:
    out = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(pts_dir):
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISCHR(st.st_mode) and st.st_uid == uid:
                    out.append(Path(entry.path))
    return out


def container_terminals(pids: Iterable[int]) -> list[Path]:
    """The terminals of a container's shells, as `/proc/PID/fd/N` (its pts lives in its own devpts)."""
    out = []
    for pid in pids:
        for fd in (0, 1, 2):
            link = Path(f"/proc/{pid}/fd/{fd}")
            with contextlib.suppress(OSError):
                if _PTS_TARGET.match(os.readlink(link)):
                    out.append(link)
    return out


def _write_pty(path: Path, data: bytes, owner: int | None, seen: set[tuple[int, int]]) -> bool:
    # /proc/PID/fd links must be followed to reach the pty; the fstat check below is what keeps this safe
    follow = str(path).startswith("/proc/")
    flags = os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        if (
            not stat.S_ISCHR(st.st_mode)
            or os.major(st.st_rdev) not in PTY_MAJORS
            or key in seen
            or (owner is not None and st.st_uid != owner)
        ):
            return False
        seen.add(key)
        os.write(fd, data)  # non-blocking: a stuck terminal loses the notice instead of stalling the reaper
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def write_terminals(data: bytes, to: Recipient) -> int:
    seen: set[tuple[int, int]] = set()
    count = sum(_write_pty(p, data, to.uid, seen) for p in user_terminals(to.uid))
    count += sum(_write_pty(p, data, None, seen) for p in container_terminals(to.container_pids))
    return count


# -- files in the workspace ---------------------------------------------------------------------------------
def _append(path: Path, data: bytes) -> bool:
    flags = (
        os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC
    )
    fd = os.open(path, flags, 0o644)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        os.write(fd, data)
        return True
    finally:
        os.close(fd)


def append_as_user(path: Path, data: bytes, to: Recipient) -> bool:
    """Append `data` to `path` with the user's own rights; never through a symlink."""
    if os.geteuid() != 0:
        if os.geteuid() != to.uid:
            return False
        try:
            return _append(path, data)
        except OSError:
            return False
    pid = os.fork()
    if pid == 0:  # the child only makes system calls, then leaves without running any Python cleanup
        code = 1
        try:
            os.setgroups(list(to.groups))
            os.setgid(to.gid)
            os.setuid(to.uid)
            code = 0 if _append(path, data) else 1
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def keepalive_mtime(workspace: str | None) -> float | None:
    """The keep-alive file's modification time (a regular file, not a link), or None."""
    if not workspace:
        return None
    try:
        st = os.lstat(Path(workspace) / KEEPALIVE_FILE)
    except OSError:
        return None
    return st.st_mtime if stat.S_ISREG(st.st_mode) else None


# -- what the notices say ---------------------------------------------------------------------------------
def _left(values: dict[str, Any], used: str, limit: str) -> float:
    return max(0.0, float(values.get(limit) or 0) - float(values.get(used) or 0))


def idle_warning(name: str, level: int, values: dict[str, Any], keepalive_h: float) -> Notice:
    idle, left = float(values.get("idle_s") or 0), _left(values, "idle_s", "idle_timeout_s")
    when = f"in about {minutes(left)}" if left > 0 else "at the next check"
    first = (
        f"Idle for {minutes(idle)} (GPU, CPU and processes unused): it will be stopped and removed {when}."
    )
    if values.get("high_demand"):
        first += " Idle limits are shorter while GPUs are in high demand."
    lines = (
        first,
        *(("SAVE YOUR WORK NOW.",) if level >= 95 else ()),
        "Your workspace stays; the GPU goes back to the pool.",
        f"To keep it: start work in it, or `touch /workspace/.keep-alive` (honoured for {keepalive_h:g} h).",
        f"Finished? Save your work and run `container-retire {name}`.",
    )
    return Notice("FINAL WARNING" if level >= 95 else "WARNING", name, lines)


def idle_stopped(name: str, values: dict[str, Any]) -> Notice:
    idle = float(values.get("idle_s") or 0)
    return Notice(
        "STOPPED",
        name,
        (
            f"Stopped and removed after {minutes(idle)} idle; its GPU is free again.",
            "Your workspace is intact.",
            f"Start again with `container-deploy {name}`.",
        ),
    )


def runtime_warning(name: str, level: int, values: dict[str, Any]) -> Notice:
    ran, left = float(values.get("runtime_s") or 0), _left(values, "runtime_s", "max_runtime_s")
    when = f"in about {minutes(left)}" if left > 0 else "at the next check"
    return Notice(
        "FINAL WARNING" if level >= 90 else "WARNING",
        name,
        (
            f"Running for {minutes(ran)}: it reaches its maximum runtime and will be stopped {when}.",
            "Save a checkpoint now; the container is stopped, not removed, and your workspace stays.",
        ),
    )


def runtime_stopped(name: str, values: dict[str, Any]) -> Notice:
    ran = float(values.get("runtime_s") or 0)
    return Notice(
        "STOPPED",
        name,
        (
            f"Stopped after {minutes(ran)}: its maximum runtime.",
            f"It is kept for a while (see check-limits); `container-start {name}` runs it again.",
        ),
    )


def cleaned_up(name: str, reason: str) -> Notice:
    return Notice("NOTICE", name, (f"Removed: {reason}.", "Your workspace is intact."))
