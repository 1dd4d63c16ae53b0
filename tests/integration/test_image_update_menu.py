"""`image-update` with no arguments on a real terminal: a real user picks the project from the numbered list,
then an entry of the menu; each entry does what its flag does. Real ds01d, the private engine."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import re
import select
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.users import KEEP_ENV, TestUser, run_as

pytestmark = pytest.mark.docker
BIN = Path(sys.executable).parent
DOWN = b"\x1b[B"  # the arrow key, as the terminal sends it
# A stand-in for pip in a base with no network: records its arguments, so a test can see what was installed.
FAKE_PIP_BASE = "ds01-test/fakepip-menu:latest"
FAKE_PIP_DOCKERFILE = """\
FROM ds01-test/busybox:latest
RUN mkdir -p /var/log \\
 && printf '#!/bin/sh\\necho "$@" >> /var/log/pip-calls\\n' > /usr/bin/python3 && chmod 755 /usr/bin/python3
"""


def ok(result):
    assert result.returncode == 0, f"rc {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def _read_until(fd: int, pattern: str, seen: list[str], timeout: float = 90) -> str:
    """Read the terminal until `pattern` shows (in what came since the last match); `seen` keeps it all."""
    start, end = len("".join(seen)), time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                seen.append(os.read(fd, 4096).decode(errors="replace"))
            except OSError:
                break
            if re.search(pattern, "".join(seen)[start:]):
                return "".join(seen)
    raise AssertionError(f"never saw {pattern!r}; the terminal showed:\n{''.join(seen)[-3000:]}")


class Terminal:
    """The user at a real terminal, running `image-update` with no arguments."""

    def __init__(self, user: TestUser, env: dict[str, str]) -> None:
        full = {k: v for k, v in os.environ.items() if k in (*KEEP_ENV, "PATH")}
        full.update(TERM="xterm", COLUMNS="120", LINES="40", **env)
        self.seen: list[str] = []
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvpe("runuser", ["runuser", "-u", user.name, "--", str(BIN / "image-update")], full)

    def expect(self, pattern: str) -> str:
        return _read_until(self.fd, pattern, self.seen)

    def send(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def finish(self) -> int:
        end = time.monotonic() + 120
        while time.monotonic() < end:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            if select.select([self.fd], [], [], 0.5)[0]:
                with contextlib.suppress(OSError):  # EIO once the command has gone
                    self.seen.append(os.read(self.fd, 4096).decode(errors="replace"))
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        raise AssertionError("image-update did not finish:\n" + "".join(self.seen)[-3000:])

    def close(self) -> None:
        try:
            if os.waitpid(self.pid, os.WNOHANG)[0] == 0:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        os.close(self.fd)

    @property
    def screen(self) -> str:
        return "".join(self.seen)


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
    engine_clean.images.build(fileobj=io.BytesIO(FAKE_PIP_DOCKERFILE.encode()), tag=FAKE_PIP_BASE, rm=True)
    return FAKE_PIP_BASE


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

    term = Terminal(alice, {"EDITOR": str(editor)})
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
    term = Terminal(alice, {"EDITOR": "true"})
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

    term = Terminal(bob, {})
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

    term = Terminal(carol, {})
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

    term = Terminal(carol, {})
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
