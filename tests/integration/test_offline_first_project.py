"""A first project on a server that cannot reach the container registry (the private engine has no network):
the wizards offer what can be built here, a base that cannot be had is said in plain words with nothing made,
a build that cannot reach PyPI says so, and a base that must be downloaded (from a real local registry in the
engine's network namespace) shows its progress."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import pytest

from harness import access_lab, base_image
from harness.base_image import PYTHON_BASE
from harness.tty import read_until, reap, spawn
from harness.users import ok, run_as, without_ds01_files

pytestmark = pytest.mark.docker
python_base = base_image.python_base  # the offline Python base, tagged
PYTORCH = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
access_image = access_lab.access_image  # Debian with python3 (no pip), imported with no registry


def image_tags(engine) -> set[str]:
    return {t for i in engine.images.list() for t in i.tags}


def test_the_bases_say_what_this_server_can_build(ds01_home, engine_clean, python_base, unix_users):
    started = time.monotonic()
    listed = json.loads(ok(run_as(unix_users["alice"], "ds01", "image", "bases", "--json")).stdout)
    seconds = time.monotonic() - started
    print(f"\nbases with an unreachable registry: {seconds:.2f} s (whole command)")
    assert seconds < 5  # the registry check is bounded (it fails at once here: no route, no DNS)
    bases = {b["image"]: b for b in listed["bases"]}
    assert bases[PYTHON_BASE]["present"] and bases[PYTHON_BASE]["size"] > 0
    assert bases[PYTHON_BASE]["buildable"] and bases[PYTHON_BASE]["registry"] == "local"
    assert not bases[PYTORCH]["present"] and bases[PYTORCH]["size"] is None
    assert bases[PYTORCH]["registry"] == "unreachable" and not bases[PYTORCH]["buildable"]
    assert bases[PYTORCH]["download_gb"] > 1
    assert listed["registries"] == {"registry-1.docker.io": "unreachable", "nvcr.io": "unreachable"}
    assert listed["bases"][0]["image"] == PYTHON_BASE  # what is here comes first
    assert listed["build_network"] == "none"
    shown = ok(run_as(unix_users["alice"], "ds01", "image", "bases")).stdout
    print(shown)
    assert "on this server" in shown and "cannot reach registry-1.docker.io" in shown


def test_an_explicit_framework_that_cannot_be_had_is_plain_words_and_makes_nothing(
    ds01_home, engine_clean, python_base, unix_users
):
    bob = unix_users["bob"]
    before = image_tags(engine_clean)
    result = run_as(bob, "project-init", "x", "--yes", "--framework", "pytorch")
    print(result.stderr)
    assert result.returncode == 1, result.stderr
    said = " ".join(result.stderr.split())
    assert (
        f"this server cannot reach the container registry (registry-1.docker.io) to download {PYTORCH}"
        in said
    )
    assert "ds01 image bases" in said and "--framework python" in said and "ds01 image build-base" in said
    assert "Traceback" not in result.stderr and "dial tcp" not in said
    assert not (ds01_home / "ws" / bob.name / "x").exists()
    assert image_tags(engine_clean) == before


def test_yes_takes_the_local_base_when_the_default_cannot_be_pulled(
    ds01_home, engine_clean, python_base, unix_users
):
    carol = unix_users["carol"]
    made = ok(run_as(carol, "project-init", "first", "--yes", "--no-git"))
    print(made.stderr)
    said = " ".join(made.stderr.split())
    assert f"cannot reach registry-1.docker.io to download {PYTORCH}, so the default is python" in said
    assert "so the default is custom: it downloads nothing" in said
    ws = ds01_home / "ws" / carol.name / "first"
    assert "FROM ds01/python:3.11" in (ws / "Dockerfile").read_text()
    launched = json.loads(ok(run_as(carol, "project-launch", "first", "--background", "--json")).stdout)
    assert launched["image_built"] is True and launched["status"] == "running"


# -- the wizard on a real terminal ------------------------------------------------------------------------


def _screen(fd: int, pattern: str, timeout: float = 90) -> str:
    return read_until(fd, pattern, timeout, strip=True, size=65536)


@pytest.fixture
def new_account(unix_users):
    """erin without ds01's files in her home; put back as it was afterwards."""
    with without_ds01_files(unix_users["erin"], "saved-by-offline-test") as erin:
        yield erin


def test_user_setup_on_a_terminal_offers_the_local_base_and_builds_the_first_project(
    ds01_home, engine_clean, python_base, new_account
):
    erin = new_account
    # the newcomer, on a real terminal, taking every default
    pid, fd = spawn(erin, "user-setup", env={"COLUMNS": "160", "LINES": "50"})
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))  # a wide terminal
    finished = False
    try:
        for question in ("SSH and VS Code", "git\\?", "Containers and GPUs"):
            _screen(fd, question)
            os.write(fd, b"\r")
        _screen(fd, "Create and launch a first project")
        os.write(fd, b"y")
        _screen(fd, "Name of your first project")
        os.write(fd, b"\r")
        menu = _screen(fd, "What kind of project")
        assert "so the default is custom: it downloads nothing" in " ".join(menu.split())
        os.write(fd, b"\r")
        menu = _screen(fd, r"Which framework[\s\S]*python[\s\S]*jax")
        flat = " ".join(menu.split())
        assert f"cannot reach registry-1.docker.io to download {PYTORCH}, so the default is python" in flat
        assert "Plain Python (on this server)" in flat
        assert "unavailable: this server cannot reach registry-1.docker.io" in flat
        os.write(fd, b"\r")
        _screen(fd, "One line about the project")
        os.write(fd, b"\r")
        _screen(fd, "Add VS Code settings")
        os.write(fd, b"\r")
        screen = _screen(fd, "Open a shell in it now", timeout=180)
        assert "built my-first-project" in screen
        os.write(fd, b"n\r")
        finished = True
    finally:
        code = reap(pid, fd, kill=not finished)
    assert code == 0
    ws = ds01_home / "ws" / erin.name / "my-first-project"
    assert "FROM ds01/python:3.11" in (ws / "Dockerfile").read_text()
    [container] = engine_clean.containers.list(filters={"label": f"ds01.uid={erin.uid}"})
    assert container.image.tags == [f"ds01-{erin.uid}/my-first-project:latest"]


def test_image_create_on_a_terminal_offers_what_this_server_can_build(
    ds01_home, engine_clean, python_base, unix_users
):
    """image-create asks its two questions with project-init's choices: the default framework gives way to
    the base on this server, one that cannot be had is shown and cannot be picked, and with no build network
    the type that downloads nothing is the default."""
    bob = unix_users["bob"]
    pid, fd = spawn(bob, "image-create", "offline-img", env={"COLUMNS": "160", "LINES": "50"})
    finished = False
    try:
        menu = " ".join(_screen(fd, r"framework should the image start from.*:").split())
        assert f"cannot reach registry-1.docker.io to download {PYTORCH}, so the default is python" in menu
        assert "python Plain Python (on this server)" in menu and "(python)" in menu  # Enter takes python
        assert "unavailable: this server cannot reach registry-1.docker.io" in menu
        os.write(fd, b"pytorch\r")  # greyed out: not one of the answers
        again = " ".join(_screen(fd, r"framework should the image start from.*:").split())
        assert "Please select one of the available options" in again
        os.write(fd, b"\r")
        menu = " ".join(_screen(fd, r"kind of project.*:").split())
        assert "so the default is custom: it downloads nothing" in menu and "(custom)" in menu
        os.write(fd, b"\r")
        _screen(fd, "built ds01-", timeout=180)
        finished = True
    finally:
        code = reap(pid, fd, kill=not finished)
    assert code == 0
    recipe = (ds01_home / "ws" / bob.name / "offline-img" / "Dockerfile").read_text()
    assert "FROM ds01/python:3.11" in recipe
    assert f"ds01-{bob.uid}/offline-img:latest" in image_tags(engine_clean)


# -- PyPI out of reach --------------------------------------------------------------------------------------


def test_a_pip_install_with_no_build_network_says_pypi_cannot_be_reached(
    ds01_home, engine_clean, access_image, unix_users
):
    """Debian's python3 (the access image) with a real pip copied into the context: pip runs for real."""
    import pip

    dave = unix_users["dave"]
    src = Path(tempfile.mkdtemp(prefix="ds01-pypi-", dir="/tmp"))
    try:
        shutil.copytree(Path(pip.__file__).parent, src / "pip", ignore=shutil.ignore_patterns("__pycache__"))
        (src / "Dockerfile").write_text(
            f"FROM {access_image}\nCOPY pip /opt/pylib/pip\n"
            "ENV PYTHONPATH=/opt/pylib PIP_BREAK_SYSTEM_PACKAGES=1\n"
            "RUN python3 -m pip install --no-cache-dir --retries 1 xgboost\n"
        )
        subprocess.run(["chown", "-R", f"{dave.uid}:{dave.gid}", str(src)], check=True)
        result = run_as(dave, "image-create", "pypi", "--dockerfile", str(src / "Dockerfile"), timeout=300)
    finally:
        shutil.rmtree(src, ignore_errors=True)
    said = " ".join(result.stderr.split())
    assert result.returncode == 1, result.stderr
    assert re.search(r"the build cannot reach PyPI \(pip install\) at step 4/\d+ \(RUN ", said), said
    assert "images.build_network" in said and "Traceback" not in said
    assert "No matching distribution found for xgboost" in result.stderr  # the step's own output is shown
    assert not engine_clean.images.list(name=f"ds01-{dave.uid}/pypi")


