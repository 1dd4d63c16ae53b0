"""Which images a Dockerfile reads (F3), the client's build context (no symlink followed, .dockerignore,
size cap) and files the user names (regular, small, never a FIFO or device)."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from ds01.errors import PermissionDenied, UsageError
from ds01.project.build_context import Ignore, pack_context, read_user_file
from ds01.project.dockerfile import image_references


def test_from_copy_from_mount_from_and_onbuild_are_all_references():
    text = (
        "ARG B=ds01-1009/v1:latest\n"
        "FROM $B AS first\n"
        "FROM busybox\n"
        "COPY --from=first /a /b\n"
        "COPY --chown=1:1 --from=victim:1 /a /b\n"
        "RUN --mount=type=bind,from=evil,target=/x true\n"
        "ONBUILD COPY --from=later / /\n"
    )
    assert image_references(text) == ["ds01-1009/v1:latest", "busybox", "victim:1", "evil", "later"]


def test_stage_names_and_indexes_are_not_images_but_later_names_are():
    text = "FROM a AS Build\nFROM build\nCOPY --from=0 / /\nCOPY --from=BUILD / /\nFROM scratch\n"
    assert image_references(text) == ["a"]
    # a name used before its stage is declared is an image
    assert image_references("FROM x\nCOPY --from=later / /\nFROM y AS later\n") == ["x", "later", "y"]


def test_arg_defaults_build_args_and_continuations():
    text = 'ARG REPO="ds01-1" TAG\nFROM ${REPO}/v:${TAG:-latest}\nFROM \\\n  ${REPO}/w\n'
    assert image_references(text) == ["ds01-1/v:latest", "ds01-1/w"]
    assert image_references(text, {"TAG": "x", "REPO": "r"}) == ["r/v:x", "r/w"]
    assert image_references("# escape=`\nFROM `\n  busybox\n") == ["busybox"]


@pytest.mark.parametrize("text", ["FROM $NOPE\n", "ARG X\nFROM $X\n", "FROM busybox\nCOPY --from=$Y / /\n"])
def test_a_variable_with_no_value_is_a_usage_error(text):
    with pytest.raises(UsageError, match="has no value"):
        image_references(text)


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def pack(folder: Path, **kw) -> bytes:
    out = io.BytesIO()
    pack_context(folder, "Dockerfile", "FROM scratch\n", out, **kw)
    return out.getvalue()


def test_the_context_stores_links_as_links_and_skips_fifos(tmp_path):
    (tmp_path / "Dockerfile").write_text("ignored: the client's text wins\n")
    (tmp_path / "code.py").write_text("print(1)\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.txt").write_text("x")
    os.symlink("/etc/shadow", tmp_path / "shadow")
    os.symlink("/etc", tmp_path / "etc")
    os.mkfifo(tmp_path / "pipe")
    found = members(pack(tmp_path))
    assert set(found) == {"Dockerfile", "code.py", "sub", "sub/x.txt", "shadow", "etc"}
    assert found["shadow"].issym() and found["shadow"].linkname == "/etc/shadow"
    assert found["etc"].issym()  # never walked into
    assert found["code.py"].uid == 0 and found["code.py"].uname == ""
    with tarfile.open(fileobj=io.BytesIO(pack(tmp_path))) as tar:
        dockerfile = tar.extractfile("Dockerfile")
        assert dockerfile is not None and dockerfile.read() == b"FROM scratch\n"


def test_dockerignore_rules(tmp_path):
    (tmp_path / ".dockerignore").write_text(
        "data/\n**/__pycache__\n*.bak\n!keep.bak\nresults\n!results/final.csv\n"
    )
    for rel in ("data/a.bin", "src/__pycache__/m.pyc", "src/m.py", "a.bak", "keep.bak", "results/r.csv",
                "results/final.csv"):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    found = set(members(pack(tmp_path)))
    assert {"src/m.py", "keep.bak", "results/final.csv", ".dockerignore"} <= found
    assert not {"data/a.bin", "src/__pycache__/m.pyc", "a.bak", "results/r.csv"} & found
    assert Ignore.parse("a/*/c\n").excluded("a/b/c/d") and not Ignore.parse("a/*/c\n").excluded("a/b/x/c")


def test_the_context_has_a_size_cap(tmp_path):
    (tmp_path / "big").write_bytes(b"0" * 5000)
    with pytest.raises(UsageError, match="over"):
        pack(tmp_path, limit=4096)


def test_read_user_file_refuses_devices_fifos_folders_and_big_files(tmp_path):
    assert read_user_file(Path(__file__)).startswith('"""')
    with pytest.raises(UsageError, match="not a regular file"):
        read_user_file(Path("/dev/zero"))
    with pytest.raises(UsageError, match="not a regular file"):
        read_user_file(tmp_path)
    (tmp_path / "big").write_bytes(b"x" * ((1 << 20) + 1))
    with pytest.raises(UsageError, match="over 1 MiB"):
        read_user_file(tmp_path / "big")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done: list[BaseException] = []

    def attempt() -> None:
        try:
            read_user_file(fifo)
        except BaseException as exc:
            done.append(exc)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(5)
    assert done and isinstance(done[0], UsageError)  # returned at once: no writer was needed


@pytest.mark.skipif(os.geteuid() != 0, reason="needs another uid to be refused")
def test_read_user_file_unreadable_is_permission_denied(tmp_path):
    secret = tmp_path / "s"
    secret.write_text("x")
    secret.chmod(0o600)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.setuid(65534)
        try:
            read_user_file(secret)
        except PermissionDenied:
            os._exit(0)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
