"""Interactive exec through ds01d, attacked as real users: another user's container or session, root inside a
container, the passed descriptor used as a way to the engine, and a client killed half-way."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time

import pytest

from harness import users
from harness.raw import request
from harness.users import run_as

pytestmark = pytest.mark.docker

LABELS = ("ds01.interface", "ds01.created_at", "ds01.workspace", "ds01.gpu.slots", "ds01.gpu.uuids",
          "ds01.gpu.gpueq")  # fmt: skip


def make_container(
    api, image: str, name: str, *, uid: int, gid: int, owner: str, managed: bool = True
) -> str:
    """A running container labelled as ds01d labels one (or, `managed=False`, one ds01 did not make): for
    owners ds01d never makes containers for (root), made directly in the engine as an admin could."""
    labels = {k: "" for k in LABELS}
    labels.update({"ds01.user": owner, "ds01.uid": str(uid), "ds01.project": name.split("._.")[0]})
    if managed:
        labels["ds01.managed"] = "true"
    created = api.create_container(
        image, ["sleep", "infinity"], name=name, labels=labels if managed else {}, user=f"{uid}:{gid}",
        working_dir="/workspace", host_config=api.create_host_config(network_mode="none", init=True),
    )  # fmt: skip
    api.start(created["Id"])
    return str(created["Id"])


def exec_ids(api, ref: str) -> list[str]:
    return list(api.inspect_container(ref).get("ExecIDs") or [])


def as_root(*argv: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    exe = str(users.bin_dir() / argv[0])
    return subprocess.run([exe, *argv[1:]], input=input, capture_output=True, text=True, timeout=120)


@pytest.fixture
def world(ds01_home, engine_clean, unix_users, base_image_ref):
    alice = unix_users["alice"]
    for verb in (("container-create", "thesis", "--image", base_image_ref), ("container-start", "thesis")):
        assert run_as(alice, *verb).returncode == 0
    ref = engine_clean.api.inspect_container(f"thesis._.{alice.uid}")["Id"]
    return ds01_home, engine_clean.api, alice, unix_users["bob"], ref


def test_another_users_container_is_refused_and_no_exec_is_created(world):
    _home, api, alice, bob, ref = world
    for args, code in (
        ((f"thesis._.{alice.uid}", "--", "id", "-u"), 5),  # alice's, named in full
        ((ref[:12], "--", "id", "-u"), 5),  # alice's, by id
        (("thesis", "--", "id", "-u"), 3),  # bob has no thesis
        (("--user", alice.name, "thesis", "--", "id", "-u"), 5),  # acting for alice: admins only
    ):
        result = run_as(bob, "container-run", *args)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert result.stdout == "" and "Traceback" not in result.stderr
    assert run_as(bob, "container-attach", f"thesis._.{alice.uid}").returncode == 5
    assert exec_ids(api, ref) == []  # nothing ran in alice's container


def _session_of(user: users.TestUser, api, ref: str) -> tuple[subprocess.Popen[str], str]:
    """`user` keeps a session open (`sleep`); its exec id as the engine knows it."""
    proc = subprocess.Popen(
        ["runuser", "-u", user.name, "--", "env", "-i", f"DS01_SOCKET={os.environ['DS01_SOCKET']}",
         str(users.bin_dir() / "container-run"), "thesis", "--", "sleep", "30"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not exec_ids(api, ref):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    return proc, exec_ids(api, ref)[0]


def test_a_session_answers_only_its_opener(world):
    home, api, alice, bob, ref = world
    proc, exec_id = _session_of(alice, api, ref)
    try:
        mine = request(alice, home.socket, "GET", f"/v1/exec/{exec_id}")
        assert mine.result == {"running": True, "exit_code": None}, mine.lines
        assert request(alice, home.socket, "POST", f"/v1/exec/{exec_id}/resize",
                       {"height": 30, "width": 90}).exit_code == 0  # fmt: skip
        for who in (bob, None):  # another user, and even root: a session is its opener's alone
            assert request(who, home.socket, "GET", f"/v1/exec/{exec_id}").exit_code == 3
            answer = request(
                who, home.socket, "POST", f"/v1/exec/{exec_id}/resize", {"height": 5, "width": 5}
            )
            assert answer.exit_code == 3, answer.lines
        assert request(bob, home.socket, "GET", "/v1/exec/" + "0" * 64).exit_code == 3  # as for a missing one
        bad = request(alice, home.socket, "POST", f"/v1/exec/{exec_id}/resize", {"height": 0, "width": 99999})
        assert bad.exit_code == 2
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_an_admin_enters_a_users_container_as_that_user_never_as_root(world, unix_users):
    home, api, alice, _bob, ref = world
    carol = unix_users["carol"]
    home.reconfigure(groups={"admin": {"members": [carol.name], "admin": True}})
    for who in (None, carol):  # root running the command, and a ds01 admin
        for args in (("--user", alice.name, "thesis"), (f"thesis._.{alice.uid}",)):
            argv = ("container-run", *args, "--", "sh", "-c", "id -u; id -g")
            result = as_root(*argv) if who is None else run_as(who, *argv)
            assert result.returncode == 0, result.stderr
            assert result.stdout.split() == [str(alice.uid), str(alice.gid)]
        refused = ("container-run", "--user", "root", "thesis", "--", "id", "-u")
        assert (as_root(*refused) if who is None else run_as(who, *refused)).returncode == 5
    assert exec_ids(api, ref) == []


def test_no_session_runs_as_root_or_in_a_container_ds01_did_not_make(world, base_image_ref):
    _home, api, _alice, _bob, _ref = world
    rootish = make_container(api, base_image_ref, "rooty._.0", uid=0, gid=0, owner="root")
    foreign = make_container(api, base_image_ref, "foreign", uid=0, gid=0, owner="root", managed=False)
    for ref in (rootish, foreign):
        result = as_root("container-run", ref[:12], "--", "id", "-u")
        assert result.returncode == 5, (result.stdout, result.stderr)
        assert result.stdout == ""
        assert exec_ids(api, ref) == []


_STREAM = r"""
import json, socket, sys, time
from ds01.client import Client, path_of
cmd = json.loads(sys.argv[1])
body = {"cmd": cmd, "tty": False, "stdin": True}
stream, result = Client().exec_stream(path_of("containers", "thesis", "exec"), body)
ask = b"GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\n\r\n"
stream.sendall(ask)
if cmd == ["cat"]:
    stream.shutdown(socket.SHUT_WR)
