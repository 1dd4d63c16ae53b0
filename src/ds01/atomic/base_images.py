"""`ds01 image build-base` (admins): build the lab's own base images listed in the catalogue.

Each is built from its Dockerfile in `images/`. On a host that cannot reach a registry (or with
`offline=True`) a base marked `offline: debian` is made from the host's own Debian mirror instead:
`debootstrap --variant=minbase --include=python3,python3-pip` of the host's suite, then `docker import`.
That takes about 40 s and gives a ~300 MB image, so ds01 works air-gapped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ds01.atomic.build import Emit, run_build
from ds01.context import Context
from ds01.errors import OperationFailed, PermissionDenied, UsageError
from ds01.project.catalogue import LabImage, load_catalogue

APT_LIST = Path("/etc/apt/sources.list")
APT_DIR = Path("/etc/apt/sources.list.d")
DEFAULT_SUITE = "bookworm"
# OpenSSH's server and tmux (ssh <project>.ds01) and Debian's notebook server (container-jupyter); debootstrap
# resolves no virtual packages, so the providers the notebook's dependencies need are named too.
PACKAGES = (
    "python3", "python3-pip", "openssh-server", "tmux", "python3-notebook", "python3-cffi-backend",
    "libboost-regex1.74.0",
)  # fmt: skip
IMPORT_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "ENV PIP_BREAK_SYSTEM_PACKAGES=1",
    "ENV PIP_DISABLE_PIP_VERSION_CHECK=1",
    'CMD ["/bin/bash"]',
]
# Left out of the image: package caches and the mount points' contents.
_PRUNE = ("var/cache/apt/archives", "var/lib/apt/lists", "var/log")

Say = Callable[[str], None]


@dataclass(frozen=True)
class AptSource:
    uri: str
    suite: str


@dataclass(frozen=True)
class BaseResult:
    image: str
    method: str  # "dockerfile" or "debootstrap"
    seconds: float
    size: int


# -- the host's Debian mirror -------------------------------------------------------------------------


def _one_line_sources(text: str) -> Iterable[AptSource]:
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()  # drop `[signed-by=...]`
        if len(words) >= 3 and words[0] == "deb":
            yield AptSource(words[1], words[2])


def _deb822_sources(text: str) -> Iterable[AptSource]:
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if ":" in line and not line.startswith(("#", " ")):
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                yield AptSource(uri, suite)


def host_apt_sources(list_file: Path = APT_LIST, list_dir: Path = APT_DIR) -> list[AptSource]:
    found: list[AptSource] = []
    files = [list_file, *sorted(list_dir.glob("*.list")), *sorted(list_dir.glob("*.sources"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        found += _deb822_sources(text) if path.suffix == ".sources" else _one_line_sources(text)
    return found


def debian_mirror(sources: Iterable[AptSource]) -> AptSource:
    """The host's main Debian suite (not -updates or -security) and the mirror that serves it."""
    for source in sources:
        if "-" not in source.suite and "security" not in source.uri and "/" not in source.suite:
            return source
    raise UsageError(
        "no Debian mirror in this host's apt sources",
        hint="pass --mirror URL (e.g. http://deb.debian.org/debian)",
    )


# -- building -------------------------------------------------------------------------------------------


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise OperationFailed(f"{what} failed (exit {proc.returncode}): {tail}")


def debootstrap_rootfs(target: Path, source: AptSource) -> None:
    if shutil.which("debootstrap") is None:
        raise OperationFailed("debootstrap is not installed", hint="apt-get install debootstrap")
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            source.suite,
            str(target),
            source.uri,
        ],
        "debootstrap",
    )
    for rel in _PRUNE:
        for child in (target / rel).glob("*"):
            if child.is_file() and not child.is_symlink():
                child.unlink()
            elif child.is_dir() and not child.is_symlink() and rel != "var/log":
                shutil.rmtree(child)
    for key in (target / "etc/ssh").glob("ssh_host_*"):  # each project brings its own host key
        key.unlink()
    (target / "workspace").mkdir(exist_ok=True)
    python = target / "usr/local/bin/python"
    if not python.exists() and not python.is_symlink():
        python.symlink_to("/usr/bin/python3")


