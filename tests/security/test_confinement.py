"""Confinement through the real ds01d and engine: builds (F6), users' networks (F8), build contexts (F10).

F6: a build's RUN steps run with the owner's CPU, memory and pids limits and no network, are stopped at
`images.build_timeout_m`, run one at a time per user, and never carry root's registry credentials.
F8: with `containers.network: per-user`, a user's own containers reach each other and another user's
container cannot fetch a file from them (the reproduction: an http server in the victim's container). These
run on a second private engine that keeps its bridges apart with iptables, as a lab server's dockerd does;
its rules live in the engine's own network namespace, and the host's are checked unchanged.
F10: a build context over `images.max_context_mb` is refused with the reason, and ds01d never reads more
than the cap (an announced huge upload is answered at once).
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import base_image, engine
from harness.users import TestUser, bin_dir, ok, run_as

pytestmark = pytest.mark.docker

BUSYBOX = base_image.BASE_IMAGE


def project(user: TestUser, name: str, dockerfile: str, extra: dict[str, bytes] | None = None) -> Path:
    """A folder in the user's home (theirs) with a Dockerfile and any extra files."""
    path = user.home / f"ds01-conf-{name}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    (path / "Dockerfile").write_text(dockerfile)
    for rel, data in (extra or {}).items():
        (path / rel).write_bytes(data)
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(path)], check=True)
    return path


def build(user: TestUser, name: str, dockerfile: str, **kw: object) -> subprocess.CompletedProcess[str]:
    src = project(user, name, dockerfile, kw.pop("extra", None))  # type: ignore[arg-type]
    return run_as(user, "image-create", name, "--dockerfile", str(src / "Dockerfile"), **kw)  # type: ignore[arg-type]


@pytest.fixture
def folders(unix_users) -> Iterator[None]:
    yield
    for user in unix_users.values():
        for p in user.home.glob("ds01-conf-*"):
            shutil.rmtree(p, ignore_errors=True)


def image_file(client: object, image: str, path: str) -> str:
    out = client.containers.run(image, ["cat", path], remove=True, network_mode="none")  # type: ignore[attr-defined]
    return out.decode()


def limited(ds01_home, user: TestUser, **limits: object) -> None:
    ds01_home.reconfigure(user_overrides={user.name: limits})


# -- F6: builds ---------------------------------------------------------------------------------------------

PROBE = """FROM {base}
RUN (cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes \\
     /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null || \\
     cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max) > /limits \\
 && ls /sys/class/net > /links && tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /netdev \\
 && i=0 && while [ $i -lt 40 ]; do sleep 1 & i=$((i+1)); done && wait && echo forked > /forks
"""


def test_a_build_step_has_the_owners_limits_and_no_network(ds01_home, engine_clean, unix_users, folders):
    alice = unix_users["alice"]
    limited(ds01_home, alice, max_cpus=0.5, memory="96m", memory_swap="96m", pids_limit=200)
    ok(build(alice, "probe", PROBE.format(base=BUSYBOX)))
    image = f"ds01-{alice.uid}/probe:latest"
    values = image_file(engine_clean, image, "/limits").split()
    assert values[:4] == [str(96 << 20), str(96 << 20), "50000", "100000"], values
    assert image_file(engine_clean, image, "/links").split() == ["lo"]
    assert image_file(engine_clean, image, "/netdev").split() == ["lo"]
    assert image_file(engine_clean, image, "/forks").strip() == "forked"  # 40 processes fit in 200
    # the build's cgroup is gone with the build
    assert not any(Path("/sys/fs/cgroup").glob(f"*/ds01-build/u{alice.uid}.{ds01_home.server.pid}"))


def test_a_build_step_over_the_pids_limit_fails(ds01_home, engine_clean, unix_users, folders):
    alice = unix_users["alice"]
    limited(ds01_home, alice, pids_limit=16)
    result = build(alice, "forks", PROBE.format(base=BUSYBOX))
    assert result.returncode == 1, result.stderr
    assert "can't fork" in result.stderr or "Resource temporarily unavailable" in result.stderr, result.stderr
    assert engine_clean.api.images(name=f"ds01-{alice.uid}/forks") == []


