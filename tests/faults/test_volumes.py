"""F9: an image's anonymous volumes (`VOLUME /v1 /v2 /v3`) go with their container on every remove path:
retire, container-remove, a failed deploy's rollback (all through atomic/removal.py, as the reaper's)."""

from __future__ import annotations

import io
import tarfile
from typing import Any

import pytest

from harness.users import run_as

pytestmark = pytest.mark.docker


def _volumes(client: Any) -> set[str]:
    return {v["Name"] for v in client.api.volumes().get("Volumes") or []}


def _volume_image(client: Any, base: str) -> str:
    holder = client.api.create_container(base, ["true"])
    client.api.commit(holder["Id"], repository="vol/three", tag="latest", changes=["VOLUME /v1 /v2 /v3"])
    client.api.remove_container(holder["Id"], force=True)
    return "vol/three:latest"


def test_three_deploy_retire_cycles_leave_no_volume(
    ds01_home: Any, engine_clean: Any, base_image_ref: str, unix_users: Any
) -> None:
    alice = unix_users["alice"]
    image = _volume_image(engine_clean, base_image_ref)
    before = _volumes(engine_clean)
    for _ in range(3):
        up = run_as(alice, "container-deploy", "vols", "--cpu-only", "--image", image, "--background")
        assert up.returncode == 0, up.stderr
        mounts = engine_clean.api.inspect_container(f"vols._.{alice.uid}")["Mounts"]
        assert {m["Destination"] for m in mounts if m["Type"] == "volume"} == {"/v1", "/v2", "/v3"}
        assert len(_volumes(engine_clean) - before) == 3  # the test sees them come
        down = run_as(alice, "container-retire", "vols", "--yes")
        assert down.returncode == 0, down.stderr
        assert _volumes(engine_clean) - before == set()


def test_container_remove_takes_its_volumes_and_keeps_named_ones(
    ds01_home: Any, engine_clean: Any, base_image_ref: str, unix_users: Any
) -> None:
    bob = unix_users["bob"]
    image = _volume_image(engine_clean, base_image_ref)
    engine_clean.api.create_volume("lab-shared")
    before = _volumes(engine_clean)
    made = run_as(bob, "container-create", "vols", "--cpu-only", "--image", image)
    assert made.returncode == 0, made.stderr
    assert len(_volumes(engine_clean) - before) == 3
    gone = run_as(bob, "container-remove", "vols")
    assert gone.returncode == 0, gone.stderr
    assert _volumes(engine_clean) == before and "lab-shared" in before
    engine_clean.api.remove_volume("lab-shared")


def test_a_failed_deploy_rollback_takes_its_volumes(
    ds01_home: Any, engine_clean: Any, unix_users: Any
) -> None:
    dave = unix_users["dave"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:  # no programs at all: the start fails
        info = tarfile.TarInfo("etc/hostname")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"none\n"))
    engine_clean.api.import_image_from_data(
        buf.getvalue(), repository="broken/vols", tag="latest", changes=["VOLUME /v1 /v2 /v3"]
    )
    before = _volumes(engine_clean)
    result = run_as(dave, "container-deploy", "doomed", "--cpu-only", "--image", "broken/vols:latest",
                    "--background")  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert not engine_clean.api.containers(all=True, filters={"name": f"doomed._.{dave.uid}"})
    assert _volumes(engine_clean) - before == set()


def test_the_reapers_cleanup_takes_the_volumes(
    ds01_home: Any, engine_clean: Any, base_image_ref: str, unix_users: Any
) -> None:
    import json
    import subprocess
    import sys
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    carol = unix_users["carol"]
    image = _volume_image(engine_clean, base_image_ref)
    before = _volumes(engine_clean)
    made = run_as(carol, "container-create", "stale", "--cpu-only", "--image", image)  # never started
    assert made.returncode == 0, made.stderr
    assert len(_volumes(engine_clean) - before) == 3
    later = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    reaper = Path(sys.executable).parent / "ds01-reaper"
    done = subprocess.run(
        [str(reaper), "--once", "--json", "--now", later], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    actions = [a["action"] for a in json.loads(done.stdout)["actions"]]
    assert actions == ["cleanup"], done.stdout
    assert not engine_clean.api.containers(all=True, filters={"name": f"stale._.{carol.uid}"})
    assert _volumes(engine_clean) - before == set()
