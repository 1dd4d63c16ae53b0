"""F3 (other users' images) and F2's build form (ds01 labels from a Dockerfile), through the real ds01d.

The victim (bob) has an image with a secret baked in. The attacker (alice) tries to read it by building FROM
it, COPY --from it or mounting it, however it is named; each is refused (exit 5) before the build starts and
no image of hers appears. Labels a Dockerfile sets on `ds01.*` keys are overridden by ds01d's. A symlink in
the build context is never dereferenced. And another user's container never blocks one's own image-delete.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.raw import request
from harness.users import TestUser, ok, run_as

pytestmark = pytest.mark.docker

SECRET = "victim-api-key-7f3a"
BUSYBOX = "ds01-test/busybox:latest"


def folder_of(user: TestUser, name: str, files: dict[str, str]) -> Path:
    """A folder in the user's home, owned by them, holding `files`."""
    path = user.home / f"ds01-sec-{name}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    for rel, text in files.items():
        (path / rel).write_text(text)
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(path)], check=True)
    return path


@pytest.fixture
def cleanup_folders(unix_users) -> Iterator[None]:
    yield
    for user in unix_users.values():
        for p in user.home.glob("ds01-sec-*"):
            shutil.rmtree(p, ignore_errors=True)


@pytest.fixture
def victim_image(ds01_home, engine_clean, unix_users, cleanup_folders) -> dict[str, str]:
    bob = unix_users["bob"]
    src = folder_of(bob, "victim", {"Dockerfile": f"FROM {BUSYBOX}\nRUN echo {SECRET} > /secret\n"})
    ok(run_as(bob, "image-create", "v1", "--dockerfile", str(src / "Dockerfile")))
    tag = f"ds01-{bob.uid}/v1:latest"
    raw = engine_clean.api.inspect_image(tag)
    assert raw["Config"]["Labels"]["ds01.uid"] == str(bob.uid)
    return {"tag": tag, "id": raw["Id"], "hex": raw["Id"].removeprefix("sha256:")}


def alice_images(engine_clean, alice: TestUser) -> list[str]:
    return [
        t
        for i in engine_clean.api.images()
        for t in i.get("RepoTags") or []
        if t.startswith(f"ds01-{alice.uid}/")
    ]


def attack(alice: TestUser, dockerfile: str, name: str = "steal") -> subprocess.CompletedProcess[str]:
    src = folder_of(alice, name, {"Dockerfile": dockerfile})
    return run_as(alice, "image-create", name, "--dockerfile", str(src / "Dockerfile"), "--json")


@pytest.mark.parametrize(
    "form",
    [
        "tag",
        "full-id",
        "bare-id",
        "short-id",
        "arg-default",
        "copy-from",
        "mount-from",
        "onbuild",
        "stage-alias",
    ],
)
def test_a_build_never_reads_another_users_image(engine_clean, unix_users, victim_image, form):
    alice = unix_users["alice"]
    tag, full, hexid = victim_image["tag"], victim_image["id"], victim_image["hex"]
    dockerfile = {
        "tag": f"FROM {tag}\n",
        "full-id": f"FROM {full}\n",
        "bare-id": f"FROM {hexid}\n",
        "short-id": f"FROM {hexid[:12]}\n",
        "arg-default": f"ARG B={tag}\nFROM $B\n",
        "copy-from": f"FROM {BUSYBOX}\nCOPY --from={tag} /secret /loot\n",
        "mount-from": f"FROM {BUSYBOX}\nRUN --mount=type=bind,from={tag},target=/v cat /v/secret > /loot\n",
        "onbuild": f"FROM {BUSYBOX}\nONBUILD COPY --from={tag} /secret /loot\n",
        "stage-alias": (
            f"FROM {BUSYBOX} AS base\nFROM {hexid[:12]} AS loot\nFROM base\nCOPY --from=loot /secret /x\n"
        ),
    }[form]
    result = attack(alice, dockerfile)
    assert result.returncode == 5, result.stderr
    assert json.loads(result.stdout)["error"]["code"] == "permission_denied"
    assert "another user's image" in result.stderr
    assert alice_images(engine_clean, alice) == []


