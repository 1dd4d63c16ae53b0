"""`image-update` with no arguments on a real terminal: a real user picks the project from the numbered list,
then an entry of the menu; each entry does what its flag does. Real ds01d, the private engine."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.base_image import build_fake_pip
from harness.tty import Terminal
from harness.users import TestUser, ok, run_as

pytestmark = pytest.mark.docker
DOWN = b"\x1b[B"  # the arrow key, as the terminal sends it
FAKE_PIP_BASE = "ds01-test/fakepip-menu:latest"  # records what pip installs (harness.base_image)


@pytest.fixture
def editor(unix_users) -> Iterator[Path]:
    """An $EDITOR that appends a line to the file it is given (as the user: the script is theirs to run)."""
    alice = unix_users["alice"]
    path = alice.home / ".ds01-test-editor"
    path.write_text("#!/bin/sh\necho 'RUN echo from-the-editor > /tmp/mark' >> \"$1\"\n")
    os.chown(path, alice.uid, alice.gid)
    path.chmod(0o755)
    yield path
    path.unlink()


@pytest.fixture
def fake_pip_base(engine_clean) -> str:
    return build_fake_pip(engine_clean, FAKE_PIP_BASE)


def _image(engine, user: TestUser, name: str) -> dict:
    return dict(engine.api.inspect_image(f"ds01-{user.uid}/{name}:latest"))


def _create(user: TestUser, name: str, base: str) -> None:
    ok(run_as(user, "image-create", name, "--framework", "python", "--type", "custom", "--base", base,
              "--json"))  # fmt: skip


def test_menu_edit_opens_the_editor_then_rebuilds_what_changed(
    ds01_home, engine_clean, unix_users, base_image_ref, editor
):
    alice = unix_users["alice"]
    _create(alice, "first", base_image_ref)
    _create(alice, "second", base_image_ref)
    dockerfile = ds01_home / "ws" / alice.name / "second" / "Dockerfile"
    before = _image(engine_clean, alice, "second")["Id"]
    other = _image(engine_clean, alice, "first")["Id"]

    term = Terminal(alice, "image-update", env={"EDITOR": str(editor)})
    try:
        term.expect(r"Which image")
        assert re.search(r"1\) first", term.screen) and re.search(r"2\) second", term.screen)
        term.send(b"2\r")
        term.expect(r"What to do with second")
        assert "Add Python packages" in term.screen and "Edit the Dockerfile" in term.screen
        term.send(DOWN * 3 + b"\r")  # add, add system, remove, [edit], rebuild
        term.expect(r"Dockerfile changed \(1 line\): rebuilding")
        code = term.finish()
    finally:
        term.close()
    assert code == 0, term.screen[-3000:]
    assert "rebuilt" in term.screen
    assert dockerfile.read_text().rstrip().endswith("RUN echo from-the-editor > /tmp/mark")
    after = _image(engine_clean, alice, "second")["Id"]
    assert after != before and _image(engine_clean, alice, "first")["Id"] == other
    mark = engine_clean.containers.run(after, ["cat", "/tmp/mark"], remove=True, network_mode="none")
    assert mark.decode().strip() == "from-the-editor"

    # nothing edited since: the same entry with an editor that changes nothing rebuilds nothing
    term = Terminal(alice, "image-update", env={"EDITOR": "true"})
    try:
        term.expect(r"Which image")
        term.send(b"2\r")
        term.expect(r"What to do with second")
        term.send(DOWN * 3 + b"\r")
        term.expect(r"nothing changed; pass --rebuild")
        code = term.finish()
    finally:
        term.close()
    assert code == 0 and _image(engine_clean, alice, "second")["Id"] == after


def test_menu_add_python_packages_is_the_add_flag(ds01_home, engine_clean, unix_users, fake_pip_base):
    bob = unix_users["bob"]
    _create(bob, "nlp", fake_pip_base)
    dockerfile = ds01_home / "ws" / bob.name / "nlp" / "Dockerfile"
    before = _image(engine_clean, bob, "nlp")["Id"]

    term = Terminal(bob, "image-update", env={})
    try:
        term.expect(r"Which image")
        term.send(b"1\r")
        term.expect(r"What to do with nlp")
        term.send(b"\r")  # the first entry: add Python packages
        term.expect(r"Python packages to add")
        term.send(b"requests==2.32.3 tqdm\r")
        term.expect(r"rebuilt")
        code = term.finish()
    finally:
        term.close()
    assert code == 0, term.screen[-3000:]
    text = dockerfile.read_text()
    assert text.count("requests==2.32.3") == 1 and "tqdm" in text
    assert dockerfile.with_name("Dockerfile.bak").exists()
    image = _image(engine_clean, bob, "nlp")
    assert image["Id"] != before
    calls = engine_clean.containers.run(image["Id"], ["cat", "/var/log/pip-calls"], remove=True,
                                        network_mode="none").decode()  # fmt: skip
    assert "requests==2.32.3" in calls and "tqdm" in calls
    recorded = json.loads(image["Config"]["Labels"]["ds01.recipe"])
    assert len(recorded["sha256"]) == 64


def test_menu_rebuild_and_ctrl_c(ds01_home, engine_clean, unix_users, base_image_ref):
    carol = unix_users["carol"]
    _create(carol, "plain", base_image_ref)
    before = _image(engine_clean, carol, "plain")["Id"]

    term = Terminal(carol, "image-update", env={})
    try:
        term.expect(r"Which image")
        term.send(b"1\r")
        term.expect(r"What to do with plain")
        term.send(b"\x03")  # Ctrl-C at the menu: nothing happens, exit 130
        term.expect(r"cancelled")
        code = term.finish()
    finally:
        term.close()
    assert code == 130 and _image(engine_clean, carol, "plain")["Id"] == before

    term = Terminal(carol, "image-update", env={})
    try:
        term.expect(r"Which image")
        term.send(b"1\r")
        term.expect(r"What to do with plain")
        term.send(DOWN * 4 + b"\r")  # rebuild: --rebuild, even with nothing changed
        term.expect(r"rebuilt")
        code = term.finish()
    finally:
        term.close()
    assert code == 0, term.screen[-3000:]
    events = [e for e in _events(ds01_home) if e["event_type"] == "image_build"]
    assert len([e for e in events if e["details"]["image"] == f"ds01-{carol.uid}/plain:latest"]) == 2


def _events(ds01_home: Path) -> list[dict]:
    from ds01.events import read_events

    return list(read_events(ds01_home / "log"))
