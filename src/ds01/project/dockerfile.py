"""Dockerfile generation and editing: the recipe of a project image.

A generated Dockerfile builds FROM the catalogue's base, carries the `ds01.*` labels, installs the project
type's packages, keeps a marked section for the user's own steps, and bakes the user in from build
arguments (uid, gid, name) so that no container ever needs a runtime commit to get its user. Steps that
need the network appear only when there is something to install, so a project with no packages builds
offline. Only the legacy builder's syntax is used (docker-py cannot drive BuildKit).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ds01 import naming
from ds01.errors import UsageError

HEADER = "# ds01 image recipe"
ADDITIONS_START = "# >>> your additions (kept when ds01 regenerates this file) >>>"
ADDITIONS_END = "# <<< your additions <<<"
REQUIREMENTS = "requirements.txt"
REQUIREMENTS_IN_IMAGE = "/tmp/ds01/requirements.txt"
PIP_RUN = "RUN python3 -m pip install --no-cache-dir"
APT_RUN = "RUN apt-get update"
APT_INSTALL = " && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends"
APT_CLEAN = " && rm -rf /var/lib/apt/lists/*"
INDENT = "        "
_ONE_LINE = {"pip": f"{PIP_RUN} ", "apt": f"{APT_RUN}{APT_INSTALL} "}

BUILD_ARG_UID = "DS01_UID"
BUILD_ARG_GID = "DS01_GID"
BUILD_ARG_USER = "DS01_USER"
BUILD_ARG_CA = "DS01_CA_PEM"

# pip: a name, optional extras, optional version clauses; anything fancier belongs in requirements.txt.
_PIP_SPEC = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?"
    r"((===?|~=|!=|<=?|>=?)[A-Za-z0-9.*+!_-]+(,(===?|~=|!=|<=?|>=?)[A-Za-z0-9.*+!_-]+)*)?$"
)
_APT_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+:~-]+)?$")
_NAME_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")

ENVIRONMENT = (
    ("PYTHONUNBUFFERED", "1"),
    ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
    ("PIP_BREAK_SYSTEM_PACKAGES", "1"),
    ("CUDA_DEVICE_ORDER", "PCI_BUS_ID"),
    ("HF_HOME", "/workspace/.cache/huggingface"),
    ("TORCH_HOME", "/workspace/.cache/torch"),
    ("MPLCONFIGDIR", "/workspace/.cache/matplotlib"),
)

CA_STEP = f"""\
# A lab CA for an intercepting proxy: ds01 passes an admin's CA bundle at build time (empty = nothing).
ARG {BUILD_ARG_CA}=""
RUN if [ -n "${BUILD_ARG_CA}" ]; then \\
      mkdir -p /usr/local/share/ca-certificates /etc/ssl/certs /etc/xdg/pip \\
      && printf '%s\\n' "${BUILD_ARG_CA}" > /usr/local/share/ca-certificates/ds01-lab-ca.crt \\
      && {{ update-ca-certificates >/dev/null 2>&1 \\
           || cat /usr/local/share/ca-certificates/ds01-lab-ca.crt \\
              >> /etc/ssl/certs/ca-certificates.crt; }} \\
      && printf '[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n' > /etc/xdg/pip/pip.conf; \\
    fi"""

# Writes /etc/passwd and /etc/group lines directly, so it works on Debian, Ubuntu, Alpine and busybox alike.
# A base entry that already has the uid (or the name) is replaced; a group with the gid is reused.
USER_STEP = f"""\
# You, baked in: ds01 passes your uid, gid and name, so files you make in /workspace stay yours.
ARG {BUILD_ARG_UID}=1000
ARG {BUILD_ARG_GID}=1000
ARG {BUILD_ARG_USER}=user
RUN set -e; \\
    if [ "${BUILD_ARG_UID}" != 0 ]; then \\
      old=$(sed -n "s/^\\([^:]*\\):[^:]*:${BUILD_ARG_UID}:.*/\\1/p" /etc/passwd); \\
      for name in $old "${BUILD_ARG_USER}"; do \\
        sed -i "/^$name:/d" /etc/passwd; \\
        if [ -f /etc/shadow ]; then sed -i "/^$name:/d" /etc/shadow; fi; \\
      done; \\
      if ! grep -q "^[^:]*:[^:]*:${BUILD_ARG_GID}:" /etc/group; then \\
        sed -i "/^${BUILD_ARG_USER}:/d" /etc/group; \\
        echo "${BUILD_ARG_USER}:x:${BUILD_ARG_GID}:" >> /etc/group; \\
      fi; \\
      shell=/bin/sh; if [ -x /bin/bash ]; then shell=/bin/bash; fi; \\
      home="/home/${BUILD_ARG_USER}"; \\
      entry="${BUILD_ARG_USER}:x:${BUILD_ARG_UID}:${BUILD_ARG_GID}"; \\
      echo "$entry:${BUILD_ARG_USER}:$home:$shell" >> /etc/passwd; \\
      if [ -f /etc/shadow ]; then echo "${BUILD_ARG_USER}:!:19000:0:99999:7:::" >> /etc/shadow; fi; \\
      mkdir -p "$home"; \\
      chown "${BUILD_ARG_UID}:${BUILD_ARG_GID}" "$home"; \\
    fi
