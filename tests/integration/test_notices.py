"""Lifecycle notices by e-mail: runtime warnings and stops reach a real (local) SMTP server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

import pytest

from harness.users import run_as

pytestmark = pytest.mark.docker
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], object]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, controller.port
    controller.stop()


def reaper_at(when: datetime) -> dict:
    r = subprocess.run(
        [str(BIN / "ds01-reaper"), "--once", "--json", "--now", when.strftime("%Y-%m-%dT%H:%M:%SZ")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def events_of(ds01_home, kind: str) -> list[dict]:
    lines = (ds01_home / "log" / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event_type"] == kind]


def test_runtime_warning_and_stop_arrive_by_email(ds01_home, engine_clean, base_image_ref, unix_users, smtp):
    inbox, port = smtp
    alice, bob = unix_users["alice"], unix_users["bob"]
    ds01_home.reconfigure(
        notify={"smtp": f"127.0.0.1:{port}", "sender": "ds01@lab.example", "domain": "lab.example",
                "addresses": {bob.name: "bob.b@uni.example"}},
        user_overrides={alice.name: {"max_runtime_h": 1}, bob.name: {"max_runtime_h": 1}},
    )  # fmt: skip
    for who in (alice, bob):
        r = run_as(who, "container-deploy", "train", "--image", base_image_ref, "--cpu-only", "--background")
        assert r.returncode == 0, r.stderr
    start = datetime.now(UTC)
    reaper_at(start + timedelta(minutes=55))  # 91 %: the final runtime warning
    deadline = time.monotonic() + 10
    while len(inbox.messages) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    got = {tuple(rcpt): msg for rcpt, msg in inbox.messages}
    assert set(got) == {(f"{alice.name}@lab.example",), ("bob.b@uni.example",)}
    warning = got[(f"{alice.name}@lab.example",)]
    assert warning["Subject"] == "ds01 FINAL WARNING: container train"
    assert warning["From"] == "ds01@lab.example" and warning["Auto-Submitted"] == "auto-generated"
    body = warning.get_payload(decode=True).decode()
    assert f"Hello {alice.name}" in body and "maximum runtime" in body
    delivered = [e["details"]["delivered"] for e in events_of(ds01_home, "runtime_warning")]
    assert delivered and all(d["email"] is True for d in delivered)

    inbox.messages.clear()
    reaper_at(start + timedelta(minutes=65))  # past the limit: stopped
    deadline = time.monotonic() + 10
    while len(inbox.messages) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    subjects = sorted(msg["Subject"] for _, msg in inbox.messages)
    assert subjects == ["ds01 STOPPED: container train"] * 2
    assert "Stopped after" in inbox.messages[0][1].get_payload(decode=True).decode()


def test_no_smtp_no_mail_and_a_dead_relay_fails_nothing(ds01_home, engine_clean, base_image_ref, unix_users):
    alice = unix_users["alice"]
    dead = free_port()  # nothing listens there
    ds01_home.reconfigure(
        notify={"smtp": f"127.0.0.1:{dead}", "domain": "lab.example"},
        user_overrides={alice.name: {"max_runtime_h": 1}},
    )
    r = run_as(alice, "container-deploy", "train", "--image", base_image_ref, "--cpu-only", "--background")
    assert r.returncode == 0, r.stderr
    reaper_at(datetime.now(UTC) + timedelta(minutes=55))
    warned = events_of(ds01_home, "runtime_warning")
    assert warned and warned[-1]["details"]["delivered"]["email"] is False
    ds01_home.reconfigure(notify={"smtp": None}, user_overrides={alice.name: {"max_runtime_h": 1}})
    reaper_at(datetime.now(UTC) + timedelta(minutes=65))
    stopped = events_of(ds01_home, "runtime_stop")
    assert stopped and "email" not in stopped[-1]["details"]["delivered"]


def test_a_bad_notify_section_is_refused_in_one_line(ds01_home, tmp_path):
    bad = tmp_path / "bad.yaml"
    cases = (
        ({"smtp": "no-port"}, "notify.smtp"),
        ({"addresses": {"x": "a\nb@c"}}, "addresses"),
        ({"mailto": 1}, "notify.mailto"),
    )
    for section, words in cases:
        from harness.config import write_config

        write_config(bad, Path(ds01_home), notify=section)
        r = subprocess.run([str(BIN / "ds01d"), "--check-config", str(bad)], capture_output=True, text=True)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr
