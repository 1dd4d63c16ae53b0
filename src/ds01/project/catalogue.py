"""The image catalogue (`images/catalogue.yaml`): framework, version, CUDA flavour -> base image, plus the
package sets of each project type and the lab's own base images. Which base a framework maps to is data.

ds01d reads the file (`load_catalogue`: an admin's copy beside the config wins) and serves it as JSON
(`catalogue_json`); clients rebuild it with `catalogue_from_json` and never read the host's config folder.
Engine-free, and PyYAML is imported only by `load_catalogue`.

What this server can actually build from comes from ds01d too (`GET /v1/catalogue/bases`: each base present
or not, its size, whether its registry answers, and whether builds have network): `Availability`, which the
wizards use to offer local bases first and to refuse a base that cannot be had here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ds01.errors import ConfigError, OperationFailed, UsageError

CATALOGUE_FILE = "catalogue.yaml"


@dataclass(frozen=True)
class BaseChoice:
    """One resolved base: `pytorch` 2.5.1 for cuda12 -> `pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime`."""

    framework: str
    version: str
    flavour: str
    image: str

    @property
    def label(self) -> str:
        return f"{self.framework}-{self.version}"


@dataclass(frozen=True)
class Framework:
    name: str
    title: str
    default_version: str
    versions: Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class ProjectType:
    name: str
    title: str
    common: bool
    pip: tuple[str, ...]


@dataclass(frozen=True)
class LabImage:
    image: str
    dockerfile: Path
    offline: str | None


@dataclass(frozen=True)
class Catalogue:
    source: Path
    default_framework: str
    default_type: str
    default_flavour: str
    frameworks: Mapping[str, Framework]
    types: Mapping[str, ProjectType]
    common_apt: tuple[str, ...]
    common_pip: tuple[str, ...]
    lab_images: tuple[LabImage, ...]
    download_gb: Mapping[str, float] = field(default_factory=dict)  # approximate download size of a base

    def bases(self) -> list[BaseChoice]:
        """Every base image the catalogue names, once each (the first framework/version naming it wins)."""
        seen: dict[str, BaseChoice] = {}
        for framework in self.frameworks.values():
            for version, flavours in framework.versions.items():
                for flavour, image in flavours.items():
                    seen.setdefault(image, BaseChoice(framework.name, version, flavour, image))
        return list(seen.values())

    def is_lab(self, image: str) -> bool:
        return any(lab.image == image for lab in self.lab_images)

    def resolve(self, spec: str, *, flavour: str | None = None) -> BaseChoice:
        """`pytorch`, `pytorch:2.4.1` or `pytorch:2.4.1:cuda11` -> the base image to build from."""
        name, _, rest = spec.strip().lower().partition(":")
        version, _, flavour_part = rest.partition(":")
        framework = self.frameworks.get(name)
        if framework is None:
            raise UsageError(
                f"unknown framework {name!r}", hint=f"choose one of {', '.join(self.frameworks)}"
            )
        version = version or framework.default_version
        flavours = framework.versions.get(version)
        if flavours is None:
            known = ", ".join(framework.versions)
            raise UsageError(f"{framework.title} {version} is not in the catalogue", hint=f"known: {known}")
        wanted = flavour_part or flavour
        if wanted and wanted not in flavours:
            raise UsageError(
                f"{framework.title} {version} has no {wanted!r} build",
                hint=f"available: {', '.join(flavours)}",
            )
        chosen = wanted or (
            self.default_flavour if self.default_flavour in flavours else next(iter(flavours))
        )
        return BaseChoice(name, version, chosen, flavours[chosen])

    def project_type(self, name: str) -> ProjectType:
        found = self.types.get(name.strip().lower())
        if found is None:
            raise UsageError(f"unknown project type {name!r}", hint=f"choose one of {', '.join(self.types)}")
        return found

    def packages(self, project_type: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(apt, pip) packages a project type adds to the base."""
        kind = self.project_type(project_type)
        if not kind.common:
            return (), kind.pip
        return self.common_apt, self.common_pip + kind.pip