def test_a_digest_or_an_absent_name_in_another_users_namespace_is_refused(
    engine_clean, unix_users, victim_image
):
    alice, bob = unix_users["alice"], unix_users["bob"]
    for ref in (f"ds01-{bob.uid}/v1@{victim_image['id']}", f"ds01-{bob.uid}/not-built:latest"):
        result = attack(alice, f"FROM {ref}\n")
        assert result.returncode == 5, result.stderr
        assert alice_images(engine_clean, alice) == []


def test_an_onbuild_trigger_of_an_own_image_cannot_reach_another_users_image(
    engine_clean, unix_users, victim_image
):
    """Her own image with a trigger that reads the victim's: checked again when a build FROMs it."""
    alice = unix_users["alice"]
    # made directly in the engine (as if it predated ds01d's checks): her uid, a hostile trigger
    trigger = f"FROM {BUSYBOX}\nONBUILD COPY --from={victim_image['tag']} /secret /loot\n"
    list(engine_clean.api.build(
        fileobj=io.BytesIO(trigger.encode()), tag=f"ds01-{alice.uid}/mid:latest",
        labels={"ds01.uid": str(alice.uid)}, rm=True, decode=True,
    ))  # fmt: skip
    assert engine_clean.api.inspect_image(f"ds01-{alice.uid}/mid:latest")["Config"]["OnBuild"]
    result = attack(alice, f"FROM ds01-{alice.uid}/mid:latest\n", name="child")
    assert result.returncode == 5, result.stderr
    assert engine_clean.api.images(name=f"ds01-{alice.uid}/child") == []


def test_an_unresolvable_variable_in_from_is_a_usage_error(
    ds01_home, engine_clean, unix_users, cleanup_folders
):
    alice = unix_users["alice"]
    result = attack(alice, "FROM $NOWHERE\n")
    assert result.returncode == 2, result.stderr
    assert "$NOWHERE" in result.stderr
    assert alice_images(engine_clean, alice) == []


def test_own_and_public_images_still_build(engine_clean, unix_users, ds01_home, cleanup_folders):
    alice = unix_users["alice"]
    ok(attack(alice, f"FROM {BUSYBOX}\nRUN echo one > /one\n", name="first"))
    ok(attack(alice, f"ARG B=ds01-{alice.uid}/first:latest\nFROM $B\nRUN cat /one\n", name="second"))
    assert sorted(alice_images(engine_clean, alice)) == [
        f"ds01-{alice.uid}/first:latest",
        f"ds01-{alice.uid}/second:latest",
    ]


def test_dockerfile_labels_never_set_ds01_keys(engine_clean, unix_users, ds01_home, cleanup_folders):
    """F2 by build: LABEL ds01.uid=<victim> ds01.gpu.slots=0,1 ... ends up ds01d's values."""
    alice, bob = unix_users["alice"], unix_users["bob"]
    dockerfile = (
        f"FROM {BUSYBOX}\n"
        f'LABEL ds01.uid="{bob.uid}" ds01.user="{bob.name}" ds01.managed="false" ds01.gpu.slots="0,1" '
        'ds01.gpu.uuids="GPU-victim" ds01.gpu.gpueq="nan" ds01.workspace="/etc"\n'
    )
    ok(attack(alice, dockerfile, name="labels"))
    labels = engine_clean.api.inspect_image(f"ds01-{alice.uid}/labels:latest")["Config"]["Labels"]
    assert labels["ds01.uid"] == str(alice.uid) and labels["ds01.user"] == alice.name
    assert labels["ds01.managed"] == "true"
    assert (
        labels["ds01.gpu.slots"] == "" and labels["ds01.gpu.uuids"] == "" and labels["ds01.gpu.gpueq"] == ""
    )
    assert labels["ds01.workspace"] == str(ds01_home / "ws" / alice.name / "labels")


