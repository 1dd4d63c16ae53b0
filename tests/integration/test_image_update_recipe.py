"""`image-update NAME` with no flags: the image records the recipe it was built from (`ds01.recipe`), so an
edited Dockerfile or requirements file is rebuilt, saying what changed, and an unchanged one is not. Real
users, the real ds01d and the private engine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.users import ok, run_as

pytestmark = pytest.mark.docker

RECIPE = "ds01.recipe"


def image_id(engine, user, name: str) -> str:
    return str(engine.api.inspect_image(f"ds01-{user.uid}/{name}:latest")["Id"])


def labels(engine, user, name: str) -> dict[str, str]:
    return dict(engine.api.inspect_image(f"ds01-{user.uid}/{name}:latest")["Config"]["Labels"])


def write_as(user, path: Path, text: str) -> None:
    path.write_text(text)
    os.chown(path, user.uid, user.gid)


def project(ds01_home, user, name: str, files: dict[str, str]) -> Path:
    """A project folder of the user's with hand-written files, built once with `image-create NAME`."""
    ok(run_as(user, "dir-create", name, "--type", "blank"))
    folder = ds01_home / "ws" / user.name / name
    for rel, text in files.items():
        write_as(user, folder / rel, text)
    ok(run_as(user, "image-create", name, "--json"))
    return folder


