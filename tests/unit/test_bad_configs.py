"""A corpus of broken configs: each is refused with one line `file:line: key: problem` (exit 2 from
`ds01d --check-config`), never a traceback, and never accepted by accident."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ds01.config import LIMIT_PARSERS, POLICY_PARSERS, load_config
from ds01.errors import ConfigError

BILLION_LAUGHS = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [f"{n}: &{n} [{', '.join(['*' + p] * 9)}]" for p, n in zip("abcdefg", "bcdefgh", strict=True)]
    + ["defaults: *h"]
)

HAND_PICKED: list[tuple[str, str]] = [
    ("defaults: [1, 2]", "expected a mapping"),
    ("defaults:\n  max_gpus_eq: 1", "unknown key"),
    ("defaults:\n  memory: lots", "defaults.memory"),
    ("defaults:\n  memory: -4g", "negative"),
    ("defaults:\n  max_cpus: .nan", "finite"),
    ("defaults:\n  max_cpus: .inf", "finite"),
    ("defaults:\n  max_gpu_equivalents: -1", "negative"),
    ("defaults:\n  priority: 101", "priority is 0-100"),
    ("defaults:\n  allow_full_gpu: yes please", "true or false"),
    ("defaults:\n  max_cpus: 4\n  max_cpus: 8", "duplicate key"),
    ("defaults:\n  max_cpus: 4\ndefaults:\n  memory: 1g", "duplicate key"),
    ("? [a, b]\n: 1", "a key must be a plain name"),
    ("groups:\n  student: [a]", "expected a mapping"),
    ("groups:\n  student:\n    members: alice", "list of names"),
    ("groups:\n  student:\n    admin: maybe", "true or false"),
    ("groups:\n  student:\n    memory: 1g\ndefault_group: nobody", "no group named"),
    ("user_overrides:\n  alice:\n    max_gpu: 2", "unknown key"),
    ("policies:\n  check_interval_m: soon", "expected a number"),
    ("gpu:\n  backend: cuda", "not one of"),
    ("gpu:\n  attach: magic", "not one of"),
    ("gpu:\n  driver: x", "unknown key"),
    ("cluster:\n  backend: kubernetes", "must be none or slurm"),
    ("cluster:\n  scheduler: slurm", "unknown key"),
    ("cluster:\n  backend: slurm\n  partition: 'gpu; rm -rf /'", "not a Slurm name"),
    ("cluster:\n  node_name: [n1]", "not a Slurm name"),
    ("cluster:\n  registry: 'http://reg'", "not a registry"),
    ("cluster: slurm", "expected a mapping"),
    ("paths:\n  workspace_root: ~/workspace", "absolute path"),
    ("paths:\n  workspace_root: relative", "absolute path"),
    ("paths:\n  socket: 5", "absolute path"),
    ("paths:\n  data_roots: /srv/data", "list of names"),
    ("paths:\n  data_roots: [data]", "absolute path"),
    ("paths:\n  home: /x", "unknown key"),
    ("containers:\n  init: sometimes", "true or false"),
    ("containers:\n  env: [A]", "expected a mapping"),
    ("containers:\n  privileged: true", "unknown key"),
    ("images:\n  http_proxy: [x]", "non-empty string"),
    ("images:\n  registry_password: x", "unknown key"),
    ("surprise: 1", "unknown key"),
    ("defaults: {memory: 1g", "invalid YAML"),
    ("defaults:\n\tmax_cpus: 4", "invalid YAML"),
    ("!!python/object/apply:os.system ['id']", "top level: expected a mapping"),
    ("defaults: !!python/name:os.system", "invalid YAML"),
    (BILLION_LAUGHS, "expands to over"),
    ("x" * (1 << 20 + 1), "over 1024 KiB"),
]

WRONG_VALUES = ["abc", [1], {"a": 1}, -1, True, ".nan"]


def generated() -> list[tuple[str, str]]:
    cases = []
    for key in LIMIT_PARSERS:
        for value in WRONG_VALUES:
            if key == "allow_full_gpu" and value is True:
                continue
            shown = value if isinstance(value, str) else repr(value).replace("True", "true").replace("'", '"')
            cases.append((f"defaults:\n  {key}: {shown}", f"defaults.{key}"))
    for key in POLICY_PARSERS:
        for value in ("abc", "[1]", "-3", "null"):
            cases.append((f"policies:\n  {key}: {value}", f"policies.{key}"))
    return cases


CORPUS = HAND_PICKED + generated()


def test_the_corpus_is_large():
    assert len(CORPUS) >= 150


@pytest.mark.parametrize(("text", "needle"), CORPUS, ids=range(len(CORPUS)))
def test_a_bad_config_is_one_clear_line(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "resource-limits.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert needle in message, message


@pytest.mark.parametrize(("text", "needle"), [*HAND_PICKED[:6], (BILLION_LAUGHS, "expands to over")])
def test_check_config_exits_2_with_that_line(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    ds01d = str(Path(sys.executable).parent / "ds01d")
    done = subprocess.run([ds01d, "--check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr


SEEDS_CONFIG = """\
defaults:
  max_gpus: 2
  max_cpus: 16
  memory: 64GB
  priority: 50
"""


def test_the_seeds_own_config_is_read_with_its_old_names(tmp_path: Path) -> None:
    """Issue 17: the lab's YAML (`max_gpus`, `memory: 64GB`) works; the old name is read as the new one."""
    path = tmp_path / "resource-limits.yaml"
    path.write_text(SEEDS_CONFIG)
    config = load_config(path)
    assert config.defaults["max_gpu_equivalents"] == 2.0 and config.defaults["memory"] == 64 * 1024**3
    assert config.notices == (
        "defaults.max_gpus: an old name, read as 'max_gpu_equivalents' (write that instead)",
    )
    ds01d = str(Path(sys.executable).parent / "ds01d")
    done = subprocess.run([ds01d, "--check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "notice: defaults.max_gpus: an old name" in done.stderr


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("defaults:\n  cpus: 4\n  max_tasks: 100\n", None),
        ("defaults:\n  max_gpus: 1\n  max_gpu_equivalents: 2\n", "which is given too"),
        ("defaults:\n  max_gpu: 1\n", "did you mean 'max_gpu_equivalents'?"),
        ("groups:\n  student:\n    max_mig_instances: 1.5\n", None),
    ],
)
def test_old_and_ignored_names(tmp_path: Path, text: str, needle: str | None) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    if needle is None:
        assert load_config(path).notices
        return
    with pytest.raises(ConfigError, match=re.escape(needle)):
        load_config(path)