def test_a_build_step_over_the_memory_limit_is_killed(ds01_home, engine_clean, unix_users, folders):
    alice = unix_users["alice"]
    limited(ds01_home, alice, memory="64m", memory_swap="64m")
    dockerfile = f"FROM {BUSYBOX}\nRUN dd if=/dev/zero of=/dev/null bs=200M count=1\n"
    result = build(alice, "hog", dockerfile)
    assert result.returncode == 1, result.stderr
    assert "137" in result.stderr and "64 MiB" in result.stderr and "memory" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert engine_clean.api.images(name=f"ds01-{alice.uid}/hog") == []


def test_a_build_over_its_time_is_stopped_with_the_reason(ds01_home, engine_clean, unix_users, folders):
    alice = unix_users["alice"]
    ds01_home.reconfigure(images={"build_timeout_m": 0.1})
    started = time.monotonic()
    result = build(alice, "slow", f"FROM {BUSYBOX}\nRUN sleep 120\n")
    took = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert "ran over 0.1 min (images.build_timeout_m)" in result.stderr, result.stderr
    assert took < 30, took
    # the engine cancelled the build: its step's container is killed and removed
    deadline = time.monotonic() + 10
    while engine_clean.api.containers(all=True) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert engine_clean.api.containers(all=True) == []
    assert engine_clean.api.images(name=f"ds01-{alice.uid}/slow") == []
    pid = ds01_home.server.pid
    assert not any(Path("/sys/fs/cgroup").glob(f"*/ds01-build/u{alice.uid}.{pid}")), (
        "the build's cgroup stayed"
    )