def _shipped_images() -> Path:
    """The `images` folder shipped with ds01: in the wheel, else in the source tree."""
    here = Path(__file__).resolve().parents[1]
    packaged = here / "_shipped" / "images"
    return packaged if packaged.is_dir() else here.parents[1] / "images"


def catalogue_path(config_source: Path | None = None) -> Path:
    """An admin's copy beside the config wins over the one shipped with ds01."""
    if config_source is not None:
        local = config_source.parent / "images" / CATALOGUE_FILE
        if local.is_file():
            return local
    return _shipped_images() / CATALOGUE_FILE


def load_catalogue(config_source: Path | None = None) -> Catalogue:
    import yaml

    path = catalogue_path(config_source)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the image catalogue: {exc}") from exc
    try:
        return _parse(path, data)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"{path}: malformed image catalogue: {exc}",
            hint="compare it with the catalogue shipped with ds01",
        ) from exc


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in (value or ()))


def _parse(path: Path, data: Mapping[str, Any]) -> Catalogue:
    frameworks = {
        str(name): Framework(
            name=str(name),
            title=str(body.get("title", name)),
            default_version=str(body["default_version"]),
            versions={
                str(v): {str(f): str(img) for f, img in flav.items()} for v, flav in body["versions"].items()
            },
        )
        for name, body in data["frameworks"].items()
    }
    sets = dict(data.get("package_sets") or {})
    common = sets.pop("common", {}) or {}
    types = {
        str(name): ProjectType(
            str(name), str(body.get("title", name)), bool(body.get("common", True)), _strings(body.get("pip"))
        )
        for name, body in sets.items()
    }
    labs = tuple(
        LabImage(str(entry["image"]), path.parent / str(entry["dockerfile"]), entry.get("offline"))
        for entry in data.get("lab_images") or ()
    )
    catalogue = Catalogue(
        source=path,
        default_framework=str(data.get("default_framework", next(iter(frameworks)))),
        default_type=str(data.get("default_type", next(iter(types)))),
        default_flavour=str(data.get("default_flavour", "cuda12")),
        frameworks=frameworks,
        types=types,
        common_apt=_strings(common.get("apt")),
        common_pip=_strings(common.get("pip")),
        lab_images=labs,
        download_gb={str(k): float(v) for k, v in (data.get("download_gb") or {}).items()},
    )
    if catalogue.default_framework not in frameworks or catalogue.default_type not in types:
        raise ValueError("default_framework / default_type must name an entry of the catalogue")
    return catalogue


def catalogue_json(catalogue: Catalogue) -> dict[str, Any]:
    """The catalogue as plain JSON, as ds01d serves it (`GET /v1/catalogue`)."""
    return {
        "source": str(catalogue.source),
        "default_framework": catalogue.default_framework,
        "default_type": catalogue.default_type,
        "default_flavour": catalogue.default_flavour,
        "frameworks": {
            name: {"title": f.title, "default_version": f.default_version,
                   "versions": {v: dict(flav) for v, flav in f.versions.items()}}
            for name, f in catalogue.frameworks.items()
        },
        "types": {
            n: {"title": t.title, "common": t.common, "pip": list(t.pip)} for n, t in catalogue.types.items()
        },
        "common_apt": list(catalogue.common_apt),
        "common_pip": list(catalogue.common_pip),
        "lab_images": [
            {"image": lab.image, "dockerfile": str(lab.dockerfile), "offline": lab.offline}
            for lab in catalogue.lab_images
        ],
        "download_gb": dict(catalogue.download_gb),
    }  # fmt: skip