ENV HOME=/home/${{{BUILD_ARG_USER}}}
WORKDIR /workspace
USER ${{{BUILD_ARG_UID}}}:${{{BUILD_ARG_GID}}}"""


@dataclass(frozen=True)
class DockerfileSpec:
    project: str
    base_image: str
    framework: str
    project_type: str
    apt: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    requirements: bool = False
    additions: str = ""


# -- package names ------------------------------------------------------------------------------------


def package_name(spec: str) -> str:
    """The comparable name of a pip or apt spec: `Scikit_Learn[x]>=1.3` -> `scikit-learn`."""
    match = _NAME_PART.match(spec.strip())
    name = match.group(0) if match else spec.strip()
    return re.sub(r"[-_.]+", "-", name.split("=", 1)[0]).lower()


def check_pip(specs: Iterable[str]) -> tuple[str, ...]:
    out = []
    for spec in specs:
        if not _PIP_SPEC.fullmatch(spec):
            raise UsageError(
                f"not a pip package spec: {spec!r}",
                hint="use NAME or NAME==VERSION; put URLs and options in a file and pass -r FILE",
            )
        out.append(spec)
    return tuple(out)


def check_apt(names: Iterable[str]) -> tuple[str, ...]:
    out = []
    for name in names:
        if not _APT_NAME.fullmatch(name):
            raise UsageError(f"not a Debian package name: {name!r}", hint="e.g. --add-system ffmpeg")
        out.append(name)
    return tuple(out)


def split_packages(values: Iterable[str]) -> list[str]:
    """`--add "a b" --add c,d` -> [a, b, c, d]."""
    return [p for v in values for p in re.split(r"[\s,]+", v.strip()) if p]


# -- generation -----------------------------------------------------------------------------------------


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _labels(spec: DockerfileSpec) -> str:
    pairs = (
        (naming.LABEL_MANAGED, "true"),
        (naming.LABEL_PROJECT, spec.project),
        (naming.LABEL_FRAMEWORK, spec.framework),
        (naming.LABEL_PROJECT_TYPE, spec.project_type),
        (naming.LABEL_BASE_IMAGE, spec.base_image),
    )
    return "LABEL " + " \\\n      ".join(f"{k}={_quote(v)}" for k, v in pairs)


def _environment() -> str:
    return "ENV " + " \\\n    ".join(f"{k}={v}" for k, v in ENVIRONMENT)


def apt_block(packages: Sequence[str]) -> str:
    lines = [f"{APT_RUN} \\", f"{APT_INSTALL} \\", *(f"{INDENT}{p} \\" for p in packages), APT_CLEAN]
    return "\n".join(lines)


def pip_block(packages: Sequence[str]) -> str:
    body = [f"{INDENT}{p} \\" for p in packages]
    body[-1] = body[-1].removesuffix(" \\")
    return "\n".join([f"{PIP_RUN} \\", *body])


def _package_steps(spec: DockerfileSpec) -> list[str]:
    steps = []
    if spec.apt:
        steps.append("# System packages (Debian/Ubuntu apt)\n" + apt_block(spec.apt))
    if spec.pip:
        what = f'the "{spec.project_type}" project type' if spec.project_type else "this project"
        steps.append(f"# Python packages of {what}\n" + pip_block(spec.pip))
    if spec.requirements:
        steps.append(
            f"# Python packages from {REQUIREMENTS} (edit it, then rebuild)\n"
            f"COPY {REQUIREMENTS} {REQUIREMENTS_IN_IMAGE}\n"
            # pip runs only when the file names a package, so an empty list builds offline on any base
            f"RUN if grep -qvE '^[[:space:]]*(#|$)' {REQUIREMENTS_IN_IMAGE}; then \\\n"
            f"      python3 -m pip install --no-cache-dir -r {REQUIREMENTS_IN_IMAGE}; \\\n"
            "    fi"
        )
    return steps


def render(spec: DockerfileSpec) -> str:
    additions = spec.additions.strip("\n")
    head = (
        f"{HEADER} for project {spec.project!r}: the Dockerfile is the source of truth of your environment.\n"
        f"# Rebuild after editing:  image-update {spec.project} --rebuild\n"
        f'# Add packages:           image-update {spec.project} --add "pkg1 pkg2"   (apt: --add-system)\n'
        "# Put your own steps between the two 'your additions' markers: ds01 keeps them when it regenerates."
    )
    parts = [
        head,
        f"FROM {spec.base_image}",
        _labels(spec),
        _environment(),
        "USER root",
        CA_STEP,
        *_package_steps(spec),
        "\n".join(x for x in (ADDITIONS_START, additions, ADDITIONS_END) if x),
        USER_STEP,
    ]
    return "\n\n".join(parts) + "\n"


# -- reading a Dockerfile -----------------------------------------------------------------------------


def is_generated(text: str) -> bool:
    return text.startswith(HEADER)


def read_labels(text: str) -> dict[str, str]:
    """The `ds01.*` labels of a Dockerfile's LABEL instructions (continuation lines joined)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    labels: dict[str, str] = {}
    for line in joined.splitlines():
        if line.strip().upper().startswith("LABEL "):
            for key, quoted, bare in re.findall(r'(ds01\.[\w.]+)=(?:"((?:[^"\\]|\\.)*)"|(\S+))', line):
                labels[key] = quoted.replace('\\"', '"') if quoted or not bare else bare
    return labels


