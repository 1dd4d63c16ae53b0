"""A tiny base image built with no registry: Debian's static busybox imported as a rootfs; and a base on it
with a stand-in for pip."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from typing import Any

import pytest

BASE_IMAGE = "ds01-test/busybox:latest"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def _busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path):
            kind = subprocess.run(["file", "-L", path], capture_output=True, text=True).stdout
            if "dynamically linked" not in kind:
                return path
    raise RuntimeError("a static busybox is needed: apt-get install busybox-static")


def rootfs_tar() -> bytes:
    busybox = _busybox()
    applets = subprocess.run(
        [busybox, "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d, mode in (
            ("bin", 0o755),
            ("sbin", 0o755),
            ("usr", 0o755),
            ("usr/bin", 0o755),
            ("usr/sbin", 0o755),
            ("etc", 0o755),
            ("tmp", 0o1777),
            ("root", 0o700),
            ("workspace", 0o755),
            ("home", 0o755),
            ("proc", 0o755),
            ("sys", 0o755),
            ("dev", 0o755),
        ):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet == "bin/busybox":
                continue
            info = tarfile.TarInfo(applet)
            info.type, info.linkname = tarfile.SYMTYPE, "/bin/busybox"
            tar.addfile(info)
        for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def import_base_image(docker_host: str) -> str:
    """`docker import` of the rootfs; the image is what ds01's builds and containers start from."""
    import docker

    client = docker.DockerClient(base_url=docker_host, version="1.41")
    repo, tag = BASE_IMAGE.rsplit(":", 1)
    client.api.import_image_from_data(
        rootfs_tar(),
        repository=repo,
        tag=tag,
        changes=['CMD ["/bin/sh"]', "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
    )
    client.close()
    return BASE_IMAGE


# A stand-in for pip in a base with no network: records its arguments in /var/log/pip-calls, so a test can
# see what was installed.
FAKE_PIP_DOCKERFILE = f"""\
FROM {BASE_IMAGE}
RUN mkdir -p /var/log \\
 && printf '#!/bin/sh\\necho "$@" >> /var/log/pip-calls\\n' > /usr/bin/python3 && chmod 755 /usr/bin/python3
"""


def build_fake_pip(engine: Any, tag: str) -> str:
    """The fake-pip base built on `engine` (a docker-py client) as `tag`; returns `tag`."""
    engine.images.build(fileobj=io.BytesIO(FAKE_PIP_DOCKERFILE.encode()), tag=tag, rm=True)
    return tag


PYTHON_BASE = "ds01/python:3.11"  # what the catalogue maps `--framework python` to


@pytest.fixture
def python_base(engine_clean: Any, base_image_ref: str) -> str:
    """The lab's offline Python base, stood in for by the busybox image (no registry, no debootstrap here).
    A test module takes it as `python_base = base_image.python_base`."""
    engine_clean.images.get(base_image_ref).tag(PYTHON_BASE)
    return PYTHON_BASE
