"""Workspace and --data checks are made for the owner's uid from the mode bits, not for root."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from ds01.atomic.host_paths import check_data_dir, create_dirs, may, resolve_workspace
from ds01.errors import NotFound, PermissionDenied, UsageError
from ds01.identity import User

ME = os.getuid()


def stranger() -> User:
    return User(name="nobody-here", uid=ME + 4242, gid=ME + 4242, home=Path("/nonexistent"))


def me() -> User:
    return User(name="me", uid=ME, gid=os.getgid(), home=Path.home())


def test_may_follows_owner_then_group_then_other_bits(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    f.chmod(0o604)
    u = stranger()
    assert may(u, f.stat(), 4) and not may(u, f.stat(), 2)
    f.chmod(0o640)
    assert not may(u, f.stat(), 4)
    assert may(u, f.stat(), 4, {f.stat().st_gid})  # a member of the file's group
    f.chmod(0o044)  # the owner class decides even when others could read
    owner = User("o", ME + 4243, 0, Path("/"))
    st = os.stat_result((f.stat().st_mode, 0, 0, 1, ME + 4243, 0, 0, 0, 0, 0))
    assert not may(owner, st, 4)
    root = User("root", 0, 0, Path("/root"))
    assert may(root, st, 7)


@pytest.fixture
def open_tmp():
    """A directory everyone may enter (pytest's own tmp is closed to other users)."""
    d = Path(tempfile.mkdtemp(prefix="ds01p-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_data_dir_readable_by_others_is_accepted(open_tmp):
    d = open_tmp / "data"
    d.mkdir()
    d.chmod(0o755)
    assert check_data_dir(stranger(), d) == d.resolve()


def test_data_dir_closed_to_the_user_is_refused_with_5(open_tmp):
    d = open_tmp / "secret"
    d.mkdir(mode=0o700)
    with pytest.raises(PermissionDenied):
        check_data_dir(stranger(), d)


def test_data_under_a_closed_directory_is_refused_before_saying_whether_it_exists(tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(PermissionDenied):
        check_data_dir(stranger(), closed / "does-not-exist")


def test_data_missing_or_a_file(tmp_path):
    tmp_path.chmod(0o755)
    with pytest.raises(NotFound):
        check_data_dir(me(), tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError):
        check_data_dir(me(), tmp_path / "file")


def test_an_existing_workspace_must_be_the_users(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    assert resolve_workspace(me(), ws, root=None) == (ws.resolve(), [])
    with pytest.raises(PermissionDenied):
        resolve_workspace(stranger(), ws, root=None)


def test_a_symlink_to_someone_elses_directory_is_refused(tmp_path):
    target = tmp_path / "theirs"
    target.mkdir()
    link = tmp_path / "mine"
    link.symlink_to(target)
    with pytest.raises(PermissionDenied):
        resolve_workspace(stranger(), link, root=None)


def test_missing_workspace_is_created_under_the_users_own_directory(tmp_path):
    path, missing = resolve_workspace(me(), tmp_path / "root" / "thesis", root=None)
    assert missing == [tmp_path / "root", tmp_path / "root" / "thesis"]
    create_dirs(me(), missing)
    assert path.is_dir() and path.stat().st_uid == ME


def test_missing_workspace_elsewhere_is_refused_unless_under_the_configured_roots_parent(open_tmp):
    root_of_theirs = open_tmp / "ws" / "nobody-here"
    with pytest.raises(PermissionDenied):
        resolve_workspace(stranger(), open_tmp / "elsewhere" / "thesis", root=None)
    (open_tmp / "ws").mkdir()
    _, missing = resolve_workspace(stranger(), root_of_theirs / "thesis", root=root_of_theirs)
    assert missing == [root_of_theirs, root_of_theirs / "thesis"]