def test_one_build_per_user_at_a_time_others_unaffected(ds01_home, engine_clean, unix_users, folders):
    alice, bob = unix_users["alice"], unix_users["bob"]
    src = project(alice, "first", f"FROM {BUSYBOX}\nRUN sleep 6\n")
    first = subprocess.Popen(
        ["runuser", "-u", alice.name, "--", "env", f"DS01_SOCKET={ds01_home.socket}", "PATH=/usr/bin:/bin",
         str(bin_dir() / "image-create"), "first", "--dockerfile",
         str(src / "Dockerfile")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not engine_clean.api.containers() and time.monotonic() < deadline:
            time.sleep(0.1)  # the first build's RUN step is running
        assert engine_clean.api.containers(), "the first build never reached its RUN step"
        second = build(alice, "second", f"FROM {BUSYBOX}\nRUN true\n")
        assert second.returncode == 4, second.stderr
        assert "already has a build running" in second.stderr
        other = build(bob, "other", f"FROM {BUSYBOX}\nRUN echo bob > /who\n")
        ok(other)
        assert first.poll() is None, "bob's build should have run while alice's first was still going"
    finally:
        _out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert engine_clean.api.images(name=f"ds01-{alice.uid}/second") == []
    # the lock is released: alice builds again
    ok(build(alice, "second", f"FROM {BUSYBOX}\nRUN true\n"))


class RecordingProxy:
    """A Unix-socket relay to the engine that keeps every byte ds01d sends it."""

    def __init__(self, target: Path, path: Path) -> None:
        self.target, self.path, self.sent = target, path, bytearray()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(str(self.target))
            threading.Thread(target=self._pump, args=(conn, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, conn, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if record and len(self.sent) < 64 << 20:
                    self.sent += data
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.server.close()


def test_a_build_never_carries_roots_registry_credentials(
    ds01_home, docker_engine, engine_clean, unix_users, folders
):
    alice = unix_users["alice"]
    home = Path(ds01_home) / "roothome"
    (home / ".docker").mkdir(parents=True)
    secret = base64.b64encode(b"root:hunter2-registry").decode()
    config = {
        "auths": {"https://index.docker.io/v1/": {"auth": secret}, "registry.lab:5000": {"auth": secret}},
        "HttpHeaders": {"X-Leak": "root-http-header"},
    }
    (home / ".docker" / "config.json").write_text(json.dumps(config))
    proxy = RecordingProxy(docker_engine.socket, Path(ds01_home) / "engine-proxy.sock")
    try:
        ds01_home.restart(HOME=str(home), DOCKER_HOST=f"unix://{proxy.path}")
        ok(build(alice, "creds", f"FROM {BUSYBOX}\nRUN true\n"))
    finally:
        proxy.close()
    sent = bytes(proxy.sent)
    head = sent[sent.index(b"POST /v1.41/build") :].split(b"\r\n\r\n", 1)[0]  # the build went through
    assert b"networkmode=none" in head
    assert b"X-Registry" not in head and b"X-Leak" not in head
    assert secret.encode() not in sent and b"hunter2" not in sent and b"root-http-header" not in sent


# -- F10: the build context's cap ---------------------------------------------------------------------------


def test_a_context_over_the_configured_cap_is_refused(ds01_home, engine_clean, unix_users, folders):
    alice = unix_users["alice"]
    ds01_home.reconfigure(images={"max_context_mb": 0.05})
    extra = {"weights.bin": b"\x01" * (200 << 10)}
    result = build(alice, "big", f"FROM {BUSYBOX}\nCOPY weights.bin /\n", extra=extra)
    assert result.returncode == 2, result.stderr
    assert "over the 51.2 KiB ds01d accepts (images.max_context_mb)" in result.stderr, result.stderr
    assert engine_clean.api.images(name=f"ds01-{alice.uid}/big") == []
    ok(build(alice, "small", f"FROM {BUSYBOX}\nRUN true\n"))  # under the cap: built


def test_an_announced_huge_upload_is_answered_at_once(ds01_home, unix_users):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(ds01_home.socket))
    body = json.dumps({"name": "huge"})
    head = (
        "POST /v1/images/build HTTP/1.1\r\nHost: ds01d\r\nConnection: close\r\n"
        f"Content-Type: application/x-tar\r\nX-Ds01-Body: {body}\r\nContent-Length: {1 << 50}\r\n\r\n"
    )
    started = time.monotonic()
    sock.sendall(head.encode() + b"\0" * 4096)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    sock.close()
    assert time.monotonic() - started < 5
    assert b'"exit_code":2' in data and b"images.max_context_mb" in data, data[-400:]
    ok(run_as(unix_users["alice"], "image-list", "--json"))  # ds01d still serves


# -- F8: per-user networks (an engine whose bridges are kept apart, as on a lab server) -----------------


@pytest.fixture(scope="module")
def bridge_engine() -> Iterator[engine.Engine]:
    before = _host_network_state()
    eng = engine.start_engine(iptables=True)
    base_image.import_base_image(eng.host)
    yield eng
    engine.stop_engine(eng)
    assert _host_network_state() == before, "the host's links or iptables rules changed"


def _host_network_state() -> tuple[str, ...]:
    out = []
    for argv in (["ip", "-o", "link"], ["iptables-save"], ["iptables-legacy-save"]):
        with contextlib.suppress(FileNotFoundError):
            text = subprocess.run(argv, capture_output=True, text=True).stdout
            out.append("\n".join(line for line in text.splitlines() if not line.startswith("#")))
    # veth/bridge counters differ; names, flags and rules must not
    return tuple(out)


@pytest.fixture
def on_bridges(ds01_home, bridge_engine) -> Iterator[object]:
    """ds01d on the bridge engine with `containers.network: per-user`; the engine emptied afterwards."""
    import docker

    ds01_home.reconfigure(containers={"network": "per-user", "init": True, "env": {}})
    ds01_home.restart(DOCKER_HOST=bridge_engine.host)
    client = docker.DockerClient(base_url=bridge_engine.host, version="1.41")
    yield client
    for c in client.api.containers(all=True):
        client.api.remove_container(c["Id"], force=True)
    for n in client.api.networks():
        if n["Name"].startswith("ds01-"):
            client.api.remove_network(n["Id"])
    client.close()


def _create(user: TestUser, name: str, *command: str) -> None:
    args = ["container-create", name, "--image", BUSYBOX]
    if command:
        args += ["--command", " ".join(command)]
    ok(run_as(user, *args))
    ok(run_as(user, "container-start", name))


def _ip(client: object, user: TestUser, name: str) -> str:
    raw = client.api.inspect_container(f"{name}._.{user.uid}")  # type: ignore[attr-defined]
    nets = raw["NetworkSettings"]["Networks"]
    assert list(nets) == [f"ds01-u{user.uid}"], nets
    return str(nets[f"ds01-u{user.uid}"]["IPAddress"])


def _fetch(client: object, user: TestUser, name: str, host: str) -> str:
    """What `name` (a container of `user`) gets from http://HOST:8000/secret.env (nc gives up after 3 s)."""
    cmd = f"printf 'GET /secret.env HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} 8000"
    api = client.api  # type: ignore[attr-defined]
    exec_id = api.exec_create(f"{name}._.{user.uid}", ["sh", "-c", cmd])["Id"]
    return bytes(api.exec_start(exec_id)).decode(errors="replace")


def _serve_secret(ds01_home, user: TestUser, name: str, secret: str) -> None:
    ws = Path(ds01_home) / "ws" / user.name / name
    (ws / "secret.env").write_text(secret)
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(ws / "secret.env")], check=True)


def test_own_containers_reach_each_other_other_users_do_not(ds01_home, on_bridges, unix_users):
    client = on_bridges
    alice, bob = unix_users["alice"], unix_users["bob"]
    _create(alice, "web", "httpd", "-f", "-p", "8000", "-h", "/workspace")
    _serve_secret(ds01_home, alice, "web", "API_KEY=alice-7f3a\n")
    _create(alice, "mate")
    _create(bob, "probe")
    net = client.api.inspect_network(f"ds01-u{alice.uid}")
    assert net["Labels"]["ds01.managed"] == "true" and net["Labels"]["ds01.uid"] == str(alice.uid)
    assert net["Options"].get("com.docker.network.bridge.enable_icc", "true") == "true"
    ip = _ip(client, alice, "web")
    _ip(client, bob, "probe")
    # alice's own container fetches the file, by address and by name
    assert "API_KEY=alice-7f3a" in _fetch(client, alice, "mate", ip)
    assert "API_KEY=alice-7f3a" in _fetch(client, alice, "mate", f"web._.{alice.uid}")
    # F8: bob's container cannot
    assert "alice-7f3a" not in _fetch(client, bob, "probe", ip)
    assert "alice-7f3a" not in _fetch(client, bob, "probe", f"web._.{alice.uid}")


def test_a_squatted_network_name_falls_back_to_none_with_a_notice(ds01_home, on_bridges, unix_users):
    client = on_bridges
    carol = unix_users["carol"]
    client.api.create_network(f"ds01-u{carol.uid}", driver="bridge")  # not made by ds01 (no labels)
    result = ok(run_as(carol, "container-create", "lone", "--image", BUSYBOX))
    assert "no per-user network" in result.stderr + result.stdout
    raw = client.api.inspect_container(f"lone._.{carol.uid}")
    assert raw["HostConfig"]["NetworkMode"] == "none"


# -- the config keys -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        (
            {"containers": {"network": "host"}},
            "containers.network: 'host' is not one of per-user, bridge, none",
        ),
        (
            {"images": {"build_network": "host"}},
            "images.build_network: 'host' is not one of none, bridge, per-user",
        ),
        ({"images": {"build_timeout_m": 0}}, "images.build_timeout_m: must be more than 0"),
        ({"images": {"max_context_mb": -1}}, "images.max_context_mb: must not be negative"),
        ({"images": {"build_timeout_m": "1h"}}, "images.build_timeout_m: expected a number"),
    ],
)
def test_confinement_settings_are_checked(tmp_path, section, problem):
    from ds01.config import load_config
    from ds01.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        load_config(shipped_with(tmp_path, **section))
    assert problem in str(err.value)


