"""The state or the log directory full or read-only (a tiny tmpfs mounted over it and filled): commands that
would change something fail with exit 1 and one line before they change anything; ds01d keeps serving and
works again, without a restart, once there is space. Event lines that cannot be written are counted and
shown by doctor (docs/operations.md)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_invariants import check, ds01d_serves, events

from harness.users import run_as

pytestmark = pytest.mark.docker
BIN = Path(sys.executable).parent


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs over `path` (root's, 0700, as the real dir), unmounted afterwards (the old contents return)."""
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "ds01-fault", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> Path:
    """Write zeros until the file system is full; the filler's path (remove it to free the space)."""
    filler = path / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    with contextlib.suppress(OSError), open(path / "filler-tail", "wb") as f:
        while True:
            f.write(b"\0" * 512)
            f.flush()
    return filler


def free(path: Path) -> None:
    for name in ("filler", "filler-tail"):
        with contextlib.suppress(FileNotFoundError):
            (path / name).unlink()


def one_clean_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "internal error" not in err, err
    return err


@pytest.mark.parametrize("where", ["state", "log"])
def test_a_full_dir_refuses_deploy_and_create_before_anything_and_recovers(
    where: str, ds01_home: Any, engine_clean: Any, base_image_ref: str, unix_users: Any
) -> None:
    alice = unix_users["alice"]
    before = events(ds01_home)
    with tiny_tmpfs(ds01_home / where) as mount:
        filler = fill(mount)
        deploy = run_as(alice, "container-deploy", "full", "--gpus", "1", "--image", base_image_ref)
        err = one_clean_line(deploy)
        assert "is full" in err or "No space left" in err, err
        create = run_as(alice, "container-create", "full2", "--cpu-only", "--image", base_image_ref)
        err = one_clean_line(create)
        assert "is full" in err, err
        assert engine_clean.api.containers(all=True) == []  # nothing was made
        assert ds01d_serves(alice)
        free(mount)
        assert filler.exists() is False
        again = run_as(alice, "container-deploy", "full", "--gpus", "1", "--image", base_image_ref, "--json")
        assert again.returncode == 0, again.stderr  # the same ds01d, no restart
        retired = run_as(alice, "container-retire", "full", "--yes")
        assert retired.returncode == 0, retired.stderr
        if where == "log":
            kinds = [e["event_type"] for e in events(ds01_home)]
            assert kinds[:2] == ["allocate", "create"] and "release" in kinds
    if where == "state":
        assert [e for e in events(ds01_home) if e not in before]  # the events went to the real log
    assert check(ds01_home, engine_clean) == []


def test_a_read_only_state_dir_refuses_deploy_and_retire_and_leaves_things_whole(
    ds01_home: Any, engine_clean: Any, base_image_ref: str, unix_users: Any
) -> None:
    bob = unix_users["bob"]
    up = run_as(bob, "container-deploy", "keep", "--gpus", "1", "--image", base_image_ref, "--background")
    assert up.returncode == 0, up.stderr
    with tiny_tmpfs(ds01_home / "state") as mount:
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        err = one_clean_line(run_as(bob, "container-retire", "keep", "--yes"))
        assert "read-only" in err.lower(), err
        err = one_clean_line(run_as(bob, "container-deploy", "more", "--cpu-only", "--image", base_image_ref))
        assert "read-only" in err.lower(), err
        [c] = engine_clean.api.containers(all=True)
        assert c["State"] == "running" and c["Names"] == [f"/keep._.{bob.uid}"]  # the retire did nothing
        subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)
        done = run_as(bob, "container-retire", "keep", "--yes")
        assert done.returncode == 0, done.stderr
    assert engine_clean.api.containers(all=True) == []
    assert check(ds01_home, engine_clean) == []


def test_an_event_that_cannot_be_written_is_counted_and_shown_by_doctor(
    ds01_home: Any, engine_clean: Any, unix_users: Any
) -> None:
    alice = unix_users["alice"]
    doctor = [str(BIN / "ds01"), "doctor", "--json"]

    def writes() -> dict[str, str]:
        out = subprocess.run(doctor, capture_output=True, text=True, timeout=60).stdout
        return next(c for c in json.loads(out)["checks"] if c["name"] == "event log writes")

    assert writes()["status"] == "ok"
    with tiny_tmpfs(ds01_home / "log") as mount:
        fill(mount)
        # a refusal is logged (`denied`) without a pre-check: the write fails, the answer does not
        denied = run_as(alice, "container-list", "--user", unix_users["bob"].name)
        assert denied.returncode == 5 and "Traceback" not in denied.stderr
        shown = writes()
        assert shown["status"] == "failure" and "1 event(s) could not be written" in shown["detail"]
        assert "No space left" in shown["detail"] and shown["fix"]
        free(mount)
    assert "event log write failed (1 so far)" in ds01_home.server.log_text()


def test_log_event_counts_failures_and_starts_a_fresh_line_after_a_short_write(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    from ds01 import events as ev

    folder = tmp_path / "log"
    folder.mkdir(mode=0o700)
    with tiny_tmpfs(folder, size="64k") as mount:
        assert ev.log_event(mount, "create", user="u", container="a._.1")
        count, _ = ev.write_failures()
        fill(mount)
        (mount / "filler-tail").unlink()  # a few hundred bytes: room for part of a long line
        big = "x" * 40000
        assert not ev.log_event(mount, "create", user="u", container="b._.1", note=big)
        assert ev.write_failures()[0] >= count + 1 and "No space left" in ev.write_failures()[1]
        torn = (mount / "events.jsonl").read_bytes()
        assert b'"b._.1"' in torn and not torn.endswith(b"\n")  # part of the line went in
        free(mount)
        assert ev.log_event(mount, "remove", user="u", container="a._.1")
        records = ev.read_events(mount)
        assert [r["event_type"] for r in records] == ["create", "remove"]  # the torn line is skipped alone
