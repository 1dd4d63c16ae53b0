"""`REGISTRY/REPO[:TAG]` read as Docker reads it, and `~/.docker/config.json` keys matched to a registry."""

from __future__ import annotations

import pytest

from ds01.errors import UsageError
from ds01.registry_ref import parse_target, registry_key


@pytest.mark.parametrize(
    ("raw", "registry", "path", "tag", "ref"),
    [
        ("127.0.0.1:5000/lab/model:v1", "127.0.0.1:5000", "lab/model", "v1", "127.0.0.1:5000/lab/model:v1"),
        ("registry.example.org/x", "registry.example.org", "x", "latest", "registry.example.org/x:latest"),
        ("localhost/a/b", "localhost", "a/b", "latest", "localhost/a/b:latest"),
        ("alice/model:2", "docker.io", "alice/model", "2", "alice/model:2"),
        ("model", "docker.io", "library/model", "latest", "library/model:latest"),
        ("docker.io/alice/m", "docker.io", "alice/m", "latest", "alice/m:latest"),
        ("Registry.Example.org:443/a_b/c-d.e", "registry.example.org:443", "a_b/c-d.e", "latest",
         "registry.example.org:443/a_b/c-d.e:latest"),
    ],
)  # fmt: skip
def test_targets(raw: str, registry: str, path: str, tag: str, ref: str) -> None:
    t = parse_target(raw)
    assert (t.registry, t.path, t.tag, t.ref) == (registry, path, tag, ref)


@pytest.mark.parametrize(
    "raw",
    ["", " ", "UPPER/case", "reg.io/", "reg.io/x@sha256:00", "a b", "x:", "x:-bad", "reg.io/x/", "a//b"],
)
def test_bad_targets_are_usage_errors(raw: str) -> None:
    with pytest.raises(UsageError):
        parse_target(raw)


def test_registry_keys() -> None:
    assert registry_key("https://index.docker.io/v1/") == "docker.io"
    assert registry_key("http://127.0.0.1:5000") == "127.0.0.1:5000"
    assert registry_key("Registry.Example.org/v2/") == "registry.example.org"
