"""Where `image-push` sends an image: `REGISTRY/REPO[:TAG]`, read as Docker reads it (engine-free, used by
both sides: the client picks the user's registry login by it, ds01d checks the name before tagging).

The first part is a registry when it has a `.` or a `:` or is `localhost` (`127.0.0.1:5000/lab/model`);
otherwise the name is on Docker Hub (`alice/model` is `docker.io/alice/model`). No digest; the tag defaults
to `latest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ds01.errors import UsageError

DOCKER_HUB = "docker.io"
HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_REGISTRY = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9-]+)*(?::[0-9]{1,5})?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
EXAMPLE = "registry.example.org/lab/my-model:v1"


@dataclass(frozen=True)
class PushTarget:
    registry: str  # `docker.io` for Docker Hub
    path: str  # `lab/my-model` (Docker Hub names of one part get `library/`)
    tag: str

    @property
    def repository(self) -> str:
        """The name the engine tags and pushes (`registry/path`; Docker Hub's without its registry)."""
        return self.path if self.registry == DOCKER_HUB else f"{self.registry}/{self.path}"

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def shown(self) -> str:
        return f"{self.registry}/{self.path}:{self.tag}"


def parse_target(raw: str) -> PushTarget:
    """`REGISTRY/REPO[:TAG]` checked: one clear line (exit 2) when it is not a name Docker can push to."""
    text = raw.strip()
    hint = f"give REGISTRY/REPO[:TAG], e.g. {EXAMPLE}"
    if not text or len(text) > 255 or any(c.isspace() for c in text):
        raise UsageError(f"{raw!r} is not an image name to push to", hint=hint)
    if "@" in text:
        raise UsageError(f"{text!r}: a push target takes a tag, not a digest", hint=hint)
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, remainder = first, rest
        if not _REGISTRY.fullmatch(registry):
            raise UsageError(f"{registry!r} is not a registry host[:port]", hint=hint)
        registry = registry.lower()
    else:
        registry, remainder = DOCKER_HUB, text
    path, tag = remainder, "latest"
    if ":" in remainder.rsplit("/", 1)[-1]:
        path, tag = remainder.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise UsageError(f"{tag!r} is not a valid tag", hint="letters, digits, `_`, `.`, `-`; e.g. v1")
    if not _PATH.fullmatch(path):
        raise UsageError(
            f"{path!r} is not a valid repository name",
            hint="lower-case letters, digits and `._-`, parts separated by `/`, e.g. lab/my-model",
        )
    if registry in HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    return PushTarget(registry, path, tag)


def registry_key(raw: str) -> str:
    """A key of `~/.docker/config.json`'s `auths` as a bare `host[:port]` (scheme and API path dropped)."""
    key = raw.strip().lower()
    for scheme in ("https://", "http://"):
        key = key.removeprefix(scheme)
    key = key.split("/", 1)[0]
    return DOCKER_HUB if key in HUB_ALIASES else key
