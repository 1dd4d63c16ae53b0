"""The fake libnvidia-ml.so.1 (tests/fakes/fake_nvml.c), compiled once per run, and a probe that loads it
through the probe's own setting (`gpu.nvml_library`, an absolute path), in a fresh process. "No driver" is a
setting that names a path where no library is: the loader's search (LD_LIBRARY_PATH, ld.so.cache) is never
asked, so a real driver on the machine cannot stand in for the missing one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FAKE_SOURCE = Path(__file__).resolve().parent / "fakes" / "fake_nvml.c"
PROBE = (
    "import dataclasses, json, sys\n"
    "from ds01.config import GpuSettings\n"
    "from ds01.gpu.probe import probe_inventory\n"
    "settings = GpuSettings(backend=sys.argv[1], nvml_library=sys.argv[2])\n"
    "print(json.dumps(dataclasses.asdict(probe_inventory(settings))))\n"
)


def topology(
    gpus: Iterable[Mapping[str, Any]], *, driver: str = "550.54.15", init_error: int | None = None
) -> str:
    """The fake's topology file from GPU dicts: uuid, name, memory_mib, util, slices, mig, procs."""
    lines = [f"driver {driver}"]
    if init_error is not None:
        lines.append(f"init_error {init_error}")
    for g in gpus:
        mig = g.get("mig")
        util = "-" if g.get("util") is None else str(g["util"])
        lines.append(
            f"gpu {g['uuid']} {g.get('memory_mib', 81920)} {util} {int(mig is not None)} "
            f"{g.get('slices', 7)} {g.get('name', 'NVIDIA A100-SXM4-80GB')}"
        )
        for m in mig or []:
            lines.append(
                f"mig {m['index']} {m['uuid']} {m.get('gi', m['index'] + 1)} {m.get('ci', 0)} "
                f"{m['gi_slices']} {m.get('ci_slices', m['gi_slices'])} {m['memory_mib']} "
                f"{m.get('used_mib', 0)} {m['profile']}"
            )
        for p in g.get("procs", []):
            lines.append(f"proc {p['pid']} {p.get('used_mib', 100)} {p.get('gi', 0)} {p.get('ci', 0)}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class FakeNvml:
    lib_dir: Path
    work: Path

    @property
    def library(self) -> str:
        """The setting that loads the fake: its absolute path."""
        return str(self.lib_dir / "libnvidia-ml.so.1")

    @property
    def absent(self) -> str:
        """The setting of a host without a driver: a path where no library is."""
        return str(self.work / "no-driver" / "libnvidia-ml.so.1")

    def probe(self, topo: str | None, *, backend: str = "auto", with_library: bool = True) -> dict[str, Any]:
        """Run the real probe in a subprocess against the fake library (or against no library at all)."""
        env = dict(os.environ)
        env.pop("LD_LIBRARY_PATH", None)
        if topo is not None:
            path = self.work / "topology.txt"
            path.write_text(topo)
            env["DS01_FAKE_NVML_TOPOLOGY"] = str(path)
        done = subprocess.run(
            [sys.executable, "-c", PROBE, backend, self.library if with_library else self.absent],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))


@pytest.fixture(scope="session")
def fake_nvml(tmp_path_factory: pytest.TempPathFactory) -> FakeNvml:
    gcc = shutil.which("gcc")
    if not gcc:
        pytest.fail("gcc is needed to build the fake NVML library (apt-get install gcc)")
    lib_dir = tmp_path_factory.mktemp("fake-nvml")
    subprocess.run(
        [
            gcc,
            "-Wall",
            "-Werror",
            "-shared",
            "-fPIC",
            "-o",
            str(lib_dir / "libnvidia-ml.so.1"),
            str(FAKE_SOURCE),
        ],
        check=True,
        capture_output=True,
    )
    return FakeNvml(lib_dir=lib_dir, work=tmp_path_factory.mktemp("fake-nvml-work"))
