"""`image-push` to a real registry with the user's own login, and `image-save` + `docker load`.

The registry is Debian's `docker-registry` with an htpasswd (bcrypt) login, on 127.0.0.1 inside the private
engine's network namespace: a push that succeeds proves the user's `~/.docker/config.json` login was sent,
a wrong one is refused, and the pushed image is pulled back through the engine and checked.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from ds01.events import read_events
from harness import registry
from harness.users import KEEP_ENV, TestUser, bin_dir, ok, run_as

pytestmark = pytest.mark.docker

PASSWORD = "s3cret-pw-9d41c7"
MARKER = "model-weights-4b2e"
DOCKER_CLI = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"  # docker.io's CLI
DOCKERFILE = (
    f'FROM ds01-test/busybox:latest\nLABEL org.example.marker="{MARKER}"\nRUN echo {MARKER} > /marker\n'
)


def write_docker_config(user: TestUser, data: dict[str, object]) -> Path:
    folder = user.home / ".docker"
    folder.mkdir(exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(data))
    for p in (folder, path):
        os.chown(p, user.uid, user.gid)
    path.chmod(0o600)
    return path


def login(address: str, user: str, password: str) -> dict[str, object]:
    return {"auths": {address: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}


@pytest.fixture(scope="module")
def reg(docker_engine) -> Iterator[registry.Registry]:
    assert docker_engine.netns, "the private engine has its own network namespace"
    with registry.running(docker_engine.netns, "erin-ci", PASSWORD) as r:
        yield r


@pytest.fixture
def erin(unix_users) -> Iterator[TestUser]:
    user = unix_users["erin"]
    yield user
    shutil.rmtree(user.home / ".docker", ignore_errors=True)
    for p in user.home.glob("ds01-xfer-*"):
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


@pytest.fixture
def model(ds01_home, engine_clean, erin) -> str:
    folder = erin.home / "ds01-xfer-src"
    folder.mkdir(exist_ok=True)
    src = folder / "Dockerfile"
    src.write_text(DOCKERFILE)
    for p in (folder, src):
        os.chown(p, erin.uid, erin.gid)
    ok(run_as(erin, "image-create", "model", "--dockerfile", str(src)))
    return f"ds01-{erin.uid}/model:latest"


def secret_anywhere(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if PASSWORD.encode() in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


def test_push_uses_the_users_login_and_the_image_comes_back(ds01_home, engine_clean, erin, model, reg):
    write_docker_config(erin, login(reg.address, reg.username, PASSWORD))
    target = f"{reg.address}/lab/model:v1"
    result = ok(run_as(erin, "image-push", "model", target, "--json"))
    payload = json.loads(result.stdout)
    assert payload["image"] == model and payload["target"] == target
    assert payload["digest"].startswith("sha256:") and payload["layers"] >= 1

    # the temporary tag is gone; the user's own image is untouched
    with pytest.raises(docker.errors.ImageNotFound):
        engine_clean.images.get(target)
    original = engine_clean.images.get(model)

    # the registry has it: pull back through the engine (with the login) and check label and content
    engine_clean.images.remove(original.id, force=True)
    pulled = engine_clean.images.pull(
        f"{reg.address}/lab/model", tag="v1", auth_config={"username": reg.username, "password": PASSWORD}
    )
    assert pulled.id == original.id
    assert pulled.labels["org.example.marker"] == MARKER and pulled.labels["ds01.uid"] == str(erin.uid)
    out = engine_clean.containers.run(pulled.id, ["cat", "/marker"], remove=True, network_mode="none")
    assert out.decode().strip() == MARKER

    # ds01d kept the login nowhere: not in its log, events or state
    assert secret_anywhere(ds01_home / "log") == [] and secret_anywhere(ds01_home / "state") == []
    assert PASSWORD not in ds01_home.server.log_text()
    pushes = [e for e in read_events(ds01_home / "log") if e["event_type"] == "image_push"]
    assert pushes and pushes[-1]["user"] == erin.name and pushes[-1]["details"]["target"] == target


def test_push_progress_is_shown_per_layer(ds01_home, engine_clean, erin, model, reg):
    write_docker_config(erin, login(reg.address, reg.username, PASSWORD))
    result = ok(run_as(erin, "image-push", "model", f"{reg.address}/lab/model:progress"))
    assert "Pushed" in result.stderr or "Layer already exists" in result.stderr
    assert "pushed " + model in result.stdout


def test_a_wrong_login_is_refused_in_one_line_and_nothing_is_left(ds01_home, engine_clean, erin, model, reg):
    write_docker_config(erin, login(reg.address, reg.username, "wrong-password"))
    target = f"{reg.address}/lab/model:bad"
    result = run_as(erin, "image-push", "model", target)
    assert result.returncode == 5, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "refused" in lines[0] and "Traceback" not in result.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        engine_clean.images.get(target)
    for folder in ("log", "state"):
        assert not any(
            b"wrong-password" in p.read_bytes() for p in (ds01_home / folder).rglob("*") if p.is_file()
        )
    with pytest.raises(docker.errors.APIError):
        engine_clean.images.pull(
            f"{reg.address}/lab/model",
            tag="bad",
            auth_config={"username": reg.username, "password": PASSWORD},
        )

    # no login at all: the registry refuses too
    shutil.rmtree(erin.home / ".docker")
    assert run_as(erin, "image-push", "model", target).returncode == 5

    # the same push with --password-stdin works
    ok(run_as(erin, "image-push", "model", target, "--username", reg.username, "--password-stdin",
              input=PASSWORD + "\n"))  # fmt: skip


def test_a_credential_helper_is_named_in_the_error(ds01_home, engine_clean, erin, model):
    write_docker_config(erin, {"auths": {"127.0.0.1:5000": {}}, "credsStore": "desktop"})
    result = run_as(erin, "image-push", "model", "127.0.0.1:5000/lab/model")
    assert result.returncode == 2
    assert "credential helper 'desktop'" in result.stderr and "--password-stdin" in result.stderr


def test_bad_targets_are_usage_errors(ds01_home, engine_clean, erin, model, base_image_ref):
    base_id = engine_clean.images.get(base_image_ref).id
    for target in ("UPPER/Case", "reg.example.org/x@sha256:abc", "reg.example.org/", base_image_ref):
        result = run_as(erin, "image-push", "model", target)
        assert result.returncode == 2, (target, result.stderr)
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert engine_clean.images.get(base_image_ref).id == base_id  # the lab base kept its name


def test_save_writes_the_users_file_and_docker_load_reads_it(
    ds01_home, engine_clean, erin, model, docker_engine
):
    tar = erin.home / "ds01-xfer-model.tar"
    result = ok(run_as(erin, "image-save", "model", "-o", str(tar), "--json"))
    payload = json.loads(result.stdout)
    assert (
        payload["image"] == model and payload["file"] == str(tar) and payload["bytes"] == tar.stat().st_size
    )
    assert tar.stat().st_uid == erin.uid and tar.stat().st_gid == erin.gid
    assert not list(erin.home.glob(".ds01-xfer-model.tar.part-*"))

    # an existing file is kept unless --force
    before = tar.stat()
    again = run_as(erin, "image-save", "model", "-o", str(tar))
    assert again.returncode == 1 and "already exists" in again.stderr and "--force" in again.stderr
    assert tar.stat().st_mtime_ns == before.st_mtime_ns
    ok(run_as(erin, "image-save", "model", "-o", str(tar), "--force"))
    assert tar.stat().st_uid == erin.uid

    # `docker load` (the docker CLI, on the private engine) brings the image back
    original = engine_clean.images.get(model).id
    engine_clean.images.remove(original, force=True)
    loaded = subprocess.run(
        [DOCKER_CLI, "-H", docker_engine.host, "load", "-i", str(tar)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert model in loaded.stdout
    assert engine_clean.images.get(model).id == original


def test_save_to_stdout_for_a_pipe(ds01_home, engine_clean, erin, model):
    env = {k: v for k, v in os.environ.items() if k in KEEP_ENV or k in ("PATH", "LANG")}
    argv = ["runuser", "-u", erin.name, "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()],
            str(bin_dir() / "image-save"), "model", "-o", "-"]  # fmt: skip
    piped = subprocess.run(argv, capture_output=True, timeout=120, cwd="/")
    assert piped.returncode == 0, piped.stderr
    with tarfile.open(fileobj=io.BytesIO(piped.stdout)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == [model]


def test_save_of_a_missing_image_writes_nothing(ds01_home, engine_clean, erin):
    tar = erin.home / "ds01-xfer-none.tar"
    result = run_as(erin, "image-save", "nothing-here", "-o", str(tar))
    assert result.returncode == 3 and not tar.exists()
    assert not list(erin.home.glob(".ds01-xfer-none.tar.part-*"))
