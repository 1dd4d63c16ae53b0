"""The image catalogue (`images/catalogue.yaml`): framework, version, CUDA flavour -> base image, plus the
package sets of each project type and the lab's own base images. Which base a framework maps to is data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ds01.config import shipped_dir
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


def catalogue_path(config_source: Path | None = None) -> Path:
    """An admin's copy beside the config wins over the one shipped with ds01."""
    if config_source is not None:
        local = config_source.parent / "images" / CATALOGUE_FILE
        if local.is_file():
            return local
    return shipped_dir("images") / CATALOGUE_FILE


def load_catalogue(config_source: Path | None = None) -> Catalogue:
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
