"""The reaper's memory between passes, and how notices reach terminals and the alerts file."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ds01.errors import LockTimeout
from ds01.lifecycle import notify
from ds01.lifecycle.state import ContainerState, StateStore

CID = "c" * 64


def test_state_survives_a_new_store_and_is_written_whole(tmp_path):
    store = StateStore(tmp_path)
    record = ContainerState(
        id=CID,
        name="p._.1001",
        started_at="2026-11-23T09:00:00Z",
        idle_streak=2,
        last_activity="2026-11-23T09:31:00Z",
        idle_warned=[80],
    )
    store.save(record)
    again = StateStore(tmp_path).load(CID)
    assert again == record
    assert [p.name for p in (tmp_path / "reaper").iterdir()] == [f"{CID}.json"], "no temp file left behind"
    store.prune(keep=set())
    assert StateStore(tmp_path).load(CID) == ContainerState(id=CID)


def test_a_damaged_state_file_reads_as_a_fresh_record(tmp_path):
    (tmp_path / "reaper").mkdir()
    (tmp_path / "reaper" / f"{CID}.json").write_text('{"id": "' + CID + '", "idle_str')
    assert StateStore(tmp_path).load(CID) == ContainerState(id=CID)
    with pytest.raises(ValueError):
        StateStore(tmp_path).save(ContainerState(id="../../etc/passwd"))


def test_a_restarted_container_starts_a_fresh_idle_record_but_keeps_its_runtime_clock():
    record = ContainerState(
        id=CID,
        started_at="old",
        idle_streak=5,
        idle_warned=[80, 95],
        runtime_warned=[75],
        first_started_at="first",
    )
    record.reset("new")
    assert (record.idle_streak, record.idle_warned, record.started_at) == (0, [], "new")
    assert (record.runtime_warned, record.first_started_at) == ([75], "first")


def test_only_one_reaper_holds_the_lock(tmp_path):
    store = StateStore(tmp_path)
    with store.lock(), pytest.raises(LockTimeout), StateStore(tmp_path).lock(timeout_s=0.3):
        pass


def _pty_owned_by(uid: int) -> tuple[int, Path]:
    master, slave = os.openpty()
    path = Path(os.ttyname(slave))
    os.close(slave)
    os.chown(path, uid, -1) if os.geteuid() == 0 else None
    os.set_blocking(master, False)
    return master, path


def test_a_notice_reaches_the_users_terminals_and_no_one_elses():
    me = os.geteuid()
    master, path = _pty_owned_by(me)
    slave = os.open(path, os.O_RDWR | os.O_NOCTTY)  # a pty with no open slave gives EIO on the master
    try:
        to = notify.Recipient(me, os.getegid(), (), None)
        assert path in notify.user_terminals(me)
        notice = notify.Notice("WARNING", "thesis", ("Idle for 24 min.",))
        assert notify.write_terminals(notice.for_terminal(), to) >= 1
        assert b"ds01 WARNING: container thesis" in os.read(master, 65536)
        other = notify.Recipient(me + 1, me + 1, (), None)
        notify.write_terminals(b"not for you", other)
        with pytest.raises(BlockingIOError):
            os.read(master, 65536)
    finally:
        os.close(slave)
        os.close(master)


def test_the_alerts_file_is_appended_but_never_through_a_symlink():
    tmp_path = Path(tempfile.mkdtemp(prefix="ds01u-", dir="/tmp"))  # pytest's own tmp is closed to others
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:  # as root the write happens as the owner: use an unprivileged account
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
    tmp_path.chmod(0o755)
    ws = tmp_path / "ws"
    ws.mkdir()
    os.chown(ws, uid, gid) if os.geteuid() == 0 else None
    to = notify.Recipient(uid, gid, (gid,), str(ws))
    now = datetime(2026, 11, 23, 14, 5, tzinfo=UTC)
    delivered = notify.deliver(notify.Notice("WARNING", "thesis", ("line one",)), to, now)
    assert delivered.alerts_file
    alerts = ws / notify.ALERTS_FILE
    assert alerts.read_text() == "[2026-11-23 14:05 UTC] WARNING: container thesis\n  line one\n"
    assert alerts.stat().st_uid == uid
    target = tmp_path / "target"
    target.write_text("")
    alerts.unlink()
    alerts.symlink_to(target)
    assert not notify.deliver(notify.Notice("WARNING", "thesis", ("x",)), to, now).alerts_file
    assert target.read_text() == ""
    shutil.rmtree(tmp_path)


def test_the_alerts_file_is_written_with_the_users_rights_only():
    if os.geteuid() != 0:
        to = notify.Recipient(os.geteuid() + 1, os.getegid(), (), "/tmp")
        assert notify.append_as_user(Path("/tmp/ds01-never"), b"x", to) is False
        return
    nobody = pwd.getpwnam("nobody")
    to = notify.Recipient(nobody.pw_uid, nobody.pw_gid, (), "/root")
    assert notify.append_as_user(Path("/root/.ds01-alerts-test"), b"x", to) is False
    assert not Path("/root/.ds01-alerts-test").exists()


def test_keep_alive_must_be_a_regular_file(tmp_path):
    assert notify.keepalive_mtime(str(tmp_path)) is None
    (tmp_path / ".keep-alive").symlink_to("/etc/hostname")
    assert notify.keepalive_mtime(str(tmp_path)) is None
    (tmp_path / ".keep-alive").unlink()
    (tmp_path / ".keep-alive").touch()
    assert notify.keepalive_mtime(str(tmp_path)) == pytest.approx((tmp_path / ".keep-alive").stat().st_mtime)