def additions(text: str) -> str:
    """The user's own lines between the markers ("" when there are none)."""
    lines = text.splitlines()
    if ADDITIONS_START not in lines or ADDITIONS_END not in lines:
        return ""
    start, end = lines.index(ADDITIONS_START), lines.index(ADDITIONS_END)
    return "\n".join(lines[start + 1 : end])


def uses_requirements(text: str) -> bool:
    return bool(re.search(rf"^\s*(COPY|ADD)\s+(\./)?{re.escape(REQUIREMENTS)}\s", text, re.M))


# -- editing ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    text: str
    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced or self.removed)


def _package_lines(lines: list[str]) -> dict[tuple[str, str], int]:
    """(kind, name) -> line index of every package a Dockerfile installs, kind `pip` or `apt`."""
    found: dict[tuple[str, str], int] = {}
    block = ""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if line in (f"{PIP_RUN} \\", f"{APT_RUN} \\"):
            block = "pip" if line.startswith(PIP_RUN) else "apt"
            continue
        if block:
            if stripped and not stripped.startswith(("&&", "-")):
                found.setdefault((block, package_name(stripped.removesuffix("\\").strip())), i)
            block = block if line.endswith("\\") else ""
            continue
        for kind, prefix in _ONE_LINE.items():
            if line.startswith(prefix):
                spec = line[len(prefix) :].split(APT_CLEAN)[0].strip()
                if spec and " " not in spec and not spec.startswith("-"):
                    found.setdefault((kind, package_name(spec)), i)
    return found


def _with_spec(line: str, spec: str) -> str:
    """The same package line with another version of the package."""
    for kind, prefix in _ONE_LINE.items():
        if line.startswith(prefix):
            return prefix + spec + (APT_CLEAN if kind == "apt" else "")
    return INDENT + spec + (" \\" if line.endswith("\\") else "")


