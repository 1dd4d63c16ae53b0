"""What must hold after any fault (issue 12): no orphan container, no GPU slot held twice or held without a
container, no workspace file lost, events consistent with the engine, ds01d serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.users import run_as

BIN = Path(sys.executable).parent


def popen_as(user: Any, *argv: str, **kw: Any) -> subprocess.Popen[bytes]:
    """A console script as a real user, in its own process group."""
    env = [f"{k}={v}" for k, v in os.environ.items() if k in ("DS01_SOCKET", "PATH")]
    cmd = ["runuser", "-u", user.name, "--", "env", "-i", *env, str(BIN / argv[0]), *argv[1:]]
    return subprocess.Popen(cmd, start_new_session=True, **kw)


def events(home: Path) -> list[dict[str, Any]]:
    path = home / "log" / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def put_file(home: Path, user: Any, project: str, text: str) -> Path:
    """A file in the user's workspace `project`, written as root and given to the user."""
    folder = home / "ws" / user.name / project
    path = folder / "keep.txt"
    path.write_text(text)
    os.chown(path, user.uid, user.gid)
    return path


def check(home: Path, client: Any, files: dict[Path, str] | None = None) -> list[str]:
    """Every violated invariant, as one line each (an empty list: all hold). The fault tests make containers
    by deploy only, so any container still `created` (never started) is an orphan of a cut deploy."""
    problems: list[str] = []
    api = client.api
    containers = api.containers(all=True, filters={"label": "ds01.managed=true"})
    present = {c["Names"][0].lstrip("/"): c for c in containers}
    journal = home / "state" / "journal"
    pending = sorted(os.listdir(journal)) if journal.exists() else []
    if pending:
        problems.append(f"journal entries left after reconcile: {pending}")
    for name, c in present.items():
        if c["State"] == "created":
            problems.append(f"orphan: {name} was created and never started")
    held: dict[str, str] = {}
    for name, c in present.items():
        for slot in filter(None, (c["Labels"].get("ds01.gpu.slots") or "").split(",")):
            if slot in held:
                problems.append(f"slot {slot} held twice: {held[slot]} and {name}")
            held[slot] = name
    open_alloc: dict[str, dict[str, Any]] = {}
    for e in events(home):
        name = e.get("container")
        if e["event_type"] == "allocate":
            open_alloc[name] = e
        elif e["event_type"] == "release":
            open_alloc.pop(name, None)
    for name in open_alloc:
        if name not in present:
            problems.append(f"events: {name} was allocated a GPU, is gone, and has no release")
    for name, c in present.items():
        if c["Labels"].get("ds01.gpu.slots") and name not in open_alloc and c["State"] == "running":
            problems.append(f"events: {name} holds a GPU but no allocate is open for it")
    for path, text in (files or {}).items():
        if not path.exists() or path.read_text() != text:
            problems.append(f"workspace file lost or changed: {path}")
    return problems


def ds01d_serves(user: Any) -> bool:
    result = run_as(user, "container-list", "--json")
    return result.returncode == 0 and isinstance(json.loads(result.stdout), list)
