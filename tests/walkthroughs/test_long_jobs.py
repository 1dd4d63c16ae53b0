"""Seed "Ephemeral Container Model", "What if my experiment takes 3 days?": long jobs outlive the terminal.

    # Inside container
    nohup python train.py > /workspace/training.log 2>&1 &

    # Or use tmux
    tmux new -s training
    python train.py  # Ctrl+B D to detach

    # Can disconnect, reconnect anytime
    exit
    container-attach my-project
    tmux attach -t training          (the seed's `-s` is not an attach flag: tmux wants -t)

A real user on a real terminal (a pseudo-terminal) runs `container-attach`; the disconnects are real: the
terminal is closed under the client, and the client is killed.
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from harness import access_lab
from harness.poll import until
from harness.tty import spawn
from harness.users import run_as

# the first use of the image makes it (debootstrap from the Debian mirror, about two minutes, once)
pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]
access_image = access_lab.access_image  # Debian with tmux (the generated images have it too)
TRAIN = (
    "import time\ni = 0\nwhile True:\n    i += 1\n    print(f'step {i}', flush=True)\n    time.sleep(0.2)\n"
)
PROMPT = r"workspace ?[$#] "


@pytest.fixture
def trainer(ds01_home, docker_engine, engine_client, access_image, unix_users):
    """alice's `training` container (the image has `python`, as the generated images do) with train.py.
    The access image is kept for the other tests (no engine_clean here); what this test made goes."""
    import docker

    try:
        engine_client.images.get(access_image)
    except docker.errors.ImageNotFound:  # an earlier test emptied the engine: import it again (cached)
        from harness.access_image import import_access_image

        import_access_image(docker_engine.host, unix_users.values())
    image = "ds01-test/long-jobs:latest"
    recipe = f"FROM {access_image}\nRUN ln -s /usr/bin/python3 /usr/local/bin/python\n"
    engine_client.images.build(fileobj=io.BytesIO(recipe.encode()), tag=image, rm=True)
    alice = unix_users["alice"]
    r = run_as(alice, "container-deploy", "training", "--image", image, "--background", "--json")
    assert r.returncode == 0, r.stderr
    entry = json.loads(r.stdout)
    ws = ds01_home / "ws" / alice.name / "training"
    subprocess.run(
        ["runuser", "-u", alice.name, "--", "tee", str(ws / "train.py")],
        input=TRAIN, text=True, capture_output=True, check=True,
    )  # fmt: skip
    yield alice, engine_client.containers.get(entry["container"]), ws
    run_as(alice, "container-retire", "training", "--yes")
    for c in engine_client.containers.list(all=True, filters={"label": f"ds01.uid={alice.uid}"}):
        c.remove(force=True)
    engine_client.images.remove(image, force=True)


class Terminal:
    """`container-attach NAME` as the user on a pseudo-terminal."""

    def __init__(self, user: Any, name: str) -> None:
        self.pid, self.fd = spawn(user, "container-attach", name)  # the user, on a real terminal
        self.screen = ""
        self.cursor = 0
        self.closed = False

    def read_until(self, pattern: str, timeout: float = 60) -> str:
        """The terminal's output from the end of the last match to the end of the next match of `pattern`
        (what already arrived counts: a prompt may come in the same read as the line before it)."""
        end = time.monotonic() + timeout
        while True:
            found = re.compile(pattern, re.M).search(self.screen, self.cursor)
            if found:
                text, self.cursor = self.screen[self.cursor : found.end()], found.end()
                return text
            if time.monotonic() > end:
                break
            ready, _, _ = select.select([self.fd], [], [], 0.3)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096).decode(errors="replace")
                except OSError:
                    break
                if "\x1b[6n" in chunk:  # a cursor-position query: answer as a terminal does
                    os.write(self.fd, b"\x1b[40;1R")
                self.screen += chunk
        raise AssertionError(f"never saw {pattern!r}; the terminal showed:\n{self.screen[-3000:]}")

    def step_above(self, n: int, timeout: float = 60) -> int:
        """Read until the screen shows `step M` with M > n (tmux may redraw in pieces); returns M."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            top = max(steps(self.read_until(r"step \d+", timeout=max(0.1, end - time.monotonic()))))
            if top > n:
                return top
        raise AssertionError(f"no step above {n}; the terminal showed:\n{self.screen[-3000:]}")

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def keys(self, raw: bytes) -> None:
        os.write(self.fd, raw)

    def hang_up(self) -> int:
        """Close the terminal under the client (a dropped connection); the client's end as the code."""
        os.close(self.fd)
        self.closed = True
        return self.wait()

    def kill(self) -> int:
        os.killpg(self.pid, signal.SIGKILL)  # the client and runuser: the terminal's session
        return self.wait()

    def wait(self, timeout: float = 30) -> int:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                if not self.closed:
                    os.close(self.fd)
                    self.closed = True
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.1)
        ps = subprocess.run(["ps", "-g", str(self.pid), "-o", "pid,ppid,pgid,sid,stat,wchan:30,cmd"],
                            capture_output=True, text=True).stdout  # fmt: skip
        raise AssertionError(f"the client did not end:\n{ps}")


