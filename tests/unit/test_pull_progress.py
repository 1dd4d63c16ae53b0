"""A base image's download as the client shows it (a pull stream in the engine's own format, as recorded from
a real pull), and build failures that come from the network said in plain words."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from ds01.errors import OperationFailed
from ds01.project.build_view import BuildState, Follower, LiveView, NullView, PlainView, follow

REF = "127.0.0.1:5000/lab/tiny:1"
MB = 1_000_000
PULL = [
    {"pull": REF},
    {"status": "Pulling from lab/tiny", "id": "1"},
    {"status": "Already exists", "id": "a1b2c3d4e5f6"},
    {"status": "Pulling fs layer", "id": "0f9e8d7c6b5a"},
    {"status": "Downloading", "id": "0f9e8d7c6b5a", "progressDetail": {"current": 1 * MB, "total": 4 * MB}},
    {"status": "Downloading", "id": "0f9e8d7c6b5a", "progressDetail": {"current": 3 * MB, "total": 4 * MB}},
    {"status": "Verifying Checksum", "id": "0f9e8d7c6b5a"},
    {"status": "Download complete", "id": "0f9e8d7c6b5a"},
    {"status": "Extracting", "id": "0f9e8d7c6b5a", "progressDetail": {"current": 4 * MB, "total": 4 * MB}},
    {"status": "Pull complete", "id": "0f9e8d7c6b5a"},
    {"status": "Digest: sha256:" + "0" * 64},
    {"status": f"Status: Downloaded newer image for {REF}"},
]


def test_plain_progress_is_a_line_per_finished_layer():
    out = io.StringIO()
    follower = Follower(PlainView(out))
    for event in PULL:
        follower.on_event(event)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"Downloading {REF} from 127.0.0.1:5000"
    assert lines[-1] == "  2/2 layers, 4.0 MB of 4.0 MB"
    assert len(lines) == 3  # not one per chunk


def test_the_live_view_shows_layers_and_bytes_while_downloading():
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    view = LiveView(console, "tiny")
    follower = Follower(view)
    for event in PULL[:6]:  # mid-download
        follower.on_event(event)
    shown = Console(file=io.StringIO(), width=120)
    shown.print(view)
    text = shown.file.getvalue()  # type: ignore[attr-defined]
    assert f"downloading {REF}: 1/2 layers, 3.0 MB of 4.0 MB" in text
    for event in PULL[6:]:
        follower.on_event(event)
    done = Console(file=io.StringIO(), width=120)
    done.print(view)
    assert "downloading" not in done.file.getvalue()  # type: ignore[attr-defined]
    follower.done(None)


def _build(*lines: str, error: dict[str, object]) -> list[dict[str, object]]:
    """The builder's events: each line as `stream` output, then the failure."""
    return [*({"stream": line + "\n"} for line in lines), error]


def test_apt_without_network_says_the_mirror_cannot_be_reached():
    events = _build(
        "Step 1/3 : FROM ds01/python:3.11",
        "Step 2/3 : RUN apt-get update && apt-get install -y git",
        "W: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  "
        "Temporary failure resolving 'deb.debian.org'",
        "E: Unable to locate package git",
        error={"error": "The command '/bin/sh -c apt-get update' returned a non-zero code: 100"},
    )
    with pytest.raises(OperationFailed) as info:
        follow(events, NullView())
    assert "cannot reach the Debian/Ubuntu package mirror (apt-get) at step 2/3" in info.value.message
    assert "images.build_network" in str(info.value)


def test_a_from_step_the_builder_could_not_pull_is_plain_words():
    message = 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host'
    events = _build(
        "Step 1/2 : FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
        error={"errorDetail": {"message": message}},
    )
    with pytest.raises(OperationFailed) as info:
        follow(events, NullView())
    assert info.value.message == (
        "this server cannot reach the container registry (registry-1.docker.io) to download "
        "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
    )


def test_a_missing_package_with_network_stays_the_steps_own_failure():
    events = _build(
        "Step 1/2 : FROM ds01/python:3.11",
        "Step 2/2 : RUN python3 -m pip install no-such-package-xyz",
        "ERROR: Could not find a version that satisfies the requirement no-such-package-xyz "
        "(from versions: none)",
        "ERROR: No matching distribution found for no-such-package-xyz",
        error={"error": "The command '/bin/sh -c python3 -m pip install' returned a non-zero code: 1"},
    )
    with pytest.raises(OperationFailed) as info:
        follow(events, NullView())
    assert info.value.message.startswith("the build failed at step 2/2")
    assert "PyPI" not in str(info.value)


def test_a_step_state_starts_clean():
    state = BuildState()
    assert state.pull is None and state.offline_lines == 0