def _spec_at(line: str) -> str:
    for prefix in _ONE_LINE.values():
        if line.startswith(prefix):
            return line[len(prefix) :].split(APT_CLEAN)[0].strip()
    return line.strip().removesuffix("\\").strip()


def add_packages(text: str, *, pip: Sequence[str] = (), apt: Sequence[str] = ()) -> Edit:
    """Add one step per package inside the additions section (apt first); each package appears once."""
    lines = text.splitlines()
    if ADDITIONS_START not in lines or ADDITIONS_END not in lines:
        lines += ["", ADDITIONS_START, ADDITIONS_END]
    existing = _package_lines(lines)
    added: list[str] = []
    replaced: list[str] = []
    new: dict[str, list[str]] = {"apt": [], "pip": []}
    for kind, spec in [*(("apt", s) for s in apt), *(("pip", s) for s in pip)]:
        key = (kind, package_name(spec))
        if key in existing:
            if existing[key] >= 0 and _spec_at(lines[existing[key]]).lower() != spec.lower():
                lines[existing[key]] = _with_spec(lines[existing[key]], spec)
                replaced.append(spec)
            continue
        existing[key] = -1
        new[kind].append(spec)
        added.append(spec)
    start = lines.index(ADDITIONS_START)
    lines[start + 1 : start + 1] = [_ONE_LINE["apt"] + p + APT_CLEAN for p in new["apt"]]
    end = lines.index(ADDITIONS_END)
    lines[end:end] = [_ONE_LINE["pip"] + p for p in new["pip"]]
    return Edit("\n".join(lines) + "\n", tuple(added), tuple(replaced))


def remove_packages(text: str, names: Sequence[str]) -> Edit:
    lines = text.splitlines()
    removed = []
    for raw in names:
        hits = [i for (_, name), i in _package_lines(lines).items() if name == package_name(raw)]
        for index in sorted(hits, reverse=True):
            _drop_line(lines, index)
        if hits:
            removed.append(raw)
    return Edit("\n".join(lines) + "\n", removed=tuple(removed))


def _drop_line(lines: list[str], index: int) -> None:
    """Remove a package line; keep its RUN block well-formed, or drop the block when it empties."""
    line = lines[index]
    if line.startswith(("RUN ", "COPY ")):
        del lines[index]
        return
    start = index
    while not lines[start].startswith("RUN "):
        start -= 1
    end = index
    while lines[end].endswith("\\"):
        end += 1
    del lines[index]
    end -= 1
    if not line.endswith("\\") and lines[index - 1].endswith(" \\"):
        lines[index - 1] = lines[index - 1].removesuffix(" \\")
    body = [x for x in lines[start + 1 : end + 1] if x.strip() and not x.strip().startswith(("&&", "-"))]
    if not body:
        del lines[start : end + 1]
        if (
            start > 0
            and lines[start - 1].startswith("# ")
            and (start >= len(lines) or not lines[start].strip())
        ):
            del lines[start - 1]  # the block's comment line
            if start - 1 < len(lines) and not lines[start - 1].strip():
                del lines[start - 1]


# -- requirements.txt ---------------------------------------------------------------------------------


def add_requirements(text: str, specs: Sequence[str]) -> Edit:
    lines = text.splitlines()
    index = {
        package_name(x): i for i, x in enumerate(lines) if x.strip() and not x.lstrip().startswith(("#", "-"))
    }
    added, replaced = [], []
    for spec in specs:
        name = package_name(spec)
        if name in index:
            if lines[index[name]].strip().lower() != spec.lower():
                lines[index[name]] = spec
                replaced.append(spec)
            continue
        index[name] = len(lines)
        lines.append(spec)
        added.append(spec)
    return Edit("\n".join(lines) + "\n", tuple(added), tuple(replaced))


def remove_requirements(text: str, names: Sequence[str]) -> Edit:
    wanted = {package_name(n): n for n in names}
    kept, removed = [], []
    for line in text.splitlines():
        name = package_name(line) if line.strip() and not line.lstrip().startswith(("#", "-")) else None
        if name in wanted:
            removed.append(wanted[name])
        else:
            kept.append(line)
    return Edit("\n".join(kept) + "\n" if kept else "", removed=tuple(removed))


