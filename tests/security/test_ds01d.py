"""ds01d's own boundary: who the caller is comes from the socket alone, and every body is checked by its
declared schema before any handler runs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness import daemon
from harness.raw import request
from harness.users import run_as


def test_the_caller_is_who_the_socket_says_whatever_the_environment(ds01_home, unix_users):
    alice = unix_users["alice"]
    for env in ({}, {"SUDO_UID": "0", "USER": "root", "LOGNAME": "root", "DS01_USER": "root"}):
        argv = ["runuser", "-u", alice.name, "--", "env", *[f"{k}={v}" for k, v in env.items()]]
        argv += [sys.executable, "-c", _VERSION]
        out = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ), check=True)
        caller = json.loads(out.stdout)["caller"]
        assert caller == {"uid": alice.uid, "user": alice.name, "admin": False}
    root = json.loads(
        subprocess.run([sys.executable, "-c", _VERSION], capture_output=True, check=True).stdout
    )
    assert root["caller"]["uid"] == 0 and root["caller"]["admin"] is True
    assert root["euid"] == 0 and root["socket_mode"] == "0666"


_VERSION = (
    "import json; from ds01.client import Client, path_of; "
    "print(json.dumps(Client().call('GET', path_of('version'))))"
)


@pytest.mark.parametrize(
    ("method", "target", "body", "code", "needle"),
    [
        ("GET", "/v1/containers?bogus=1", None, 2, "unknown field 'bogus'"),
        ("GET", "/v1/containers?all_users=maybe", None, 2, "all_users: expected true or false"),
        ("GET", "/v1/nothing-here", None, 3, "no endpoint"),
        ("GET", "/v2/containers", None, 3, "no endpoint"),
        ("DELETE", "/v1/version", None, 2, "not allowed"),
        ("POST", "/v1/containers", "{not json", 2, "not valid JSON"),
        ("POST", "/v1/containers", "[1, 2]", 2, "must be a JSON object"),
        ("POST", "/v1/containers", {"name": "x" * 5000}, 2, "longer than"),
        ("POST", "/v1/containers", {"name": "x", "gpus": "2"}, 2, "gpus: expected a number"),
        ("POST", "/v1/containers", {"name": "x", "gpus": 1.5}, 2, "whole number"),
        ("POST", "/v1/containers", {"name": "x", "uid": 0}, 2, "unknown field 'uid'"),
        ("POST", "/v1/containers", {"name": "x\u0000y"}, 2, "NUL"),
    ],
)
def test_bad_requests_are_refused_by_the_schema_with_one_line(
    ds01_home, unix_users, method, target, body, code, needle
):
    answer = request(unix_users["alice"], ds01_home.socket, method, target, body)
    assert answer.exit_code == code, answer.lines
    assert needle in answer.error["message"] + (answer.error["hint"] or "")
    assert answer.status == {2: 400, 3: 404}[code]
    assert "Traceback" not in ds01_home.server.log_text()


def test_an_oversized_body_is_refused_in_one_line(ds01_home, unix_users):
    answer = request(unix_users["alice"], ds01_home.socket, "POST", "/v1/containers", "x" * ((1 << 20) + 1))
    assert answer.exit_code == 2 and "over" in answer.error["message"]


def test_no_ds01d_is_exit_6_saying_what_to_start(ds01_home, unix_users):
    daemon.stop_ds01d(ds01_home.server)
    result = run_as(unix_users["alice"], "container-list")
    assert result.returncode == 6
    assert "ds01d is not running" in result.stderr and "Traceback" not in result.stderr
    as_json = run_as(unix_users["alice"], "container-list", "--json")
    assert as_json.returncode == 6 and json.loads(as_json.stdout)["error"]["code"] == "engine_unavailable"


def test_the_socket_is_0666_and_sigterm_stops_ds01d_cleanly(ds01_home):
    mode = stat.S_IMODE(ds01_home.socket.stat().st_mode)
    assert mode == 0o666
    daemon.stop_ds01d(ds01_home.server)
    assert ds01_home.server.process.returncode == 0
    assert not ds01_home.socket.exists()


def test_ds01d_refuses_to_run_as_an_ordinary_user(ds01_home, unix_users):
    alice = unix_users["alice"]
    result = subprocess.run(
        ["runuser", "-u", alice.name, "--", daemon.ds01d_program(), "--config", str(ds01_home.config),
         "--socket", "/tmp/ds01-not-root.sock"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 5 and "must run as root" in result.stderr
    assert not Path("/tmp/ds01-not-root.sock").exists()


def test_check_config_exits_0_for_a_good_file_and_2_for_a_broken_one(ds01_home, tmp_path):
    good = subprocess.run(
        [daemon.ds01d_program(), "--check-config", str(ds01_home.config)], capture_output=True
    )
    assert good.returncode == 0, good.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(ds01_home.config.read_text().replace("defaults:", "defaults:\n  max_gpuz: 3", 1))
    bad = subprocess.run(
        [daemon.ds01d_program(), "--check-config", str(broken)], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "max_gpuz" in bad.stderr and "Traceback" not in bad.stderr


def test_denied_requests_are_events_only_root_reads(ds01_home, unix_users):
    alice = unix_users["alice"]
    answer = request(alice, ds01_home.socket, "GET", "/v1/containers?all_users=true")
    assert answer.exit_code == 5
    events = (ds01_home / "log" / "events.jsonl").read_text().splitlines()
    denied = [json.loads(e) for e in events if '"denied"' in e]
    assert denied and denied[-1]["user"] == alice.name
    assert denied[-1]["details"]["endpoint"] == "GET /containers"
    reader = subprocess.run(
        ["runuser", "-u", alice.name, "--", "cat", str(ds01_home / "log" / "events.jsonl")],
        capture_output=True,
    )
    assert reader.returncode != 0
