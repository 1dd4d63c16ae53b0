"""`ds01 doctor` on the private engine: each check ok / warning / failure, with how to fix it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.users import run_as

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


def test_doctor_reports_ds01d_engine_gpus_and_dirs(ds01_home, engine_clean):
    result = doctor("--json")
    checks = checks_of(result)
    assert checks["ds01d"]["status"] == "ok" and "root, socket 0666" in checks["ds01d"]["detail"]
    assert json.loads(result.stdout)["ds01d"]["euid"] == 0
    assert checks["ds01d socket"]["status"] == "ok" and checks["ds01d user"]["status"] == "ok"
    assert checks["config"]["status"] == "ok" and "config edit" not in checks
    assert checks["docker engine"]["status"] == "ok" and "20.10" in checks["docker engine"]["detail"]
    assert checks["gpus"]["status"] == "ok" and checks["gpus"]["detail"].startswith("simulated: 4 GPUs")
    assert checks["state dir"]["status"] == "ok" and checks["log dir"]["status"] == "ok"
    assert checks["privileged containers"]["status"] == "ok"
    assert result.returncode == (1 if any(c["status"] == "failure" for c in checks.values()) else 0)


def test_doctor_flags_a_privileged_container(ds01_home, engine_clean, base_image_ref, unix_users):
    # created, not started: this sandbox may not grant the capabilities, and created is hazard enough
    engine_clean.containers.create(
        base_image_ref, ["sleep", "300"], name="rogue", privileged=True, network_mode="none"
    )
    check = checks_of(doctor("--json"))["privileged containers"]
    assert check["status"] == "warning" and "rogue" in check["detail"] and check["fix"]
    as_user = run_as(unix_users["alice"], "ds01", "doctor", "--json")  # a user: the count, not the names
    check = checks_of(as_user)["privileged containers"]
    assert (
        check["status"] == "warning" and "1 container" in check["detail"] and "rogue" not in check["detail"]
    )


def test_doctor_without_an_engine_fails_that_check_with_a_fix(ds01_home, tmp_path):
    ds01_home.restart(DOCKER_HOST=f"unix://{tmp_path}/none.sock")
    result = doctor("--json")
    check = checks_of(result)["docker engine"]
    assert result.returncode == 1
    assert check["status"] == "failure" and "start" in check["fix"] and "docker" in check["fix"]


def test_doctor_without_ds01d_says_so_and_exits_6(ds01_home, tmp_path):
    result = doctor("--json", env={"DS01_SOCKET": str(tmp_path / "none.sock")})
    check = checks_of(result)["ds01d"]
    assert result.returncode == 6 and check["status"] == "failure" and "not running" in check["detail"]
    assert "systemctl start ds01d" in check["fix"]


def test_a_broken_config_edit_keeps_the_last_good_one_and_doctor_shows_it(
    ds01_home, engine_clean, unix_users
):
    alice = unix_users["alice"]
    ds01_home.reconfigure(user_overrides={alice.name: {"max_containers_per_user": 7}})
    limits = json.loads(run_as(alice, "check-limits", "--json").stdout)
    assert limits["limits"]["max_containers_per_user"] == 7
    good = ds01_home.config.read_text()
    ds01_home.config.write_text(good + "\nbogus_section: 1\n")
    still = run_as(alice, "check-limits", "--json")
    assert still.returncode == 0 and json.loads(still.stdout)["limits"]["max_containers_per_user"] == 7
    result = doctor("--json")
    check = checks_of(result)["config edit"]
    assert result.returncode == 1 and check["status"] == "failure"
    assert "bogus_section" in check["detail"] and "--check-config" in check["fix"]
    assert "keeping the last good one" in ds01_home.server.log_text()
    seen_by_user = checks_of(run_as(alice, "ds01", "doctor", "--json"))["config edit"]
    assert seen_by_user["status"] == "failure" and "bogus_section" not in seen_by_user["detail"]
    ds01_home.reconfigure(user_overrides={alice.name: {"max_containers_per_user": 9}})  # fixed: applies
    limits = json.loads(run_as(alice, "check-limits", "--json").stdout)
    assert limits["limits"]["max_containers_per_user"] == 9
    assert "config edit" not in checks_of(doctor("--json"))


def test_check_config_exits_0_for_a_good_file_and_2_for_a_broken_one(ds01_home, tmp_path):
    ds01d = str(BIN / "ds01d")
    ok = subprocess.run([ds01d, "--check-config", str(ds01_home.config)], capture_output=True, text=True)
    assert ok.returncode == 0 and "OK" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults:\n  memory: lots\n")
    broken = subprocess.run([ds01d, "--check-config", str(bad)], capture_output=True, text=True)
    assert broken.returncode == 2 and f"{bad}:2" in broken.stderr and "Traceback" not in broken.stderr
    missing = subprocess.run(
        [ds01d, "--check-config", str(tmp_path / "no.yaml")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_doctor_without_gpu_library_warns_and_goes_on(ds01_home, engine_clean):
    # the probe loads the library the config names (a path: the loader's search is not asked)
    ds01_home.reconfigure(gpu={"backend": "auto", "nvml_library": "/nonexistent/libnvidia-ml.so.1"})
    result = doctor("--json")
    check = checks_of(result)["gpus"]
    assert check["status"] == "warning" and check["fix"]
    assert "no NVIDIA driver found" in check["detail"] and "/nonexistent/libnvidia-ml.so.1" in check["detail"]


def test_doctor_warns_about_members_of_the_docker_group(ds01_home, engine_clean, unix_users):
    frank = unix_users["frank"]
    made = subprocess.run(["groupadd", "docker"], capture_output=True).returncode == 0
    try:
        subprocess.run(["gpasswd", "-a", frank.name, "docker"], capture_output=True, check=True)
        check = checks_of(doctor("--json"))["docker group"]
        assert check["status"] == "warning" and frank.name in check["detail"] and "gpasswd -d" in check["fix"]
    finally:
        if made:
            subprocess.run(["groupdel", "docker"], capture_output=True)
        else:
            subprocess.run(["gpasswd", "-d", frank.name, "docker"], capture_output=True)


def test_doctor_human_table(ds01_home, engine_clean):
    result = doctor()
    assert "docker engine" in result.stdout and "how to fix" in result.stdout and "ds01d" in result.stdout


def test_doctor_reports_corrupt_gpu_labels(ds01_home, engine_clean, base_image_ref, unix_users):
    alice = unix_users["alice"]
    labels = {
        "ds01.managed": "true", "ds01.user": alice.name, "ds01.uid": str(alice.uid), "ds01.project": "nan",
        "ds01.gpu.slots": "0,1", "ds01.gpu.uuids": "GPU-a,GPU-b", "ds01.gpu.gpueq": "nan",
    }  # fmt: skip
    assert checks_of(doctor("--json"))["corrupt labels"]["status"] == "ok"
    engine_clean.containers.create(base_image_ref, ["true"], name=f"nan._.{alice.uid}", labels=labels)
    check = checks_of(doctor("--json"))["corrupt labels"]
    assert check["status"] == "warning" and f"{alice.name}/nan._.{alice.uid}" in check["detail"]
    assert "'nan'" in check["detail"]
    as_user = checks_of(run_as(unix_users["bob"], "ds01", "doctor", "--json"))["corrupt labels"]
    assert as_user["status"] == "warning" and alice.name not in as_user["detail"]


def test_doctor_reports_identity_labels_that_disagree(ds01_home, engine_clean, base_image_ref, unix_users):
    alice, bob = unix_users["alice"], unix_users["bob"]
    assert checks_of(doctor("--json"))["corrupt labels"]["status"] == "ok"
    sound = {
        "ds01.managed": "true",
        "ds01.user": alice.name,
        "ds01.uid": str(alice.uid),
        "ds01.project": "ok",
    }
    engine_clean.containers.create(base_image_ref, ["true"], name=f"ok._.{alice.uid}", labels=sound)
    assert checks_of(doctor("--json"))["corrupt labels"]["status"] == "ok"
    bad = {
        f"who._.{alice.uid}": {**sound, "ds01.project": "who", "ds01.user": bob.name},  # not uid's account
        f"num._.{alice.uid}": {**sound, "ds01.project": "num", "ds01.uid": "1e3"},
        f"twin._.{bob.uid}": {**sound, "ds01.project": "twin"},  # the name says bob's uid
    }
    for name, labels in bad.items():
        engine_clean.containers.create(base_image_ref, ["true"], name=name, labels=labels)
    check = checks_of(doctor("--json"))["corrupt labels"]
    assert check["status"] == "warning" and check["fix"]
    assert f"is not uid {alice.uid}'s account {alice.name!r}" in check["detail"]
    assert "ds01.uid '1e3' is not a uid" in check["detail"]
    assert f"ds01.uid {alice.uid} but the name says {bob.uid}" in check["detail"]
    assert f"ok._.{alice.uid}" not in check["detail"]
    as_user = checks_of(run_as(unix_users["carol"], "ds01", "doctor", "--json"))["corrupt labels"]
    assert "3 container(s)" in as_user["detail"] and alice.name not in as_user["detail"]


def test_doctor_reports_protected_symlinks_userns_and_network(ds01_home, engine_clean):
    checks = checks_of(doctor("--json"))
    value = Path("/proc/sys/fs/protected_symlinks").read_text().strip()
    symlinks = checks["protected symlinks"]
    assert symlinks["status"] == ("ok" if value == "1" else "warning")
    assert f"fs.protected_symlinks is {value}" in symlinks["detail"]
    # the private engine runs without userns-remap: advice, not failure
    userns = checks["userns-remap"]
    assert userns["status"] == "warning" and userns["fix"].startswith("advice:")
    # the test engine has --bridge=none and the test config containers.network: none
    network = checks["network"]
    assert network["status"] == "ok" and "containers.network is none" in network["detail"]
    assert "no bridge networking" in network["detail"]
    ds01_home.reconfigure(containers={"network": "bridge"})
    network = checks_of(doctor("--json"))["network"]
    assert network["status"] == "failure" and "containers.network is bridge" in network["detail"]
    assert "--bridge=none" in network["fix"]


def test_protected_symlinks_off_is_a_warning(tmp_path):
    from ds01.atomic.doctor import _protected_symlinks_check

    knob = tmp_path / "protected_symlinks"
    knob.write_text("0\n")
    check = _protected_symlinks_check(knob)
    assert check.status == "warning" and "sysctl -w fs.protected_symlinks=1" in check.fix
    knob.write_text("1\n")
    assert _protected_symlinks_check(knob).status == "ok"


def test_doctor_shows_the_network_mode_in_force(ds01_home, engine_clean):
    """The shared test engine runs with --bridge=none: per-user falls back to none, and doctor says so."""
    assert checks_of(doctor("--json"))["network"]["detail"].startswith("containers.network is none")
    ds01_home.reconfigure(containers={"network": "per-user", "init": True, "env": {}})
    check = checks_of(doctor("--json"))["network"]
    assert check["status"] == "warning" and "in force is none" in check["detail"]
    ds01_home.reconfigure(containers={"network": "bridge", "init": True, "env": {}})
    assert checks_of(doctor("--json"))["network"]["status"] == "failure"