def steps(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"step (\d+)", text)]


def trainers(container: Any) -> int:
    return sum("train.py" in " ".join(p) for p in container.top()["Processes"])


def shells(container: Any) -> int:
    return sum("bash" in " ".join(p) for p in container.top()["Processes"])


def log_steps(path: Path) -> int:
    found = steps(path.read_text()) if path.exists() else []
    return found[-1] if found else 0


def test_nohup_job_survives_a_dropped_terminal_and_the_log_grows(trainer):
    alice, container, ws = trainer
    log = ws / "training.log"
    term = Terminal(alice, "training")
    term.read_until(PROMPT)
    term.type("nohup python train.py > /workspace/training.log 2>&1 &")
    until(lambda: log_steps(log) >= 3)
    assert term.hang_up() == 129  # the laptop's lid closes: the terminal goes away; the client ends
    at_drop = log_steps(log)
    until(lambda: shells(container) == 0)  # ds01d ended the dropped session: its shell hung up and went
    time.sleep(3)  # past ds01d's grace before it kills what is left of a session
    assert log_steps(log) > at_drop  # still training with nobody attached
    assert trainers(container) == 1
    assert log.stat().st_uid == alice.uid

    # reconnect: the job is there and its log grows
    term = Terminal(alice, "training")
    term.read_until(PROMPT)
    term.type("tail -n 1 /workspace/training.log; sleep 1; tail -n 1 /workspace/training.log; echo d-o-n-e")
    seen = steps(term.read_until(r"^d-o-n-e"))
    assert len(seen) == 2 and at_drop < seen[0] < seen[1], seen
    term.kill()  # the client killed outright: the job does not care either
    until(lambda: shells(container) == 0)
    mark = log_steps(log)
    time.sleep(3)
    assert log_steps(log) > mark and trainers(container) == 1


def test_tmux_session_outlives_detach_exit_and_a_killed_client(trainer):
    alice, container, _ = trainer
    term = Terminal(alice, "training")
    term.read_until(PROMPT)
    term.type("tmux new -s training")
    term.read_until(PROMPT)  # the shell inside tmux
    term.type("python train.py")
    before = steps(term.read_until(r"step 5\b"))
    term.keys(b"\x02d")  # Ctrl+B D
    term.read_until(r"\[detached")
    term.read_until(PROMPT)
    term.type("exit")
    assert term.wait() == 0  # the shell ended; container-attach passed its code through
    assert trainers(container) == 1  # python train.py runs on inside tmux

    term = Terminal(alice, "training")
    term.read_until(PROMPT)
    term.type("tmux attach -s training; echo attach-said-$?")  # the seed's line: not a tmux flag
    said = term.read_until(r"attach-said-\d+")
    assert "attach-said-1" in said and re.search(r"unknown flag -s|usage", said), said
    term.type("tmux attach -t training")
    first = term.step_above(max(before))  # the same job, further on, on the reattached screen
    term.step_above(first + 2)  # and still counting
    term.kill()  # killed while attached: tmux keeps the session

    term = Terminal(alice, "training")
    term.read_until(PROMPT)
    term.type("tmux ls")
    assert "training: 1 windows" in term.read_until(r"training: \d+ windows")
    term.type("tmux kill-session -t training; exit")
    term.wait()
    until(lambda: trainers(container) == 0)