def catalogue_from_json(data: Any) -> Catalogue:
    """The client's copy of the catalogue ds01d served; a malformed answer is an error, not a traceback."""
    from ds01.errors import Ds01Error

    try:
        frameworks = {
            str(name): Framework(
                name=str(name),
                title=str(body["title"]),
                default_version=str(body["default_version"]),
                versions={
                    str(v): {str(k): str(img) for k, img in flav.items()}
                    for v, flav in body["versions"].items()
                },
            )
            for name, body in data["frameworks"].items()
        }
        types = {
            str(name): ProjectType(str(name), str(body["title"]), bool(body["common"]), _strings(body["pip"]))
            for name, body in data["types"].items()
        }
        labs = tuple(
            LabImage(
                str(e["image"]),
                Path(str(e["dockerfile"])),
                None if e.get("offline") is None else str(e["offline"]),
            )
            for e in data["lab_images"]
        )
        return Catalogue(
            source=Path(str(data["source"])),
            default_framework=str(data["default_framework"]),
            default_type=str(data["default_type"]),
            default_flavour=str(data["default_flavour"]),
            frameworks=frameworks,
            types=types,
            common_apt=_strings(data["common_apt"]),
            common_pip=_strings(data["common_pip"]),
            lab_images=labs,
            download_gb={str(k): float(v) for k, v in (data.get("download_gb") or {}).items()},
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise Ds01Error(f"ds01d sent a malformed image catalogue: {exc}", hint="see ds01d's log") from None


# -- what can be built here (from ds01d) --------------------------------------------------------------------


@dataclass(frozen=True)
class BaseStatus:
    """One catalogue base on this server: here already, downloadable, or not to be had."""

    image: str
    present: bool
    size: int | None  # bytes on this server (present), else None
    download_gb: float | None  # approximate download size (catalogue data), when known
    lab: bool  # one of the lab's own bases: built here by `ds01 image build-base`, never downloaded
    registry: str  # the registry it comes from ("" for a lab base)
    reachable: bool | None  # does that registry answer (None: a lab base, or not checked)

    @property
    def buildable(self) -> bool:
        return self.present or (not self.lab and self.reachable is not False)

    def mark(self) -> str:
        """How a menu shows it: `(on this server)`, `(download, ~3.6 GB)`, or why it cannot be had."""
        if self.present:
            return "(on this server)"
        if self.lab:
            return "(not built on this server yet: an admin runs `ds01 image build-base`)"
        if self.reachable is False:
            return f"(unavailable: this server cannot reach {self.registry})"
        return f"(download, ~{self.download_gb:g} GB)" if self.download_gb else "(download)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "image": self.image, "present": self.present, "size": self.size,
            "download_gb": self.download_gb, "lab": self.lab, "registry_host": self.registry,
            "registry": "local" if self.lab else {True: "reachable", False: "unreachable", None: "unknown"}[
                self.reachable
            ],
            "buildable": self.buildable,
        }  # fmt: skip


@dataclass(frozen=True)
class Availability:
    """What ds01d said about the catalogue's bases, and whether builds can download packages."""

    bases: Mapping[str, BaseStatus]
    build_network: str  # `none`: a build's RUN steps cannot reach PyPI or an apt mirror

    @property
    def packages_reachable(self) -> bool:
        return self.build_network != "none"

    def of(self, image: str) -> BaseStatus | None:
        return self.bases.get(image)

    def buildable(self, image: str) -> bool:
        status = self.bases.get(image)
        return status is None or status.buildable  # not a catalogue base: the build decides


def availability_from_json(data: Any) -> Availability:
    from ds01.errors import Ds01Error

    try:
        bases = {
            str(b["image"]): BaseStatus(
                image=str(b["image"]),
                present=bool(b["present"]),
                size=None if b.get("size") is None else int(b["size"]),
                download_gb=None if b.get("download_gb") is None else float(b["download_gb"]),
                lab=bool(b["lab"]),
                registry=str(b.get("registry_host") or ""),
                reachable={"reachable": True, "unreachable": False}.get(str(b["registry"])),
            )
            for b in data["bases"]
        }
        return Availability(bases, str(data["build_network"]))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise Ds01Error(f"ds01d sent a malformed list of bases: {exc}", hint="see ds01d's log") from None


def unavailable_base(status: BaseStatus) -> OperationFailed:
    """Why a chosen base cannot be built from here, and what to do instead (exit 1)."""
    if status.lab:
        return OperationFailed(
            f"the lab base {status.image} is not built on this server yet",
            hint="ask an admin to run `ds01 image build-base`, or pick a base that is on this server "
            "(`ds01 image bases`)",
        )
    from ds01.project.build_view import registry_unreachable

    return registry_unreachable(status.image, status.registry)
