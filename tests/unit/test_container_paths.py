"""Mount sources are judged lexically inside the allowed roots, then opened without following any link; the
owner's rights come from the mode bits (ds01d is root)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from ds01.atomic.host_paths import (
    check_data_dir,
    check_mounts,
    check_workspace,
    clean_path,
    ensure_workspace,
    may,
    workspace_path,
)
from ds01.config import PathSettings
from ds01.errors import InvalidName, NotFound, PermissionDenied, UsageError
from ds01.identity import User

ME = os.getuid()
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="ds01d's checks run as root")


def stranger() -> User:
    return User(name="nobody-here", uid=ME + 4242, gid=ME + 4242, home=Path("/nonexistent"))


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
def world():
    """A workspace root and a data root in a folder everyone may enter (pytest's own tmp is closed)."""
    d = Path(tempfile.mkdtemp(prefix="ds01p-", dir="/tmp"))
    d.chmod(0o755)
    (d / "ws").mkdir(mode=0o755)
    (d / "data").mkdir(mode=0o755)
    yield d, PathSettings(workspace_root=d / "ws", data_roots=(d / "data",))
    shutil.rmtree(d, ignore_errors=True)


def test_paths_are_absolute_and_never_climb():
    assert clean_path("/a//b/./c/", "--data") == Path("/a/b/c")
    for bad in ("a/b", "/a/../b", "/..", ""):
        with pytest.raises(UsageError):
            clean_path(bad, "--data")


def test_workspace_is_a_project_name_or_a_folder_directly_in_the_users_root(world):
    d, paths = world
    u = stranger()
    root = d / "ws" / u.name
    assert workspace_path(paths, u, None, "thesis") == root / "thesis"
    assert workspace_path(paths, u, "Other", "thesis") == root / "other"
    assert workspace_path(paths, u, f"{root}/shared/", "thesis") == root / "shared"
    for refused in (f"{root}/a/b", str(root), "/etc", f"{d}/ws/someone/x", "/tmp"):
        with pytest.raises(PermissionDenied):
            workspace_path(paths, u, refused, "thesis")
    with pytest.raises(InvalidName):
        workspace_path(paths, u, "a._.b", "thesis")


@as_root
def test_ensure_workspace_makes_a_root_owned_user_folder_and_an_owned_project(world):
    d, paths = world
    u = stranger()
    path, created = ensure_workspace(paths, u, "thesis")
    assert created and path == d / "ws" / u.name / "thesis"
    top = (d / "ws" / u.name).stat()
    assert top.st_uid == 0 and top.st_mode & 0o777 == 0o755
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (u.uid, u.gid, 0o750)
    assert ensure_workspace(paths, u, "thesis") == (path, False)
    check_workspace(paths, u, path)


@as_root
def test_a_link_or_someone_elses_folder_in_place_of_the_project_is_refused(world):
    d, paths = world
    u = stranger()
    ensure_workspace(paths, u, "real")
    target = d / "elsewhere"
    target.mkdir()
    (d / "ws" / u.name / "linked").symlink_to(target)
    (d / "ws" / u.name / "foreign").mkdir()
    for name in ("linked", "foreign"):
        with pytest.raises(PermissionDenied):
            ensure_workspace(paths, u, name)
        with pytest.raises(PermissionDenied):
            check_workspace(paths, u, d / "ws" / u.name / name)
    assert list(target.iterdir()) == [] and target.stat().st_uid == 0
    with pytest.raises(NotFound):
        check_workspace(paths, u, d / "ws" / u.name / "gone")


@as_root
def test_a_user_folder_that_is_a_link_or_writable_by_the_user_is_refused(world):
    d, paths = world
    u = stranger()
    (d / "ws" / u.name).symlink_to(d / "data")
    with pytest.raises(PermissionDenied):
        ensure_workspace(paths, u, "thesis")
    assert not (d / "data" / "thesis").exists()
    (d / "ws" / u.name).unlink()
    (d / "ws" / u.name).mkdir(mode=0o777)
    (d / "ws" / u.name).chmod(0o777)
    with pytest.raises(PermissionDenied):
        ensure_workspace(paths, u, "thesis")


@as_root
def test_data_inside_a_root_readable_by_the_user(world):
    d, paths = world
    u = stranger()
    (d / "data" / "public").mkdir(mode=0o755)
    assert check_data_dir(paths, u, f"{d}/data/public") == d / "data" / "public"
    (d / "data" / "secret").mkdir(mode=0o700)
    with pytest.raises(PermissionDenied):
        check_data_dir(paths, u, f"{d}/data/secret")
    # a closed folder: refused before saying whether something is in it
    for inner in ("exists", "does-not-exist"):
        (d / "data" / "secret" / "exists").mkdir(exist_ok=True)
        with pytest.raises(PermissionDenied):
            check_data_dir(paths, u, f"{d}/data/secret/{inner}")
    with pytest.raises(NotFound):
        check_data_dir(paths, u, f"{d}/data/public/nope")


@as_root
def test_data_through_a_link_or_at_a_file_is_refused(world):
    d, paths = world
    u = stranger()
    (d / "data" / "link").symlink_to(d / "data")
    (d / "data" / "file").write_text("x")
    for p in ("link", "file", "link/link"):
        with pytest.raises(PermissionDenied):
            check_data_dir(paths, u, f"{d}/data/{p}")


@as_root
def test_data_outside_the_roots_gets_one_answer_whether_it_exists_or_not(world):
    d, paths = world
    u = stranger()
    answers = set()
    for p in ("/root", "/root/nonexistent-ds01", str(d / "ws"), f"{d}/ws/{u.name}", "/etc/shadow"):
        with pytest.raises(PermissionDenied) as err:
            check_data_dir(paths, u, p)
        answers.add(err.value.message.replace(p, "P"))
    assert len(answers) == 1


@as_root
def test_data_in_the_owners_own_workspace(world):
    _, paths = world
    u = stranger()
    ws, _ = ensure_workspace(paths, u, "thesis")
    (ws / "sets").mkdir()
    os.chown(ws / "sets", u.uid, u.gid)
    assert check_data_dir(paths, u, f"{ws}/sets") == ws / "sets"
    other = User(name="someone-else", uid=ME + 4300, gid=ME + 4300, home=Path("/nonexistent"))
    with pytest.raises(PermissionDenied):
        check_data_dir(paths, other, f"{ws}/sets")


@as_root
def test_check_mounts_refuses_binds_and_other_targets(world):
    _, paths = world
    u = stranger()
    ws, _ = ensure_workspace(paths, u, "thesis")
    good = {"Type": "bind", "Source": str(ws), "Target": "/workspace"}
    check_mounts(paths, u, {"HostConfig": {"Mounts": [good]}})
    for hc in (
        {"Binds": [f"{ws}:/workspace:rw"]},
        {"Mounts": [good, {"Type": "bind", "Source": "/", "Target": "/host"}]},
        {"Mounts": [{"Type": "volume", "Source": "v", "Target": "/workspace"}]},
        {"Mounts": [{"Type": "bind", "Source": "/etc", "Target": "/workspace"}]},
    ):
        with pytest.raises(PermissionDenied):
            check_mounts(paths, u, {"HostConfig": hc})


@pytest.mark.parametrize(
    "ref",
    ["busybox", "ds01-1001/thesis:latest", "localhost:5000/a/b:v1", "registry.lab.example/x/y",
     "abc123def456", "sha256:" + "a" * 64, "x@sha256:" + "b" * 64, "my_repo/a__b-c.d:T_1.0"],
)  # fmt: skip
def test_valid_image_references(ref):
    from ds01.atomic.container_create import check_image_reference

    assert check_image_reference(ref) == ref


@pytest.mark.parametrize(
    "ref",
    ["../../x", "UPPER/case", "a b", "x:", "@sha256:00", "/abs", "a//b", "x:" + "t" * 200, "a/-b", "x@md5:1"],
)
def test_invalid_image_references_are_usage_errors(ref):
    from ds01.atomic.container_create import check_image_reference

    with pytest.raises(UsageError):
        check_image_reference(ref)


def test_gpueq_labels_parse_strictly_and_corrupt_ones_are_named():
    from ds01.atomic.holdings import corruption, parse_gpueq

    assert [parse_gpueq(v) for v in ("0", "1.5", "0.4286")] == [0.0, 1.5, 0.4286]
    assert [parse_gpueq(v) for v in ("nan", "inf", "-inf", "-1", "", "x", "1e400")] == [None] * 7
    ok = {"ds01.gpu.slots": "0", "ds01.gpu.uuids": "GPU-a", "ds01.gpu.gpueq": "1"}
    assert corruption(ok) is None and corruption({"ds01.gpu.slots": "", "ds01.gpu.gpueq": "nan"}) is None
    assert "gpueq" in (corruption({**ok, "ds01.gpu.gpueq": "nan"}) or "")
    assert "UUID" in (corruption({**ok, "ds01.gpu.uuids": ""}) or "")


def test_every_ds01_label_of_an_image_is_overwritten():
    from ds01.atomic.container_create import container_labels

    labels = container_labels(
        {"ds01.gpu.slots": "0,1", "ds01.uid": "0", "ds01.odd": "x", "org.other": "kept"},
        {"ds01.uid": "1001", "ds01.gpu.slots": ""},
    )
    assert labels == {"ds01.gpu.slots": "", "ds01.uid": "1001", "ds01.odd": ""}


def test_pins_tell_whether_a_process_sees_the_pinned_folder(tmp_path):
    from ds01.atomic.host_paths import Pins

    here = os.open(tmp_path, os.O_PATH)
    other = os.open("/", os.O_PATH)
    try:
        assert Pins({str(tmp_path): here}).mismatched(os.getpid()) == []
        assert Pins({str(tmp_path): other}).mismatched(os.getpid()) == [str(tmp_path)]
        assert Pins({"/no/such/dir": other}).mismatched(os.getpid()) == []  # gone: not judged
    finally:
        os.close(here)
        os.close(other)
