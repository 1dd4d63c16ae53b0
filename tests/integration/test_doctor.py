"""`ds01 doctor` on the private engine: each check ok / warning / failure, with how to fix it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker
BIN = Path(sys.executable).parent


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [str(BIN / "ds01"), "doctor", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, **(env or {})),
        timeout=60,
    )


def checks_of(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_doctor_reports_engine_gpus_and_dirs(ds01_home, engine_clean):
    result = doctor("--json")
    checks = checks_of(result)
    assert checks["config"]["status"] == "ok"
    assert checks["docker engine"]["status"] == "ok" and "20.10" in checks["docker engine"]["detail"]
    assert checks["gpus"]["status"] == "ok" and checks["gpus"]["detail"].startswith("simulated: 4 GPUs")
    assert checks["state dir"]["status"] == "ok" and checks["log dir"]["status"] == "ok"
    assert checks["privileged containers"]["status"] == "ok"
    assert result.returncode == (1 if any(c["status"] == "failure" for c in checks.values()) else 0)


def test_doctor_flags_a_privileged_container(ds01_home, engine_clean, base_image_ref):
    # created, not started: this sandbox may not grant the capabilities, and created is hazard enough
    engine_clean.containers.create(
        base_image_ref, ["sleep", "300"], name="rogue", privileged=True, network_mode="none"
    )
    check = checks_of(doctor("--json"))["privileged containers"]
    assert check["status"] == "warning" and "rogue" in check["detail"] and check["fix"]


def test_doctor_without_an_engine_fails_that_check_with_a_fix(ds01_home, tmp_path):
    result = doctor("--json", env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    check = checks_of(result)["docker engine"]
    assert result.returncode == 1
    assert check["status"] == "failure" and "daemon running" in check["fix"]


def test_doctor_reports_a_bad_config_first(ds01_home, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults:\n  memory: lots\n")
    result = doctor("--json", env={"DS01_CONFIG": str(bad)})
    check = checks_of(result)["config"]
    assert result.returncode == 1 and check["status"] == "failure" and f"{bad}:2" in check["detail"]


def test_doctor_without_gpu_library_warns_and_goes_on(ds01_home, engine_clean):
    result = doctor("--json", env={"DS01_GPU_BACKEND": "auto", "LD_LIBRARY_PATH": "/nonexistent"})
    check = checks_of(result)["gpus"]
    assert check["status"] == "warning" and check["fix"]


def test_doctor_human_table(ds01_home, engine_clean):
    result = doctor()
    assert "docker engine" in result.stdout and "how to fix" in result.stdout
