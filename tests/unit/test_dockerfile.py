"""Dockerfile generation against golden files, and the edits image-update makes.

Regenerate the golden files after an intended change with: DS01_UPDATE_GOLDEN=1 pytest tests/unit
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ds01.errors import UsageError
from ds01.project import dockerfile as recipe
from ds01.project.catalogue import load_catalogue

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CATALOGUE = load_catalogue()


def spec(
    framework: str, kind: str, *, requirements: bool = False, additions: str = ""
) -> recipe.DockerfileSpec:
    choice = CATALOGUE.resolve(framework)
    apt, pip = CATALOGUE.packages(kind)
    return recipe.DockerfileSpec(project="thesis", base_image=choice.image, framework=choice.label,
                                 project_type=kind, apt=apt, pip=() if requirements else pip,
                                 requirements=requirements, additions=additions)  # fmt: skip


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.Dockerfile"
    if os.environ.get("DS01_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with DS01_UPDATE_GOLDEN=1 once"
    assert text == path.read_text()


@pytest.mark.parametrize("framework", sorted(CATALOGUE.frameworks))
def test_every_framework_renders_its_golden_file(framework):
    check_golden(f"framework-{framework}", recipe.render(spec(framework, "ml")))


@pytest.mark.parametrize("kind", sorted(CATALOGUE.types))
def test_every_project_type_renders_its_golden_file(kind):
    check_golden(f"type-{kind}", recipe.render(spec("pytorch", kind)))


def test_requirements_replace_the_type_set_and_additions_are_kept():
    text = recipe.render(spec("pytorch", "nlp", requirements=True, additions="RUN echo mine"))
    check_golden("requirements-with-additions", text)
    assert "transformers" not in text and "COPY requirements.txt /tmp/ds01/requirements.txt" in text
    assert recipe.additions(text) == "RUN echo mine"
    assert recipe.uses_requirements(text)


def test_a_project_with_nothing_to_install_has_no_network_step():
    text = recipe.render(spec("python", "custom"))
    assert "apt-get" not in text and "pip install" not in text
    for needed in (
        "FROM ds01/python:3.11",
        "ARG DS01_UID",
        "WORKDIR /workspace",
        "USER ${DS01_UID}:${DS01_GID}",
        "PYTHONUNBUFFERED=1",
        "HF_HOME=/workspace/.cache/huggingface",
        "TORCH_HOME=",
        "MPLCONFIGDIR=",
    ):
        assert needed in text  # fmt: skip


def test_labels_read_back_from_a_generated_file():
    labels = recipe.read_labels(recipe.render(spec("tensorflow", "cv")))
    assert labels == {"ds01.managed": "true", "ds01.project": "thesis", "ds01.framework": "tensorflow-2.17.0",
                      "ds01.type": "cv", "ds01.base_image": "tensorflow/tensorflow:2.17.0-gpu"}  # fmt: skip


def test_add_puts_each_package_once_apt_first_and_replaces_a_version():
    text = recipe.render(spec("python", "custom"))
    first = recipe.add_packages(text, pip=["requests", "rich"], apt=["ffmpeg"])
    assert first.added == ("ffmpeg", "requests", "rich")
    section = recipe.additions(first.text).splitlines()
    assert section[0].endswith("ffmpeg && rm -rf /var/lib/apt/lists/*")
    assert section[1:] == [f"{recipe.PIP_RUN} requests", f"{recipe.PIP_RUN} rich"]
    again = recipe.add_packages(first.text, pip=["Requests", "rich==13.7.1"])
    assert again.added == () and again.replaced == ("rich==13.7.1",)
    assert again.text.count("rich") == 1 and "rich==13.7.1" in again.text


def test_remove_takes_packages_out_of_generated_blocks_and_additions():
    text = recipe.add_packages(recipe.render(spec("pytorch", "rl")), pip=["requests"]).text
    edit = recipe.remove_packages(text, ["stable-baselines3", "requests", "htop", "not-there"])
    assert edit.removed == ("stable-baselines3", "requests", "htop")
    assert "stable-baselines3" not in edit.text and "htop" not in edit.text and "requests" not in edit.text
    assert "        gymnasium\n\n" in edit.text  # the block's last line lost its continuation
    everything = [*CATALOGUE.common_apt, *CATALOGUE.common_pip, "gymnasium"]
    emptied = recipe.remove_packages(edit.text, everything).text
    assert "apt-get" not in emptied and "pip install" not in emptied
    assert "# Python packages" not in emptied and "# System packages" not in emptied


def test_requirements_edits_keep_comments_and_each_package_once():
    text = "# mine\nnumpy>=1.24\npandas\n"
    added = recipe.add_requirements(text, ["pandas==2.2.2", "requests"])
    assert added.text == "# mine\nnumpy>=1.24\npandas==2.2.2\nrequests\n"
    assert recipe.remove_requirements(added.text, ["NumPy"]).text == "# mine\npandas==2.2.2\nrequests\n"
    assert recipe.requirement_lines("-r base.txt\n# c\nx==1  # pinned\n\ny\n") == ["x==1", "y"]


@pytest.mark.parametrize("bad", ["requests; rm -rf /", "git+https://x/y", "a b", "-e .", "pkg==1.0 && echo"])
def test_package_specs_that_could_inject_steps_are_refused(bad):
    with pytest.raises(UsageError):
        recipe.check_pip([bad])


def test_apt_names_are_checked_and_package_lists_split():
    assert recipe.check_apt(["libgl1", "python3-dev", "g++"]) == ("libgl1", "python3-dev", "g++")
    with pytest.raises(UsageError):
        recipe.check_apt(["ffmpeg;reboot"])
    assert recipe.split_packages(["a b", "c,d", " "]) == ["a", "b", "c", "d"]
    assert recipe.package_name("Scikit_Learn[all]>=1.3") == "scikit-learn"
