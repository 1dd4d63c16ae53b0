"""Fixtures: a private Docker engine, its busybox base image, a ds01 config in tmp, real Unix users."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness import base_image, engine, users

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


def write_config(path: Path, tmp: Path, **sections: object) -> Path:
    """The shipped config, pointed into tmp, with network none (the private engine has no bridge)."""
    data = yaml.safe_load((ROOT / "config" / "resource-limits.yaml").read_text())
    data["paths"] = {
        "workspace_root": str(tmp / "ws" / "{user}"),
        "state_dir": str(tmp / "state"),
        "log_dir": str(tmp / "log"),
    }
    data["containers"] = {"network": "none", "init": True, "env": {}}
    data["gpu"] = {
        "backend": "simulated",
        "inventory": str(ROOT / "config" / "simulated-gpus.yaml"),
        "attach": "device-request",
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def ds01_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private ds01 world in tmp: config, state, logs and workspaces; no GPU library.

    Made outside pytest's own tmp (mode 700) so that the test users can read the config.
    """
    tmp_path = Path(tempfile.mkdtemp(prefix="ds01h-", dir="/tmp"))
    tmp_path.chmod(0o755)
    for sub in ("state", "log", "ws"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub).chmod(0o1777 if sub != "ws" else 0o755)
    cfg = write_config(tmp_path / "resource-limits.yaml", tmp_path)
    monkeypatch.setenv("DS01_CONFIG", str(cfg))
    for var in ("DS01_STATE_DIR", "DS01_LOG_DIR", "DS01_GPU_BACKEND", "DS01_GPU_INVENTORY", "SUDO_UID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def engine_clean(
    docker_engine: engine.Engine, base_image_ref: str, engine_client: object
) -> Iterator[object]:
    """The private engine, emptied of containers and non-base images after the test."""
    yield engine_client
    api = engine_client.api  # type: ignore[attr-defined]
    for c in api.containers(all=True):
        api.remove_container(c["Id"], force=True)
    for img in api.images():
        if base_image.BASE_IMAGE not in (img.get("RepoTags") or []):
            with contextlib.suppress(Exception):
                api.remove_image(img["Id"], force=True)


@pytest.fixture(scope="session")
def unix_users() -> Iterator[dict[str, users.TestUser]]:
    """Real Unix users (alice, bob, ...) who run ds01 through the lab's sudo rule."""
    if os.geteuid() != 0:
        _no_engine("creating Unix users needs root")
    if not shutil.which("sudo"):
        _no_engine("sudo is not installed (apt-get install sudo)")
    names = [f"ds01t-{n}" for n in ("alice", "bob", "carol", "dave", "erin", "frank")]
    made = {n.removeprefix("ds01t-"): users.ensure_user(n) for n in names}
    users.install_sudo_rule()
    yield made
    # The accounts stay (locked, no password, harmless without the rule): another test run may be using them.
    users.remove_sudo_rule()