def shipped_with(tmp_path: Path, **sections: dict[str, object]) -> Path:
    """The shipped config with some sections' keys changed."""
    import yaml

    data = yaml.safe_load(SHIPPED.read_text())
    for key, value in sections.items():
        data[key] = {**(data.get(key) or {}), **value}
    path = tmp_path / "resource-limits.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


SHIPPED = Path(__file__).resolve().parents[2] / "config" / "resource-limits.yaml"


def test_confinement_defaults_and_fractions(tmp_path):
    from ds01.config import ImageSettings, load_config

    shipped = load_config(SHIPPED)
    assert shipped.containers.network == "per-user"
    assert shipped.images.effective_build_network() == "none"
    assert shipped.images.max_context_bytes == 4 << 30
    assert load_config(shipped_with(tmp_path, images={"build_timeout_m": 0.1})).images.build_timeout_m == 0.1
    assert ImageSettings(http_proxy="http://proxy:3128").effective_build_network() == "per-user"
    assert ImageSettings(build_network="bridge").effective_build_network() == "bridge"


def test_a_configured_build_network_is_the_owners_own(ds01_home, on_bridges, unix_users, folders):
    client = on_bridges
    alice = unix_users["alice"]
    ds01_home.reconfigure(
        containers={"network": "per-user", "init": True, "env": {}}, images={"build_network": "per-user"}
    )
    ok(build(alice, "online", f"FROM {BUSYBOX}\nRUN ls /sys/class/net > /links\n"))
    image = f"ds01-{alice.uid}/online:latest"
    assert image_file(client, image, "/links").split() == ["eth0", "lo"]
    assert client.api.inspect_network(f"ds01-u{alice.uid}")["Labels"]["ds01.uid"] == str(alice.uid)