got = b""
while chunk := stream.recv(65536):
    got += chunk
time.sleep(0.5)
try:
    stream.sendall(ask)  # after the session: is anyone left to answer?
    stream.settimeout(3)
    after = stream.recv(65536)
except OSError as exc:
    after = repr(exc).encode()
print(json.dumps({"during": got.decode("latin-1"), "after": after.decode("latin-1")}))
"""


def test_the_passed_stream_reaches_the_session_only_never_the_engine_api(world):
    _home, _api, alice, _bob, _ref = world
    argv = ["runuser", "-u", alice.name, "--", "env", "-i", f"DS01_SOCKET={os.environ['DS01_SOCKET']}",
            sys.executable, "-c", _STREAM]  # fmt: skip
    # cat: what is written goes to the command's stdin and comes back as its framed stdout
    cat = json.loads(subprocess.run([*argv, '["cat"]'], capture_output=True, text=True, check=True,
                                    timeout=60).stdout)  # fmt: skip
    assert cat["during"].startswith("\x01\x00\x00\x00") and "GET /v1.41/containers/json" in cat["during"]
    assert "HTTP/1.1 200" not in cat["during"] and "HTTP/" not in cat["after"]
    # true: the session ends at once; the request written then gets nothing back
    true = json.loads(subprocess.run([*argv, '["true"]'], capture_output=True, text=True, check=True,
                                     timeout=60).stdout)  # fmt: skip
    assert "HTTP/" not in true["during"] and "HTTP/" not in true["after"]
    assert "Id" not in true["after"] and "Id" not in cat["after"]


def _fds(pid: int) -> list[str]:
    """The files ds01d holds, but sockets (the engine connection pool varies from request to request)."""
    names = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            names.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:  # closed between the listing and the read
            continue
    return sorted(n for n in names if not n.startswith("socket:"))


def test_a_client_killed_half_way_leaves_nothing_running(world):
    home, api, alice, _bob, ref = world
    assert run_as(alice, "container-run", "thesis", "--", "true").returncode == 0  # ds01d warmed up
    time.sleep(0.5)
    before = _fds(home.server.pid)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        ["runuser", "-u", alice.name, "--", "env", "-i", f"DS01_SOCKET={home.socket}",
         str(users.bin_dir() / "container-run"), "thesis", "--", "sh", "-c", "echo ready; sleep 300"],
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    out, deadline = b"", time.monotonic() + 20
    while b"ready" not in out and time.monotonic() < deadline:
        out += os.read(master, 4096)
    assert b"ready" in out, out
    assert any("sleep 300" in " ".join(p) for p in api.top(ref, ps_args="-eo pid,args")["Processes"])
    os.killpg(proc.pid, signal.SIGKILL)  # the client dies mid-session
    proc.wait()
    os.close(master)
    deadline = time.monotonic() + 15
    while any("sleep 300" in " ".join(p) for p in api.top(ref, ps_args="-eo pid,args")["Processes"]):
        assert time.monotonic() < deadline, "the session's command outlived its client"
        time.sleep(0.2)
    # ds01d keeps nothing of the session: no watch on the client left, no file it did not have before
    # (its sockets to the engine are its connection pool, reused from request to request)
    deadline = time.monotonic() + 5
    while _fds(home.server.pid) != before:
        assert time.monotonic() < deadline, (before, _fds(home.server.pid))
        time.sleep(0.1)
    assert exec_ids(api, ref) == []  # the engine lists no live exec in the container
    assert run_as(alice, "container-run", "thesis", "--", "true").returncode == 0  # and still serves


_BAD = r"""
import sys
from ds01.client import Client, path_of
from ds01.errors import Ds01Error
try:
    Client().exec_stream(path_of("containers", "thesis", "exec"), {"cmd": "id", "tty": "yes"})
except Ds01Error as err:
    print(int(err.exit_code), err.message)
"""


def test_a_malformed_request_is_refused_before_anything_runs(world):
    _home, api, alice, _bob, ref = world
    argv = ["runuser", "-u", alice.name, "--", "env", "-i", f"DS01_SOCKET={os.environ['DS01_SOCKET']}",
            sys.executable, "-c", _BAD]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("2 ") and "cmd" in out.stdout, (out.stdout, out.stderr)
    assert exec_ids(api, ref) == []
