"""A Debian image with OpenSSH's server, tmux and Debian's notebook server, made with no registry:
`debootstrap` from the host's own Debian mirror (about two minutes), then `docker import`. The rootfs tar is
kept in /var/tmp keyed by its recipe, so later runs on the same machine only import it.

The test users are baked in (passwd, group, a home each), as ds01's generated images do; no host key is
left in the image (ds01d brings the project's own).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

IMAGE = "ds01-test/access:latest"
# debootstrap resolves no virtual packages: the providers python3-notebook needs are named here.
PACKAGES = ("openssh-server", "tmux", "python3-notebook", "python3-cffi-backend", "libboost-regex1.74.0")
CACHE = Path("/var/tmp")


def _mirror() -> tuple[str, str]:
    from ds01.atomic.base_images import DEFAULT_SUITE, debian_mirror, host_apt_sources

    try:
        source = debian_mirror(host_apt_sources())
        return source.uri, source.suite or DEFAULT_SUITE
    except Exception:
        return "http://deb.debian.org/debian", DEFAULT_SUITE


def _rootfs_tar() -> Path:
    uri, suite = _mirror()
    key = hashlib.sha256(repr((PACKAGES, uri, suite, 2)).encode()).hexdigest()[:16]
    tar = CACHE / f"ds01-test-access-{key}.tar"
    if tar.exists():
        return tar
    with tempfile.TemporaryDirectory(prefix="ds01-access-rootfs-", dir=CACHE) as tmp:
        root = Path(tmp) / "rootfs"
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, str(root), uri],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            log = root / "debootstrap" / "debootstrap.log"
            tail = log.read_text()[-2000:] if log.exists() else proc.stderr[-2000:]
            raise RuntimeError(f"debootstrap failed: {tail}")
        for key_file in (root / "etc" / "ssh").glob("ssh_host_*"):
            key_file.unlink()
        for rel in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for child in (root / rel).glob("*"):
                if child.is_file():
                    child.unlink()
        (root / "workspace").mkdir(exist_ok=True)
        part = tar.with_suffix(".part")
        subprocess.run(["tar", "-C", str(root), "-cf", str(part), "."], check=True)
        os.replace(part, tar)
    return tar


def import_access_image(docker_host: str, users: Iterable[object]) -> str:
    """The image, with `users` (`.name .uid .gid`) added to its passwd and group, each with a home."""
    import docker

    tar = _rootfs_tar()
    with tempfile.TemporaryDirectory(prefix="ds01-access-users-", dir=CACHE) as tmp:
        full = Path(tmp) / "image.tar"
        with tarfile.open(tar) as src, tarfile.open(full, "w") as out:
            texts: dict[str, str] = {}
            for member in src:
                if member.name in ("./etc/passwd", "./etc/group"):
                    f = src.extractfile(member)
                    texts[member.name] = f.read().decode() if f else ""
                    continue
                out.addfile(member, src.extractfile(member) if member.isfile() else None)
            passwd, group = texts.get("./etc/passwd", ""), texts.get("./etc/group", "")
            for u in users:
                name, uid, gid = u.name, u.uid, u.gid  # type: ignore[attr-defined]
                passwd += f"{name}:x:{uid}:{gid}::/home/{name}:/bin/bash\n"
                group += f"{name}:x:{gid}:\n"
                home = tarfile.TarInfo(f"./home/{name}")
                home.type, home.mode, home.uid, home.gid = tarfile.DIRTYPE, 0o700, uid, gid
                out.addfile(home)
            for name, text in (("./etc/passwd", passwd), ("./etc/group", group)):
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                out.addfile(info, io.BytesIO(data))
        client = docker.DockerClient(base_url=docker_host, version="1.41", timeout=600)
        repo, tag = IMAGE.rsplit(":", 1)
        with open(full, "rb") as f:
            client.api.import_image_from_data(
                f, repository=repo, tag=tag,
                changes=["ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "ENV LANG=C.UTF-8",
                         'CMD ["/bin/bash"]'],
            )  # fmt: skip
        client.close()
    return IMAGE
