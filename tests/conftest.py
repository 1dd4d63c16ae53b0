"""Fixtures: a private Docker engine, its busybox base image, a ds01 config in tmp, real Unix users."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import base_image, daemon, engine, slurm, users
from harness.config import write_config

ROOT = Path(__file__).resolve().parents[1]
REQUIRE_ENGINE = os.environ.get("CI") == "true" or os.environ.get("DS01_REQUIRE_DOCKER") == "1"


def _no_engine(reason: str) -> None:
    if REQUIRE_ENGINE:
        pytest.fail(f"the private Docker engine is required here (CI / DS01_REQUIRE_DOCKER=1): {reason}")
    pytest.skip(f"no private Docker engine: {reason}")


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[engine.Engine]:
    if os.geteuid() != 0:
        _no_engine("starting dockerd needs root")
    try:
        eng = engine.start_engine()
    except RuntimeError as exc:
        _no_engine(str(exc))
    os.environ["DOCKER_HOST"] = eng.host
    yield eng
    engine.stop_engine(eng)


@pytest.fixture(scope="session")
def base_image_ref(docker_engine: engine.Engine) -> str:
    return base_image.import_base_image(docker_engine.host)


@pytest.fixture(scope="session")
def engine_client(docker_engine: engine.Engine) -> Iterator[object]:
    import docker

    client = docker.DockerClient(base_url=docker_engine.host, version="1.41")
    yield client
    client.close()


class Ds01World(type(Path())):  # type: ignore[misc]
    """The tmp folder of one test's ds01 (config, socket, state, logs, workspaces), with its ds01d."""

    server: daemon.Ds01d

    @property
    def config(self) -> Path:
        return self / "resource-limits.yaml"

    @property
    def socket(self) -> Path:
        return self / "ds01.sock"

    def reconfigure(self, **sections: object) -> Path:
        """Rewrite the config; ds01d re-reads it before the next request."""
        path = write_config(self.config, Path(self), **sections)
        return path

    def restart(self, **env: str) -> daemon.Ds01d:
        daemon.stop_ds01d(self.server)
        self.server = daemon.start_ds01d(self.config, self.socket, env=_ds01d_env(env))
        return self.server


def _ds01d_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("DOCKER_HOST", "PATH", "LANG", "SLURM_CONF")}
    env.update(extra or {})
    return env


@pytest.fixture
def ds01_home(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ds01World]:
    """A private ds01 world in tmp, served by its own ds01d (as root) on its own socket.

    Made outside pytest's own tmp (mode 700) so that the test users can reach the socket. The state and
    log dirs are root-only, as on a lab server; the workspace root is root-owned.
    """
    if os.geteuid() != 0:
        _no_engine("ds01d runs as root")
    if request.node.get_closest_marker("docker"):
        request.getfixturevalue("docker_engine")  # ds01d needs DOCKER_HOST before it starts
    tmp_path = Ds01World(tempfile.mkdtemp(prefix="ds01h-", dir="/tmp"))
    tmp_path.chmod(0o755)
    for sub, mode in (("state", 0o700), ("log", 0o700), ("ws", 0o755), ("data", 0o755)):
        (tmp_path / sub).mkdir()
        (tmp_path / sub).chmod(mode)
    cfg = write_config(tmp_path.config, tmp_path)
    for var in ("DS01_CONFIG", "DS01_STATE_DIR", "DS01_LOG_DIR", "DS01_GPU_BACKEND", "DS01_GPU_INVENTORY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DS01_CONFIG", str(cfg))  # for in-process daemon-side code in tests
    monkeypatch.setenv("DS01_SOCKET", str(tmp_path.socket))
    monkeypatch.setenv("COLUMNS", "200")
    tmp_path.server = daemon.start_ds01d(cfg, tmp_path.socket, env=_ds01d_env())
    yield tmp_path
    daemon.stop_ds01d(tmp_path.server)
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def engine_clean(
    docker_engine: engine.Engine, base_image_ref: str, engine_client: object
) -> Iterator[object]:
    """The private engine, emptied of containers and non-base images after the test."""
    yield engine_client
    api = engine_client.api  # type: ignore[attr-defined]
    for c in api.containers(all=True):
        with contextlib.suppress(Exception):  # one may go by itself meanwhile (a build step's container)
            api.remove_container(c["Id"], force=True)
    for img in api.images():
        tags = img.get("RepoTags") or []
        if base_image.BASE_IMAGE not in tags:
            with contextlib.suppress(Exception):
                api.remove_image(img["Id"], force=True)
            continue
        for tag in tags:  # names a test gave the base image (ds01-<uid>/x, ds01/python:3.11) go too
            if tag != base_image.BASE_IMAGE:
                with contextlib.suppress(Exception):
                    api.remove_image(tag)


@pytest.fixture(scope="session")
def unix_users() -> dict[str, users.TestUser]:
    """Real Unix users (alice, bob, ...) in no special group, who run ds01's commands directly."""
    if os.geteuid() != 0:
        _no_engine("creating Unix users needs root")
    # DS01_TEST_USERS names another set (scripts/test runs the Slurm tests alongside the rest as ds01c-*,
    # so the two runs never share a home). The accounts stay (locked, no password): another run may use them.
    prefix = os.environ.get("DS01_TEST_USERS", "ds01t")
    return {n: users.ensure_user(f"{prefix}-{n}") for n in ("alice", "bob", "carol", "dave", "erin", "frank")}


def _slurm(accounting: bool) -> Iterator[slurm.Cluster]:
    if os.geteuid() != 0:
        _no_engine("a test Slurm cluster needs root")
    try:
        cluster = slurm.start_cluster(accounting=accounting)
    except RuntimeError as exc:
        if REQUIRE_ENGINE:
            pytest.fail(f"the test Slurm cluster is required here (CI / DS01_REQUIRE_DOCKER=1): {exc}")
        pytest.skip(f"no test Slurm cluster: {exc}")
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)  # for ds01d and Slurm commands the tests run
    yield cluster
    if previous is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = previous
    slurm.stop_cluster(cluster)


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[slurm.Cluster]:
    """A real one-node Slurm cluster (node ds01-n1 with GPUs 0-3; ds01-n2 declared and down). Module-scoped:
    one test cluster per host at a time (fixed ports, a host-wide lock), and it starts in a fraction of a
    second, so modules that want it with accounting (`slurm_accounting`) can follow."""
    yield from _slurm(accounting=False)


@pytest.fixture(scope="module")
def slurm_accounting() -> Iterator[slurm.Cluster]:
    """The same cluster with accounting: MariaDB and slurmdbd on 127.0.0.1 (sacctmgr works)."""
    yield from _slurm(accounting=True)
