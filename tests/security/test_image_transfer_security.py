"""The image-off-the-server endpoints (`push`, `save`) and one-shot runs (`run-once`), owner / other / admin.

bob (the victim) has an image with a secret in it. alice tries to push it, save it, or run a one-shot
container of it, however she names it; each is refused (exit 5, or 3 where hers does not exist) and nothing
changes on the host: no file of hers, no new tag, no container. A push target that names an image already on
the host (bob's image, a lab base) would move that name: refused, the name stays where it was. Admins may
act for a user. None of these needs a registry: each refusal comes before any push.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from harness.raw import request
from harness.users import TestUser, ok, run_as

pytestmark = pytest.mark.docker

SECRET = "victim-xfer-secret-51c0"
NOWHERE = "127.0.0.1:5999/lab/stolen:v1"  # nothing listens: a push that got that far would fail with 1


def build(user: TestUser, name: str, dockerfile: str) -> None:
    folder = user.home / f"ds01-secx-{name}"
    folder.mkdir(exist_ok=True)
    (folder / "Dockerfile").write_text(dockerfile)
    for p in (folder, folder / "Dockerfile"):
        os.chown(p, user.uid, user.gid)
    ok(run_as(user, "image-create", name, "--dockerfile", str(folder / "Dockerfile")))


@pytest.fixture
def images(ds01_home, engine_clean, unix_users) -> Iterator[dict[str, str]]:
    alice, bob = unix_users["alice"], unix_users["bob"]
    build(bob, "v1", f"FROM ds01-test/busybox:latest\nRUN echo {SECRET} > /secret\n")
    build(alice, "mine", "FROM ds01-test/busybox:latest\nRUN echo hers > /hers\n")
    tag = f"ds01-{bob.uid}/v1:latest"
    yield {"tag": tag, "id": engine_clean.images.get(tag).id, "mine": f"ds01-{alice.uid}/mine:latest"}
    for user in (alice, bob):
        for p in user.home.glob("ds01-secx-*"):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()


def all_tags(client) -> set[str]:
    return {t for i in client.images.list() for t in i.tags}


def containers_of(client, user: TestUser) -> list[str]:
    return [c.name for c in client.containers.list(all=True) if c.name.endswith(f"._.{user.uid}")]


def test_push_owner_other_admin(ds01_home, engine_clean, unix_users, images):
    alice, bob, carol = unix_users["alice"], unix_users["bob"], unix_users["carol"]
    before = all_tags(engine_clean)
    # other: by full name (5), by her own name space (3: hers does not exist), acting for bob (5)
    assert run_as(alice, "image-push", images["tag"], NOWHERE).returncode == 5
    assert run_as(alice, "image-push", "v1", NOWHERE).returncode == 3
    assert run_as(alice, "image-push", "v1", NOWHERE, "--user", bob.name).returncode == 5
    raw = request(
        alice, ds01_home.socket, "POST", "/v1/images/v1/push", {"target": NOWHERE, "user": bob.name}
    )
    assert raw.exit_code == 5
    assert all_tags(engine_clean) == before  # nothing was tagged

    # owner: gets as far as the (absent) registry: a plain failure, and the temporary tag is gone again
    own = run_as(bob, "image-push", "v1", NOWHERE)
    assert own.returncode == 1 and "127.0.0.1:5999" in own.stderr, own.stderr
    assert all_tags(engine_clean) == before

    # admin: may push for bob (same outcome as bob's own)
    ds01_home.reconfigure(groups={"admin": {"members": [carol.name], "admin": True}})
    assert run_as(carol, "image-push", "v1", NOWHERE, "--user", bob.name).returncode == 1
    assert all_tags(engine_clean) == before


def test_a_push_target_never_moves_an_existing_name(ds01_home, engine_clean, unix_users, images):
    """Tagging alice's image as bob's image name (or a lab base) would replace what bob and others run."""
    alice, bob = unix_users["alice"], unix_users["bob"]
    base = engine_clean.images.get("ds01-test/busybox:latest").id
    for target in (images["tag"], f"docker.io/ds01-{bob.uid}/v1:latest", f"ds01-{bob.uid}/other",
                   "ds01-test/busybox:latest", "docker.io/ds01-test/busybox"):  # fmt: skip
        result = run_as(alice, "image-push", "mine", target)
        assert result.returncode == 2, (target, result.stderr)
    assert engine_clean.images.get(images["tag"]).id == images["id"]
    assert engine_clean.images.get("ds01-test/busybox:latest").id == base
    assert not any(t.startswith(f"ds01-{bob.uid}/other") for t in all_tags(engine_clean))


def test_save_owner_other_admin(ds01_home, engine_clean, unix_users, images):
    alice, bob, carol = unix_users["alice"], unix_users["bob"], unix_users["carol"]
    out = alice.home / "ds01-secx-stolen.tar"
    for args in ([images["tag"]], ["v1", "--user", bob.name]):
        result = run_as(alice, "image-save", *args, "-o", str(out))
        assert result.returncode == 5, result.stderr
    assert run_as(alice, "image-save", "v1", "-o", str(out)).returncode == 3
    assert not out.exists() and not list(alice.home.glob(".ds01-secx-stolen.tar.part-*"))

    # the owner's save is theirs
    own = bob.home / "ds01-secx-own.tar"
    ok(run_as(bob, "image-save", "v1", "-o", str(own)))
    assert own.stat().st_uid == bob.uid and SECRET.encode() in _layer_bytes(own)

    # a save never writes where the user may not: root's folder
    denied = run_as(bob, "image-save", "v1", "-o", "/root/ds01-secx.tar")
    assert denied.returncode != 0 and not os.path.exists("/root/ds01-secx.tar")

    # admin: for bob, into the admin's own file
    ds01_home.reconfigure(groups={"admin": {"members": [carol.name], "admin": True}})
    admin_out = carol.home / "ds01-secx-admin.tar"
    try:
        ok(run_as(carol, "image-save", "v1", "--user", bob.name, "-o", str(admin_out)))
        assert admin_out.stat().st_uid == carol.uid
    finally:
        admin_out.unlink(missing_ok=True)


def test_run_once_owner_other_admin(ds01_home, engine_clean, unix_users, images):
    alice, bob, carol = unix_users["alice"], unix_users["bob"], unix_users["carol"]
    # other: bob's project is not hers (3: she has none of that name), acting for bob is refused (5)
    assert run_as(alice, "container-run", "v1", "--rm", "--", "cat", "/secret").returncode == 3
    stolen = run_as(alice, "container-run", "v1", "--rm", "--user", bob.name, "--", "cat", "/secret")
    assert stolen.returncode == 5 and SECRET not in stolen.stdout
    assert containers_of(engine_clean, alice) == [] and containers_of(engine_clean, bob) == []

    # owner
    own = ok(run_as(bob, "container-run", "v1", "--rm", "--", "cat", "/secret"))
    assert own.stdout.strip() == SECRET and containers_of(engine_clean, bob) == []

    # admin: runs as bob (never as the admin, never as root), and leaves nothing
    ds01_home.reconfigure(groups={"admin": {"members": [carol.name], "admin": True}})
    admin = ok(run_as(carol, "container-run", "v1", "--rm", "--user", bob.name, "--", "id", "-u"))
    assert admin.stdout.strip() == str(bob.uid)
    assert containers_of(engine_clean, bob) == [] and containers_of(engine_clean, carol) == []


def _layer_bytes(tar_path) -> bytes:
    import tarfile

    data = b""
    with tarfile.open(tar_path) as outer:
        for member in outer.getmembers():
            if member.isfile() and member.name.endswith(".tar"):
                f = outer.extractfile(member)
                assert f is not None
                data += f.read()
    return data


def test_a_run_once_label_written_into_an_image_never_reaches_a_container(
    ds01_home, engine_clean, unix_users
):
    """`ds01.run_once` names the client a one-shot run lives with; ds01d sets it (blank) on every container,
    so an image's own (here: init's pid and start time, as if bob's run) never makes a restarted ds01d
    watch or remove a container, or file a session under bob's uid."""
    alice, bob = unix_users["alice"], unix_users["bob"]
    with open("/proc/1/stat") as f:
        init_started = f.read().rsplit(")", 1)[1].split()[19]
    forged = f"1:{init_started}:{bob.uid}"
    try:
        build(alice, "forged", f'FROM ds01-test/busybox:latest\nLABEL ds01.run_once="{forged}"\n')
    finally:
        shutil.rmtree(alice.home / "ds01-secx-forged", ignore_errors=True)
    assert engine_clean.images.get(f"ds01-{alice.uid}/forged:latest").labels["ds01.run_once"] == forged
    ok(run_as(alice, "container-create", "forged"))
    box = engine_clean.containers.get(f"forged._.{alice.uid}")
    assert box.labels["ds01.run_once"] == ""
    ds01_home.server.process.kill()  # SIGKILL
    ds01_home.server.process.wait(timeout=30)
    ds01_home.restart()
    box.reload()
    assert box.status == "created" and box.labels["ds01.run_once"] == ""
    log = ds01_home.server.log_text()
    assert "watching its client" not in log and "whose client was gone" not in log
