"""Every label key and every naming rule ds01 uses (CONTRACT §2)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ds01.errors import InvalidName

LABEL_PREFIX = "ds01."
LABEL_MANAGED = "ds01.managed"
LABEL_USER = "ds01.user"
LABEL_UID = "ds01.uid"
LABEL_PROJECT = "ds01.project"
LABEL_INTERFACE = "ds01.interface"
LABEL_CREATED_AT = "ds01.created_at"
LABEL_WORKSPACE = "ds01.workspace"
LABEL_GPU_SLOTS = "ds01.gpu.slots"
LABEL_GPU_UUIDS = "ds01.gpu.uuids"
LABEL_GPU_GPUEQ = "ds01.gpu.gpueq"
LABEL_FRAMEWORK = "ds01.framework"
LABEL_PROJECT_TYPE = "ds01.type"
LABEL_BASE_IMAGE = "ds01.base_image"
LABEL_DOCKERFILE = "ds01.dockerfile"
LABEL_COMMITTED_FROM = "ds01.committed_from"
# `container-run NAME --rm`: `<pid>:<start time>:<uid>` of the client process the run lives with (blank on
# every other container), so a restarted ds01d knows whose run it is and whether its client still runs.
LABEL_RUN_ONCE = "ds01.run_once"
LABEL_SLURM_JOB = "ds01.slurm_job"  # cluster mode: the Slurm job the container runs in (set only there)
# What the image was built from (project/recipe_hash.py): set by the client, so as far as ds01d knows a claim
# of the owner about their own image; it only ever decides whether `image-update NAME` rebuilds.
LABEL_RECIPE = "ds01.recipe"

MANAGED_FILTER = f"{LABEL_MANAGED}=true"

INTERFACES = ("atomic", "orchestration", "wizard")

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
CONTAINER_SEPARATOR = "._."
USERNAME_MAX = 32


def normalise_name(raw: str) -> str:
    """Lower-case, spaces to '-', then check CONTRACT §2's pattern; exit 2 otherwise."""
    name = raw.strip().lower().replace(" ", "-")
    if not NAME_PATTERN.fullmatch(name) or ".." in name or CONTAINER_SEPARATOR in name:
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        raise InvalidName(
            f"invalid name {shown!r}",
            hint="use 1-63 of a-z 0-9 . _ - starting with a letter or digit, e.g. my-thesis",
        )
    return name


# The Docker reference grammar (distribution/reference): [domain/]path[:tag][@digest], or an image id.
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
# A first component is a registry only with a dot, a port or as localhost (as the engine splits names).
_DOMAIN = (
    rf"(?:localhost(?::[0-9]+)?|{_DOMAIN_PART}(?:\.{_DOMAIN_PART})+(?::[0-9]+)?"
    rf"|{_DOMAIN_PART}:[0-9]+|\[[0-9a-fA-F:]+\](?::[0-9]+)?)"
)
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"  # ASCII only, as the engine's \w
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*)(?::{_TAG})?(?:@{_DIGEST})?$"
)
_IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
_REPOSITORY_MAX = 255


def is_image_reference(ref: str) -> bool:
    """A reference the engine could parse: NAME[:TAG][@DIGEST] or an image id (`sha256:` + 64 hex)."""
    m = _IMAGE_REFERENCE.fullmatch(ref)
    return bool(_IMAGE_ID.fullmatch(ref) or (m and len(m.group("name")) <= _REPOSITORY_MAX))


def container_name(name: str, uid: int) -> str:
    return f"{name}{CONTAINER_SEPARATOR}{uid}"


def split_container_name(docker_name: str) -> tuple[str, int | None]:
    """`thesis._.1001` -> ("thesis", 1001); a foreign name comes back whole with no uid."""
    base, sep, uid = docker_name.lstrip("/").rpartition(CONTAINER_SEPARATOR)
    if sep and uid.isdigit():
        return base, int(uid)
    return docker_name.lstrip("/"), None


def image_repository(name: str, uid: int) -> str:
    return f"ds01-{uid}/{name}"


def image_name(name: str, uid: int) -> str:
    return f"{image_repository(name, uid)}:latest"


def sanitise_username(raw: str) -> str:
    """A safe, stable name for LDAP-style accounts: `h.baker@lab.example` -> `h_baker`."""
    local = raw.split("@", 1)[0].lower()
    safe = re.sub(r"[^a-z0-9_-]", "_", local)
    safe = re.sub(r"_+", "_", safe).strip("_-") or "user"
    if not safe[0].isalpha() and safe[0] != "_":
        safe = "u" + safe
    if len(safe) > USERNAME_MAX:
        import hashlib  # only for long names; OpenSSL's load is not free

        digest = hashlib.md5(raw.encode(), usedforsecurity=False).hexdigest()[:4]
        safe = f"{safe[: USERNAME_MAX - 5]}_{digest}"
    return safe


def utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def base_labels(*, user: str, uid: int, project: str, interface: str, workspace: str) -> dict[str, str]:
    return {
        LABEL_MANAGED: "true",
        LABEL_USER: user,
        LABEL_UID: str(uid),
        LABEL_PROJECT: project,
        LABEL_INTERFACE: interface,
        LABEL_CREATED_AT: utc_now_iso(),
        LABEL_WORKSPACE: workspace,
    }