def test_client_labels_cannot_claim_another_uid(ds01_home, engine_clean, unix_users, cleanup_folders):
    """A hostile client sending ds01.uid in the build's labels gets ds01d's value anyway."""
    import tarfile

    alice, bob = unix_users["alice"], unix_users["bob"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = f"FROM {BUSYBOX}\n".encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    script = (
        "import sys, json, socket\n"
        "body = open(sys.argv[2], 'rb').read()\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        "hdr = json.dumps({'name': 'forged', 'labels': {'ds01.uid': sys.argv[3], 'ds01.user': 'x', "
        "'ds01.gpu.slots': '0'}})\n"
        "s.sendall(('POST /v1/images/build HTTP/1.1\\r\\nHost: d\\r\\nConnection: close\\r\\n'"
        " f'X-Ds01-Body: {hdr}\\r\\nContent-Length: {len(body)}\\r\\n\\r\\n').encode() + body)\n"
        "out = b''\n"
        "while c := s.recv(65536): out += c\n"
        "print(out.decode())\n"
    )
    ctx = folder_of(alice, "raw", {})
    (ctx / "ctx.tar").write_bytes(buf.getvalue())
    os.chmod(ctx / "ctx.tar", 0o644)
    proc = subprocess.run(
        ["runuser", "-u", alice.name, "--", "python3", "-c", script, str(ds01_home.socket),
         str(ctx / "ctx.tar"), str(bob.uid)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert '"result"' in proc.stdout, proc.stdout + proc.stderr
    labels = engine_clean.api.inspect_image(f"ds01-{alice.uid}/forged:latest")["Config"]["Labels"]
    assert labels["ds01.uid"] == str(alice.uid) and labels["ds01.user"] == alice.name
    assert labels["ds01.gpu.slots"] == ""


def test_a_symlink_in_the_context_is_never_dereferenced(ds01_home, engine_clean, unix_users, cleanup_folders):
    alice = unix_users["alice"]
    marker = ds01_home / "root-secret.txt"
    marker.write_text("root-only-marker-91c2\n")
    marker.chmod(0o600)
    src = folder_of(alice, "links", {"Dockerfile": f"FROM {BUSYBOX}\nCOPY . /ctx\n"})
    os.symlink("/etc/shadow", src / "shadow")
    os.symlink(str(marker), src / "marker")
    os.lchown(src / "shadow", alice.uid, alice.gid)
    os.lchown(src / "marker", alice.uid, alice.gid)
    ok(run_as(alice, "image-create", "links", "--dockerfile", str(src / "Dockerfile")))
    image = f"ds01-{alice.uid}/links:latest"
    script = "readlink /ctx/shadow; readlink /ctx/marker; cat /ctx/shadow /ctx/marker 2>/dev/null; true"
    out = engine_clean.containers.run(image, ["sh", "-c", script], remove=True, network_mode="none").decode()
    assert out.splitlines()[:2] == ["/etc/shadow", str(marker)]  # stored as links
    assert "root-only-marker-91c2" not in out
    shadow = Path("/etc/shadow").read_text()
    root_line = next(line for line in shadow.splitlines() if line.startswith("root:"))
    assert root_line not in out


@pytest.mark.parametrize("path", ["/dev/zero", "fifo", "/etc/shadow", "big"])
def test_files_named_by_the_user_must_be_small_regular_readable_files(
    ds01_home, engine_clean, unix_users, cleanup_folders, path
):
    """F10: /dev/zero or a FIFO as --dockerfile / -r must not hang or grow memory: one clear line."""
    alice = unix_users["alice"]
    src = folder_of(alice, "named", {"Dockerfile": f"FROM {BUSYBOX}\n"})
    if path == "fifo":
        os.mkfifo(src / "fifo")
        os.chown(src / "fifo", alice.uid, alice.gid)
        path = str(src / "fifo")
    elif path == "big":
        (src / "big").write_bytes(b"# x\n" * (300 * 1024))  # 1.2 MB
        path = str(src / "big")
    expected = 5 if path == "/etc/shadow" else 2
    created = run_as(alice, "image-create", "named", "--dockerfile", path, timeout=30)
    assert created.returncode == expected, created.stderr
    assert "Traceback" not in created.stderr and len(created.stderr.splitlines()) <= 3
    ok(run_as(alice, "image-create", "named", "--dockerfile", str(src / "Dockerfile")))
    before = engine_clean.api.inspect_image(f"ds01-{alice.uid}/named:latest")["Id"]
    # -r FILE: read by the client before anything is built
    updated = run_as(alice, "image-update", "named", "-r", path, timeout=30)
    assert updated.returncode == expected, updated.stderr
    assert engine_clean.api.inspect_image(f"ds01-{alice.uid}/named:latest")["Id"] == before


def test_image_delete_and_info_owner_other_admin(ds01_home, engine_clean, unix_users, victim_image):
    alice, bob, carol = unix_users["alice"], unix_users["bob"], unix_users["carol"]
    tag = victim_image["tag"]
    target = f"/v1/images/ds01-{bob.uid}/v1:latest"
    assert request(bob, ds01_home.socket, "GET", target).result["uid"] == bob.uid
    assert request(bob, ds01_home.socket, "GET", "/v1/images/v1").result["image"] == tag
    other = request(alice, ds01_home.socket, "GET", target)
    assert other.exit_code in (3, 5)
    assert request(alice, ds01_home.socket, "GET", f"/v1/images/v1?user={bob.name}").exit_code == 5
    # alice's own "v1" does not exist: 3, never bob's
    assert request(alice, ds01_home.socket, "GET", "/v1/images/v1").exit_code == 3
    refused = run_as(alice, "image-delete", tag)
    assert refused.returncode == 5, refused.stderr
    assert engine_clean.api.inspect_image(tag)
    assert run_as(alice, "image-delete", "v1", "--user", bob.name).returncode == 5
    assert engine_clean.api.inspect_image(tag)

    ds01_home.reconfigure(groups={"admin": {"members": [carol.name], "admin": True}})
    info = request(carol, ds01_home.socket, "GET", f"/v1/images/v1?user={bob.name}")
    assert info.result["uid"] == bob.uid
    ok(run_as(carol, "image-delete", "v1", "--user", bob.name))
    assert engine_clean.api.images(name=f"ds01-{bob.uid}/v1") == []


def test_another_users_container_never_blocks_my_image_delete(
    ds01_home, engine_clean, unix_users, victim_image
):
    """F3's second half: a container of alice's on bob's image (e.g. made before the fix, or by an admin)
    must not keep bob from deleting his image; only the tag goes, alice's container keeps running."""
    alice, bob = unix_users["alice"], unix_users["bob"]
    tag = victim_image["tag"]
    held = engine_clean.api.create_container(
        tag, ["sleep", "600"], name=f"squat._.{alice.uid}",
        labels={"ds01.managed": "true", "ds01.uid": str(alice.uid), "ds01.user": alice.name},
        host_config=engine_clean.api.create_host_config(network_mode="none"),
    )  # fmt: skip
    engine_clean.api.start(held["Id"])
    updated = json.loads(ok(run_as(bob, "image-update", "v1", "--rebuild", "--json")).stdout)
    assert updated["rebuilt"] is True and updated["stale_containers"] == []  # hers are not his to recreate
    assert engine_clean.api.inspect_image(tag)["Id"] != victim_image["id"]
    again = engine_clean.api.create_container(
        tag, ["sleep", "600"], name=f"squat2._.{alice.uid}",
        labels={"ds01.managed": "true", "ds01.uid": str(alice.uid), "ds01.user": alice.name},
        host_config=engine_clean.api.create_host_config(network_mode="none"),
    )  # fmt: skip
    engine_clean.api.start(again["Id"])
    deleted = json.loads(ok(run_as(bob, "image-delete", "v1", "--json")).stdout)
    assert deleted["untagged_only"] is True and deleted["removed_containers"] == []
    assert engine_clean.api.images(name=f"ds01-{bob.uid}/v1") == []
    for c in (held, again):
        assert engine_clean.api.inspect_container(c["Id"])["State"]["Running"] is True

    # his own container still blocks without --force, and --force removes only his
    ok(run_as(bob, "image-create", "v2", "--dockerfile", str(bob.home / "ds01-sec-victim" / "Dockerfile")))
    ok(run_as(bob, "container-create", "v2", "--cpu-only"))
    blocked = run_as(bob, "image-delete", "v2")
    assert blocked.returncode == 1 and "used by" in blocked.stderr
    assert engine_clean.api.inspect_image(f"ds01-{bob.uid}/v2:latest")


def test_building_for_another_user_is_for_admins_only(ds01_home, engine_clean, unix_users, cleanup_folders):
    alice, bob = unix_users["alice"], unix_users["bob"]
    src = folder_of(alice, "forbob", {"Dockerfile": f"FROM {BUSYBOX}\n"})
    result = run_as(
        alice, "image-create", "gift", "--dockerfile", str(src / "Dockerfile"), "--user", bob.name
    )
    assert result.returncode == 5, result.stderr
    assert engine_clean.api.images(name=f"ds01-{bob.uid}/gift") == []