def test_an_edited_dockerfile_is_rebuilt_saying_so_and_an_unchanged_one_is_not(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    alice = unix_users["alice"]
    ok(run_as(alice, "image-create", "my-project", "--framework", "python", "--type", "custom",
              "--base", base_image_ref, "--json"))  # fmt: skip
    dockerfile = ds01_home / "ws" / alice.name / "my-project" / "Dockerfile"
    recorded = json.loads(labels(engine_clean, alice, "my-project")[RECIPE])
    assert len(recorded["sha256"]) == 64 and "Dockerfile" in recorded["files"]
    first = image_id(engine_clean, alice, "my-project")

    same = ok(run_as(alice, "image-update", "my-project"))
    assert "nothing changed; pass --rebuild" in same.stdout + same.stderr
    assert image_id(engine_clean, alice, "my-project") == first

    # what `vim ~/workspace/my-project/Dockerfile` does: the user's own edit of the recipe
    text = dockerfile.read_text().replace(
        "# <<< your additions <<<", "RUN echo edited-by-hand > /tmp/mark\n# <<< your additions <<<"
    )
    write_as(alice, dockerfile, text)
    rebuilt = ok(run_as(alice, "image-update", "my-project"))
    said = rebuilt.stdout + rebuilt.stderr
    assert "Dockerfile changed (1 line): rebuilding" in said, said
    second = image_id(engine_clean, alice, "my-project")
    assert second != first
    out = engine_clean.containers.run(second, ["cat", "/tmp/mark"], remove=True, network_mode="none")
    assert out.decode().strip() == "edited-by-hand"

    again = json.loads(ok(run_as(alice, "image-update", "my-project", "--json")).stdout)
    assert again["rebuilt"] is False and again["recipe_changes"] == []
    assert image_id(engine_clean, alice, "my-project") == second


def test_requirements_and_dockerfile_changes_are_named_and_other_files_do_not_count(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    bob = unix_users["bob"]
    folder = project(ds01_home, bob, "reqs", {
        "Dockerfile": f"FROM {base_image_ref}\nCOPY requirements.txt /tmp/r.txt\nRUN cat /tmp/r.txt\n",
        "requirements.txt": "numpy\n",
        "train.py": "print('v1')\n",
    })  # fmt: skip
    first = image_id(engine_clean, bob, "reqs")
    files = json.loads(labels(engine_clean, bob, "reqs")[RECIPE])["files"]
    assert sorted(files) == ["Dockerfile", "requirements.txt"]  # the code is not the recipe

    write_as(bob, folder / "train.py", "print('v2')\n")
    unchanged = ok(run_as(bob, "image-update", "reqs"))
    assert "nothing changed" in unchanged.stdout + unchanged.stderr
    assert image_id(engine_clean, bob, "reqs") == first

    write_as(bob, folder / "requirements.txt", "numpy\npandas\n")
    text = (folder / "Dockerfile").read_text() + "RUN echo one\nRUN echo two\nRUN echo three\n"
    write_as(bob, folder / "Dockerfile", text)
    human = ok(run_as(bob, "image-update", "reqs"))
    assert "Dockerfile changed (3 lines), requirements.txt changed (1 line): rebuilding" in human.stderr, (
        human.stderr
    )
    assert image_id(engine_clean, bob, "reqs") != first

    write_as(bob, folder / "requirements.txt", "numpy\npandas\nscipy\n")
    payload = json.loads(ok(run_as(bob, "image-update", "reqs", "--json")).stdout)
    assert payload["rebuilt"] is True
    assert payload["recipe_changes"] == [{"file": "requirements.txt", "change": "changed", "lines": 1}]


def test_a_forged_recipe_label_only_decides_about_the_users_own_image(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    """The label is the owner's claim: a Dockerfile LABEL loses to the client's value, a client that sends
    none gets a blank one from ds01d (never a base image's), and a forged one at worst skips a rebuild."""
    carol = unix_users["carol"]
    fake = json.dumps({"v": 1, "sha256": "0" * 64, "files": {}})
    folder = project(ds01_home, carol, "forge", {
        "Dockerfile": f"FROM {base_image_ref}\nLABEL {RECIPE}='{fake}'\n",
    })  # fmt: skip
    claimed = json.loads(labels(engine_clean, carol, "forge")[RECIPE])
    assert claimed["sha256"] != "0" * 64  # the build's value, not the Dockerfile's LABEL

    # a client of carol's own that sends no label, or a forged one, straight to ds01d's API
    script = """
import json, sys
import io, tarfile
from ds01.cli.common import connect
from ds01.client import path_of, upload_file
data = io.BytesIO()
with tarfile.open(fileobj=data, mode="w") as tar:
    text = sys.argv[2].encode()
    info = tarfile.TarInfo("Dockerfile"); info.size = len(text); tar.addfile(info, io.BytesIO(text))
length = data.tell(); data.seek(0)
labels = json.loads(sys.argv[1])
connect().call("POST", path_of("images", "build"), {"name": "forge", "labels": labels},
               upload=upload_file(data), upload_length=length)
"""
    dockerfile = (folder / "Dockerfile").read_text()
    ok(run_as(carol, "python", "-c", script, "{}", dockerfile))
    assert labels(engine_clean, carol, "forge")[RECIPE] == ""  # ds01d set it, blank: the LABEL never counts
    vague = ok(run_as(carol, "image-update", "forge"))
    assert "cannot tell whether the recipe changed" in vague.stdout + vague.stderr

    ok(run_as(carol, "python", "-c", script, json.dumps({RECIPE: fake}), dockerfile))
    forged_id = image_id(engine_clean, carol, "forge")
    assert labels(engine_clean, carol, "forge")[RECIPE] == fake
    rebuilt = ok(run_as(carol, "image-update", "forge"))  # a forged record only costs her a rebuild
    assert "rebuilding" in rebuilt.stderr
    assert image_id(engine_clean, carol, "forge") != forged_id
    assert json.loads(labels(engine_clean, carol, "forge")[RECIPE])["sha256"] == claimed["sha256"]


def test_image_update_with_no_arguments_and_no_terminal_is_exit_2_naming_the_flags(
    ds01_home, engine_clean, unix_users, base_image_ref
):
    dave = unix_users["dave"]
    project(ds01_home, dave, "quiet", {"Dockerfile": f"FROM {base_image_ref}\n"})
    before = image_id(engine_clean, dave, "quiet")
    result = run_as(dave, "image-update")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for flag in ("--add", "--add-system", "--remove", "--rebuild"):
        assert flag in lines[0]
    assert image_id(engine_clean, dave, "quiet") == before
