"""The catalogue, the host's Debian mirror for the air-gapped base, and the build-stream view."""

from __future__ import annotations

import io

import pytest

from ds01.atomic.base_images import debian_mirror, host_apt_sources
from ds01.atomic.images import build_args, ca_bundle_pem
from ds01.errors import OperationFailed, UsageError
from ds01.identity import User
from ds01.project.build_view import PlainView, follow
from ds01.project.catalogue import load_catalogue


def test_catalogue_resolves_versions_and_cuda_flavours():
    cat = load_catalogue()
    assert cat.resolve("pytorch").image == "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
    assert cat.resolve("pytorch:2.4.1:cuda11").image == "pytorch/pytorch:2.4.1-cuda11.8-cudnn9-runtime"
    assert cat.resolve("pytorch-cpu").flavour == "cpu"  # the only flavour it has
    assert cat.resolve("python").label == "python-3.11"
    for bad in ("caffe", "pytorch:0.1", "jax:24.04:cuda11"):
        with pytest.raises(UsageError):
            cat.resolve(bad)
    assert cat.packages("custom") == ((), ())
    assert "xgboost" in cat.packages("ml")[1] and "git" in cat.packages("ml")[0]
    assert {lab.image for lab in cat.lab_images} >= {"ds01/python:3.11"}
    assert all(lab.dockerfile.is_file() for lab in cat.lab_images)


def test_an_admins_catalogue_beside_the_config_wins(tmp_path):
    (tmp_path / "images").mkdir()
    shipped = load_catalogue().source.read_text()
    (tmp_path / "images" / "catalogue.yaml").write_text(
        shipped.replace("default_flavour: cuda12", "default_flavour: cuda11")
    )
    cat = load_catalogue(tmp_path / "resource-limits.yaml")
    assert cat.resolve("pytorch").flavour == "cuda11"


def test_the_debian_mirror_comes_from_one_line_and_deb822_sources(tmp_path):
    listing = tmp_path / "sources.list"
    listing.write_text("# none\ndeb-src http://src.example/debian bookworm main\n")
    folder = tmp_path / "sources.list.d"
    folder.mkdir()
    (folder / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    (folder / "extra.list").write_text("deb [signed-by=/k.gpg] http://other.example/debian trixie main\n")
    source = debian_mirror(host_apt_sources(listing, folder))
    assert (source.uri, source.suite) == ("http://other.example/debian", "trixie")  # .list files come first
    (folder / "extra.list").unlink()
    source = debian_mirror(host_apt_sources(listing, folder))
    assert (source.uri, source.suite) == ("http://mirror.example/debian", "bookworm")
    with pytest.raises(UsageError):
        debian_mirror([])


def test_build_args_bake_the_user_and_pass_proxies_and_only_certificates(tmp_path):
    alice = User(name="h.baker@lab.example", uid=1234, gid=2345, home=tmp_path)
    bundle = tmp_path / "ca.pem"
    cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"
    bundle.write_text(f"junk\n{cert}\n-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n")
    args = build_args(alice, {"HTTPS_PROXY": "http://proxy:3128", "no_proxy": "localhost",
                              "DS01_CA_BUNDLE": str(bundle), "HOME": "/x"})  # fmt: skip
    assert args == {"DS01_UID": "1234", "DS01_GID": "2345", "DS01_USER": "h_baker", "DS01_CA_PEM": cert,
                    "HTTPS_PROXY": "http://proxy:3128", "no_proxy": "localhost"}  # fmt: skip
    assert ca_bundle_pem(None) == ""
    with pytest.raises(OperationFailed):
        ca_bundle_pem(str(tmp_path / "missing.pem"))


EVENTS = [
    {"stream": "Step 1/3 : FROM base\n"},
    {"stream": " ---> abc\n"},
    {"stream": "Step 2/3 : RUN make\n"},
    {"stream": "\x1b[91mcompiling\n\x1b[0m"},
    {"stream": "Step 3/3 : RUN test\n"},
    {"stream": "checking 1\nchecking 2\n"},
]


def test_a_successful_stream_gives_the_image_and_plain_step_lines():
    out = io.StringIO()
    result = follow(
        [*EVENTS, {"aux": {"ID": "sha256:feed"}}, {"stream": "Successfully built feed\n"}], PlainView(out)
    )
    assert result.image_id == "sha256:feed" and result.steps == 3
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["Step 1/3 : FROM base", "Step 2/3 : RUN make", "Step 3/3 : RUN test"]
    assert lines[3].startswith("built in ")


def test_a_failed_stream_names_the_step_and_shows_its_last_lines():
    out = io.StringIO()
    error = {
        "errorDetail": {"message": "returned a non-zero code: 2"},
        "error": "returned a non-zero code: 2",
    }
    with pytest.raises(OperationFailed) as caught:
        follow([*EVENTS, error], PlainView(out))
    assert "step 3/3 (RUN test)" in caught.value.message and "non-zero code: 2" in caught.value.message
    text = out.getvalue()
    assert "  | checking 1\n  | checking 2" in text and "compiling" not in text.split("last output")[1]