def build_debian_python(
    ctx: Context, image: str, *, source: AptSource, say: Say, workdir: Path | None = None
) -> BaseResult:
    """The air-gapped Python base: the host's Debian with python3 and pip, imported as `image`."""
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="ds01-rootfs-", dir=workdir))
    try:
        rootfs, tar = tmp / "rootfs", tmp / "rootfs.tar"
        say(f"debootstrap {source.suite} from {source.uri} (about a minute)")
        debootstrap_rootfs(rootfs, source)
        say(f"docker import as {image}")
        _run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tar), "."], "tar of the root filesystem"
        )
        repository, _, tag = image.rpartition(":")
        ctx.gateway.import_image_file(str(tar), repository=repository, tag=tag, changes=IMPORT_CHANGES)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = int((ctx.gateway.image_inspect(image) or {}).get("Size", 0))
    return BaseResult(image, "debootstrap", time.monotonic() - started, size)


def build_from_dockerfile(ctx: Context, lab: LabImage, emit: Emit | None = None) -> BaseResult:
    from ds01.docker_gateway import context_archive

    started = time.monotonic()
    archive, name = context_archive(str(lab.dockerfile.parent), str(lab.dockerfile))
    try:
        run_build(ctx, archive, dockerfile=name, tag=lab.image, buildargs={}, labels={}, emit=emit)
    finally:
        archive.close()
    size = int((ctx.gateway.image_inspect(lab.image) or {}).get("Size", 0))
    return BaseResult(lab.image, "dockerfile", time.monotonic() - started, size)


def _registry_unreachable(exc: OperationFailed) -> bool:
    """The build stopped at FROM: the base could not be pulled (said in plain words by `build_view`)."""
    from ds01.project.build_view import REGISTRY_UNREACHABLE

    return REGISTRY_UNREACHABLE in exc.message or "step 1/" in exc.message or "the start" in exc.message


def build_bases(
    ctx: Context,
    *,
    only: str | None = None,
    offline: bool = False,
    mirror: str | None = None,
    suite: str | None = None,
    say: Say,
    emit: Emit | None = None,
) -> list[BaseResult]:
    if not ctx.is_admin:
        raise PermissionDenied("only admins build the lab's base images", hint="ask an admin")
    labs = [lab for lab in load_catalogue(ctx.config.source).lab_images if only in (None, lab.image)]
    if not labs:
        raise UsageError(
            f"no lab base image named {only!r} in the catalogue", hint="see images/catalogue.yaml"
        )
    results = []
    for lab in labs:
        if offline and lab.offline == "debian":
            results.append(_debian(ctx, lab, mirror, suite, say))
            continue
        try:
            results.append(build_from_dockerfile(ctx, lab, emit))
        except OperationFailed as exc:
            if lab.offline != "debian" or not _registry_unreachable(exc):
                raise
            say(f"{lab.image}: no registry reachable; building it from the host's Debian mirror instead")
            results.append(_debian(ctx, lab, mirror, suite, say))
    return results


def _debian(ctx: Context, lab: LabImage, mirror: str | None, suite: str | None, say: Say) -> BaseResult:
    if os.geteuid() != 0:
        raise PermissionDenied("debootstrap needs root", hint="run `ds01 image build-base` as root")
    host = debian_mirror(host_apt_sources()) if not (mirror and suite) else AptSource(mirror, suite)
    source = AptSource(mirror or host.uri, suite or host.suite or DEFAULT_SUITE)
    workdir = ctx.config.paths.state_dir if ctx.config.paths.state_dir.is_dir() else None
    return build_debian_python(ctx, lab.image, source=source, say=say, workdir=workdir)
