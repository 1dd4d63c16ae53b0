"""The event log: root-only modes, one line per event, and the filtered reads behind `GET /v1/events`."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ds01.events import ensure_private_dir, log_event, query_events, read_events


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_the_log_dir_and_file_are_private(tmp_path: Path) -> None:
    log = tmp_path / "a" / "log"
    log_event(log, "create", user="alice", container="x._.1001", interface="atomic")
    assert mode(log) == 0o700 and mode(log / "events.jsonl") == 0o600
    [record] = read_events(log)
    assert record["event_type"] == "create" and record["details"] == {"interface": "atomic"}


def test_loose_modes_of_an_older_install_are_tightened(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    (tmp_path / "events.jsonl").write_text("")
    (tmp_path / "events.jsonl").chmod(0o644)
    log_event(tmp_path, "start", user="bob", container=None)
    assert mode(tmp_path) == 0o700 and mode(tmp_path / "events.jsonl") == 0o600


def test_a_planted_symlink_is_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    log = tmp_path / "log"
    ensure_private_dir(log)
    (log / "events.jsonl").symlink_to(victim)
    log_event(log, "create", user="alice", container=None)  # never fails the command...
    assert victim.read_text() == "keep\n"  # ...and never follows the link


def test_query_filters_by_user_type_container_since_and_limit(tmp_path: Path) -> None:
    for user, kind, container in (
        ("alice", "create", "a._.1001"), ("bob", "create", "b._.1002"), ("alice", "release", "a._.1001"),
        ("alice", "create", "c._.1001"),
    ):  # fmt: skip
        log_event(tmp_path, kind, user=user, container=container)
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write("not json\n[1, 2]\n")
    assert [e["user"] for e in query_events(tmp_path)] == ["alice", "bob", "alice", "alice"]
    assert {e["user"] for e in query_events(tmp_path, user="alice")} == {"alice"}
    assert [e["container"] for e in query_events(tmp_path, user="alice", event_type="create")] == [
        "a._.1001", "c._.1001",
    ]  # fmt: skip
    assert [e["event_type"] for e in query_events(tmp_path, container="a")] == ["create", "release"]
    assert [e["container"] for e in query_events(tmp_path, limit=1)] == ["c._.1001"]
    assert query_events(tmp_path, since="2999-01-01T00:00:00Z") == []
    assert len(query_events(tmp_path, since="2000-01-01T00:00:00Z")) == 4
