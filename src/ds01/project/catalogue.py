"""The image catalogue (`images/catalogue.yaml`): framework, version, CUDA flavour -> base image, plus the
package sets of each project type and the lab's own base images. Which base a framework maps to is data.

ds01d reads the file (`load_catalogue`: an admin's copy beside the config wins) and serves it as JSON
(`catalogue_json`); clients rebuild it with `catalogue_from_json` and never read the host's config folder.
Engine-free, and PyYAML is imported only by `load_catalogue`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ds01.errors import ConfigError, UsageError

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
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise Ds01Error(f"ds01d sent a malformed image catalogue: {exc}", hint="see ds01d's log") from None