# -- a base downloaded from a real registry ---------------------------------------------------------------


@pytest.fixture
def local_registry(docker_engine):
    """Debian's docker-registry on 127.0.0.1:5000 inside the private engine's network namespace."""
    root = Path(tempfile.mkdtemp(prefix="ds01-registry-"))
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'data'}\nhttp:\n  addr: 127.0.0.1:5000\n"
    )
    netns = f"--net=/var/run/netns/{docker_engine.netns}"
    registry = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    proc = subprocess.Popen(["nsenter", netns, registry, "serve", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    probe = "import socket; socket.create_connection(('127.0.0.1', 5000), 1)"
    deadline = time.monotonic() + 20
    while subprocess.run(["nsenter", netns, sys.executable, "-c", probe], capture_output=True).returncode:
        assert proc.poll() is None and time.monotonic() < deadline, "the registry did not start"
        time.sleep(0.2)
    yield "127.0.0.1:5000"
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(root, ignore_errors=True)


def _catalogue_with(ds01_home: Path, image: str) -> None:
    """An admin's catalogue beside the config, whose one framework comes from the local registry."""
    folder = ds01_home / "images"
    folder.mkdir(exist_ok=True)
    (folder / "catalogue.yaml").write_text(
        "default_framework: tiny\ndefault_type: custom\ndefault_flavour: cpu\n"
        f"frameworks:\n  tiny:\n    title: Tiny\n    default_version: '1'\n    versions:\n"
        f"      '1':\n        cpu: {image}\n"
        f"download_gb:\n  {image}: 0.004\n"
        "package_sets:\n  custom:\n    title: Custom\n    common: false\n    pip: []\n"
    )


def test_a_base_from_a_reachable_registry_is_downloaded_with_progress(
    ds01_home, engine_clean, base_image_ref, local_registry, unix_users
):
    image = f"{local_registry}/lab/tiny:1"
    # an image with a layer of its own (4 MB of random bytes), pushed, then gone from the engine
    build = Path(tempfile.mkdtemp(prefix="ds01-tiny-"))
    (build / "Dockerfile").write_text(
        f"FROM {base_image_ref}\nRUN head -c 4000000 /dev/urandom > /blob && echo {socket.gethostname()}\n"
    )
    engine_clean.images.build(path=str(build), tag=image, network_mode="none")
    shutil.rmtree(build)
    for line in engine_clean.api.push(image, stream=True, decode=True):
        assert "error" not in line, line
    engine_clean.images.remove(image)
    assert ds01_home.config.parent == ds01_home  # the admin's catalogue goes beside the config
    _catalogue_with(ds01_home, image)

    erin = unix_users["erin"]
    bases = json.loads(ok(run_as(erin, "ds01", "image", "bases", "--json")).stdout)
    [tiny] = bases["bases"]
    assert tiny["image"] == image and not tiny["present"] and tiny["registry"] == "reachable"
    assert tiny["buildable"] and bases["registries"] == {local_registry: "reachable"}
    assert "download, ~0.004 GB" in ok(run_as(erin, "ds01", "image", "bases")).stdout

    made = ok(run_as(erin, "project-init", "tiny", "--yes", "--no-git"))
    said = " ".join(made.stderr.split())
    assert (
        f"{image} is not on this server yet: the first build downloads it ({local_registry}, ~0.004 GB)"
        in said
    )
    launched = run_as(erin, "project-launch", "tiny", "--background", timeout=300)
    assert launched.returncode == 0, launched.stderr
    said = launched.stderr
    assert f"Downloading {image} from {local_registry}" in said
    progress = re.findall(r"(\d+)/(\d+) layers, ([\d.]+) (MB|kB|B) of ([\d.]+) (MB|kB|B)", said)
    assert progress, said
    done, layers = progress[-1][0], progress[-1][1]
    assert done == layers and int(layers) >= 1 and progress[-1][3] == "MB" and float(progress[-1][2]) > 3.9
    assert image in image_tags(engine_clean)
    events = (ds01_home / "log").glob("*")
    assert any("image_pull" in p.read_text() for p in events if p.is_file())