def requirement_lines(text: str) -> list[str]:
    """The package lines of a requirements file (comments, blanks and options skipped)."""
    out = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            out.append(line)
    return out


# -- image references (which images a build reads) -------------------------------------------------------

_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:[-+])?(?P<word>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)
_ESCAPE_DIRECTIVE = re.compile(r"^#\s*escape\s*=\s*([\\`])\s*$", re.IGNORECASE)


def _logical_lines(text: str) -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    escape = "\\"
    lines = text.splitlines()
    for line in lines:  # parser directives come first, before any instruction or blank line
        found = _ESCAPE_DIRECTIVE.match(line.strip())
        if found:
            escape = found[1]
            continue
        if not line.strip().startswith("#") or not line.strip():
            break
    out: list[str] = []
    current = ""
    for raw in lines:
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue
        if raw.rstrip().endswith(escape):
            current += raw.rstrip()[:-1] + " "
            continue
        current += raw
        if current.strip():
            out.append(current.strip())
        current = ""
    if current.strip():
        out.append(current.strip())
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _expand(text: str, values: dict[str, str], where: str) -> str:
    def one(m: re.Match[str]) -> str:
        name = m["braced"] or m["plain"]
        op, word = m["op"], m["word"] or ""
        if m["braced"] and not op and word:
            raise UsageError(
                f"{where}: unsupported variable form {m[0]!r}", hint="use $NAME or ${NAME:-default}"
            )
        if op == ":-":
            return values.get(name) or _expand(word, values, where)
        if op == ":+":
            return _expand(word, values, where) if values.get(name) else ""
        if name not in values:
            raise UsageError(
                f"{where}: the variable ${name} has no value",
                hint="declare it with a default (ARG NAME=value) before it is used",
            )
        return values[name]

    return _VAR.sub(one, text)


def _arg_pairs(rest: str) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = []
    for token in rest.split():
        name, eq, value = token.partition("=")
        pairs.append((name, _unquote(value) if eq else None))
    return pairs


def _flags(words: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    flags: dict[str, list[str]] = {}
    rest = list(words)
    while rest and rest[0].startswith("--"):
        name, _, value = rest.pop(0)[2:].partition("=")
        flags.setdefault(name.lower(), []).append(value)
    return flags, rest


def image_references(text: str, build_args: dict[str, str] | None = None) -> list[str]:
    """Every image a build of this Dockerfile would read: each `FROM` (ARG defaults and build arguments
    substituted; a stage name is not an image), `COPY/ADD --from=` and `--mount=...,from=` that names no
    earlier stage, and the same inside `ONBUILD`. A variable with no value is a usage error (exit 2)."""
    build_args = dict(build_args or {})
    values: dict[str, str] = {}
    stages: list[str] = []
    refs: list[str] = []

    def add(ref: str) -> None:
        ref = ref.strip()
        if not ref or ref.lower() == "scratch" or ref.lower() in stages or ref.isdigit():
            return
        if ref not in refs:
            refs.append(ref)

    def instruction(line: str, lineno: int) -> None:
        words = line.split()
        keyword, args = words[0].upper(), words[1:]
        where = f"Dockerfile instruction {lineno} ({keyword})"
        if keyword == "ONBUILD" and args:
            instruction(" ".join(args), lineno)
            return
        if keyword == "ARG":
            for name, default in _arg_pairs(" ".join(args)):
                if name in build_args:
                    values[name] = build_args[name]
                elif default is not None:
                    values[name] = _expand(default, values, where)
            return
        flags, rest = _flags(args)
        if keyword == "FROM":
            if not rest:
                raise UsageError(f"{where}: FROM names no image")
            add(_expand(rest[0], values, where))
            if len(rest) >= 3 and rest[1].upper() == "AS":
                stages.append(rest[2].lower())
            else:
                stages.append(str(len(stages)))
            return
        for value in flags.get("from", []):
            add(_expand(_unquote(value), values, where))
        for mount in flags.get("mount", []):
            for part in _unquote(mount).split(","):
                key, _, value = part.partition("=")
                if key.strip().lower() == "from":
                    add(_expand(_unquote(value.strip()), values, where))

    for i, line in enumerate(_logical_lines(text), 1):
        instruction(line, i)
    return refs
