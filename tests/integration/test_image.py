"""Per-project images on the private engine: real builds FROM the local busybox base (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ds01.events import read_events
from harness.base_image import build_fake_pip
from harness.users import ok, run_as

pytestmark = pytest.mark.docker

FAKE_PIP_BASE = "ds01-test/fakepip:latest"  # records what pip installs (harness.base_image)


def run_in(client, image: str, *cmd: str) -> str:
    return client.containers.run(image, list(cmd), remove=True, network_mode="none").decode().strip()


@pytest.fixture
def fake_pip_base(engine_clean) -> str:
    return build_fake_pip(engine_clean, FAKE_PIP_BASE)


def workspace(home: Path, user, name: str) -> Path:
    return home / "ws" / user.name / name


def create(user, name: str, base: str, *extra: str):
    return run_as(user, "image-create", name, "--framework", "python", "--type", "custom", "--base", base,
                  "--json", *extra)  # fmt: skip


def test_create_builds_an_image_with_labels_and_the_users_own_uid(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    alice = unix_users["alice"]
    result = ok(create(alice, "Thesis", base_image_ref))
    payload = json.loads(result.stdout)
    image = f"ds01-{alice.uid}/thesis:latest"
    assert payload["image"] == image and payload["built"] is True

    labels = engine_clean.api.inspect_image(image)["Config"]["Labels"]
    dockerfile = workspace(ds01_home, alice, "thesis") / "Dockerfile"
    assert labels["ds01.managed"] == "true"
    assert labels["ds01.user"] == alice.name and labels["ds01.uid"] == str(alice.uid)
    assert labels["ds01.project"] == "thesis" and labels["ds01.type"] == "custom"
    assert labels["ds01.base_image"] == base_image_ref and labels["ds01.dockerfile"] == str(dockerfile)
    assert labels["ds01.workspace"] == str(dockerfile.parent)

    # the user is baked in: no runtime commit needed to run as them
    assert run_in(engine_clean, image, "id", "-u") == str(alice.uid)
    assert run_in(engine_clean, image, "id", "-g") == str(alice.gid)
    assert run_in(engine_clean, image, "sh", "-c", "id -un; pwd; echo $HOME") == (
        f"{alice.name}\n/workspace\n/home/{alice.name}"
    )
    assert run_in(engine_clean, image, "sh", "-c", "echo $HF_HOME $PYTHONUNBUFFERED") == (
        "/workspace/.cache/huggingface 1"
    )
    # the recipe and the workspace belong to the user, not to root
    assert dockerfile.stat().st_uid == alice.uid and dockerfile.parent.stat().st_uid == alice.uid
    assert "RUN apt-get" not in dockerfile.read_text() and "pip install" not in dockerfile.read_text()

    builds = [e for e in read_events(ds01_home / "log") if e["event_type"] == "image_build"]
    assert builds and builds[-1]["user"] == alice.name and builds[-1]["details"]["image"] == image

    listed = json.loads(ok(run_as(alice, "image-list", "--json")).stdout)
    assert [(i["name"], i["image"], i["type"], i["containers"]) for i in listed] == [
        ("thesis", image, "custom", [])
    ]
    assert listed[0]["size"] > 0 and listed[0]["created"].endswith("Z")


def test_update_add_rebuilds_keeps_a_backup_and_recreates_the_container(
    ds01_home, engine_clean, unix_users, fake_pip_base
):
    alice = unix_users["alice"]
    ok(create(alice, "nlp", fake_pip_base))
    ok(run_as(alice, "container-create", "nlp", "--cpu-only"))
    old_id = engine_clean.api.inspect_image(f"ds01-{alice.uid}/nlp:latest")["Id"]

    updated = json.loads(ok(run_as(alice, "image-update", "nlp", "--add", "requests==2.32.3", "--recreate",
                                   "--json")).stdout)  # fmt: skip
    dockerfile = workspace(ds01_home, alice, "nlp") / "Dockerfile"
    assert updated["added"] == ["requests==2.32.3"] and updated["rebuilt"] is True
    assert updated["recreated"] == ["nlp"]
    text = dockerfile.read_text()
    assert text.count("requests==2.32.3") == 1
    backup = dockerfile.with_name("Dockerfile.bak")
    assert backup.exists() and "requests" not in backup.read_text() and backup.stat().st_uid == alice.uid

    image = f"ds01-{alice.uid}/nlp:latest"
    new_id = engine_clean.api.inspect_image(image)["Id"]
    assert new_id != old_id
    assert "install --no-cache-dir requests==2.32.3" in run_in(
        engine_clean, image, "cat", "/var/log/pip-calls"
    )
    container = engine_clean.api.inspect_container(f"nlp._.{alice.uid}")
    assert container["Image"] == new_id  # recreated from the new image

    # the same package again changes nothing: still one line, no rebuild
    again = json.loads(ok(run_as(alice, "image-update", "nlp", "--add", "requests==2.32.3", "--json")).stdout)
    assert again["added"] == [] and again["rebuilt"] is False
    assert dockerfile.read_text().count("requests==2.32.3") == 1


def test_delete_is_owner_only_refuses_while_in_use_and_never_touches_the_dockerfile(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    alice, bob = unix_users["alice"], unix_users["bob"]
    ok(create(alice, "thesis", base_image_ref))
    dockerfile = workspace(ds01_home, alice, "thesis") / "Dockerfile"
    image = f"ds01-{alice.uid}/thesis:latest"

    theirs = run_as(bob, "image-delete", image)
    assert theirs.returncode == 5, theirs.stderr
    assert "not yours" in theirs.stderr and engine_clean.api.inspect_image(image)

    ok(run_as(alice, "container-create", "thesis", "--cpu-only"))
    in_use = run_as(alice, "image-delete", "thesis")
    assert in_use.returncode == 1 and "thesis" in in_use.stderr and "used by" in in_use.stderr
    assert engine_clean.api.inspect_image(image)

    forced = json.loads(ok(run_as(alice, "image-delete", "thesis", "--force", "--json")).stdout)
    assert forced["removed_containers"] == ["thesis"]
    assert engine_clean.api.containers(all=True, filters={"name": f"thesis._.{alice.uid}"}) == []
    assert engine_clean.api.images(name=image) == []
    assert dockerfile.exists() and (dockerfile.parent / ".dockerignore").exists()
    deletes = [e for e in read_events(ds01_home / "log") if e["event_type"] == "image_delete"]
    assert deletes and deletes[-1]["details"]["image"] == image

    gone = run_as(alice, "image-delete", "thesis")
    assert gone.returncode == 3 and dockerfile.exists()


def test_a_failed_build_names_the_step_and_shows_its_output(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    alice = unix_users["alice"]
    folder = workspace(ds01_home, alice, "broken")
    ok(create(alice, "broken", base_image_ref, "--no-build"))
    dockerfile = folder / "Dockerfile"
    text = dockerfile.read_text().replace(
        "# <<< your additions <<<", "RUN echo 'compiling the thing' && exit 3\n# <<< your additions <<<"
    )
    dockerfile.write_text(text)
    failed = run_as(alice, "image-update", "broken", "--rebuild")
    assert failed.returncode == 1
    assert "build failed at step" in failed.stderr and "exit 3" in failed.stderr
    assert "compiling the thing" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert engine_clean.api.images(name=f"ds01-{alice.uid}/broken") == []


def test_an_existing_dockerfile_is_never_overwritten_and_regeneration_keeps_additions(
    ds01_home, unix_users, base_image_ref
):
    alice = unix_users["alice"]
    ok(create(alice, "mine", base_image_ref, "--no-build"))
    dockerfile = workspace(ds01_home, alice, "mine") / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(
        "# <<< your additions <<<", "RUN echo my own step\n# <<< your additions <<<"))  # fmt: skip

    ok(run_as(alice, "image-create", "mine", "--no-build"))  # no flags: the user's file is used as it is
    assert "my own step" in dockerfile.read_text()

    ok(run_as(alice, "image-create", "mine", "--type", "rl", "--base", base_image_ref, "--no-build"))
    regenerated = dockerfile.read_text()
    assert "RUN echo my own step" in regenerated and "stable-baselines3" in regenerated
    assert "my own step" in dockerfile.with_name("Dockerfile.bak").read_text()

    hand_written = workspace(ds01_home, alice, "hand") / "Dockerfile"
    ok(run_as(alice, "dir-create", "hand", "--type", "blank"))
    hand_written.write_text("FROM scratch\n")
    ok(run_as(alice, "image-create", "hand", "--framework", "pytorch", "--no-build"))
    assert hand_written.read_text() == "FROM scratch\n"


def test_a_planted_symlink_does_not_let_root_write_elsewhere(ds01_home, unix_users, base_image_ref):
    alice = unix_users["alice"]
    folder = workspace(ds01_home, alice, "trap")
    ok(run_as(alice, "dir-create", "trap", "--type", "blank"))
    target = ds01_home / "root-owned.txt"
    target.write_text("precious\n")
    target.chmod(0o600)  # root only: alice cannot read it, and must not get root to write it
    (folder / "Dockerfile").symlink_to(target)
    result = run_as(alice, "image-update", "trap", "--add", "requests")
    assert result.returncode == 5, result.stderr
    assert target.read_text() == "precious\n"


def test_a_dockerfile_behind_a_folder_the_user_cannot_enter_is_exit_5_not_an_internal_error(
    ds01_home, unix_users
):
    """CONTRACT §5: a path that is not the user's is 5 (it was an unhandled PermissionError, exit 1)."""
    hidden = ds01_home / "root-only"
    hidden.mkdir(mode=0o700)
    (hidden / "Dockerfile").write_text("FROM scratch\n")
    for arg in (hidden / "Dockerfile", hidden / "nothing"):
        result = run_as(unix_users["alice"], "image-create", "peek", "--dockerfile", str(arg), "--json")
        assert result.returncode == 5, result.stderr
        assert json.loads(result.stdout)["error"]["code"] == "permission_denied"
        assert "internal error" not in result.stderr


def test_build_args_carry_the_lab_ca_and_only_its_certificates(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    cert = "-----BEGIN CERTIFICATE-----\nMIIBfakeLabCA0123456789abcdef==\n-----END CERTIFICATE-----"
    bundle = ds01_home / "lab-ca.pem"
    bundle.write_text(f"-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n{cert}\n")
    bundle.chmod(0o600)  # root's: ds01d reads it, the user never does
    ds01_home.reconfigure(images={"ca_bundle": str(bundle)})
    alice = unix_users["alice"]
    result = ok(run_as(alice, "image-create", "proxied", "--framework", "python", "--type", "custom",
                       "--base", base_image_ref))  # fmt: skip
    assert "Step 1/" in result.stderr
    image = f"ds01-{alice.uid}/proxied:latest"
    installed = run_in(engine_clean, image, "cat", "/etc/ssl/certs/ca-certificates.crt")
    assert installed == cert
    assert (workspace(ds01_home, alice, "proxied") / "Dockerfile").stat().st_uid == alice.uid
