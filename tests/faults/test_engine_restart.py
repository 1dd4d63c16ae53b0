"""The Docker engine restarted in the middle of a deploy: the deploy fails cleanly (exit 1 or 6, one line) or
succeeds, and the invariants hold once the engine is back (ds01d settles what the engine cut short)."""

from __future__ import annotations

import random
import subprocess
import time
from typing import Any

import pytest
from fault_invariants import check, ds01d_serves, popen_as

from harness.engine import restart_engine
from harness.users import run_as

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_the_engine_restarted_in_the_middle_of_deploys(
    ds01_home: Any, engine_clean: Any, docker_engine: Any, base_image_ref: str, unix_users: Any
) -> None:
    dave = unix_users["dave"]
    rng = random.Random(20261130)
    outcomes = []
    for trial, delay in enumerate((0.05, 0.3, 0.4, 0.5, 0.6, 0.9)):
        name = f"eng{trial}"
        argv = ("container-deploy", name, "--gpus", "1", "--image", base_image_ref, "--background")
        proc = popen_as(dave, *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)
        restart_engine(docker_engine, down_s=rng.uniform(0.0, 1.0))
        _, raw_err = proc.communicate(timeout=120)
        err = raw_err.decode().strip()
        assert proc.returncode in (0, 1, 6), (proc.returncode, err)
        if proc.returncode:
            assert len(err.splitlines()) == 1, err
            assert "Traceback" not in err and "internal error" not in err, err
        outcomes.append(proc.returncode)
        deadline = time.monotonic() + 20  # the retry thread settles within a few seconds of the engine
        while (problems := check(ds01_home, engine_clean)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not problems, f"trial {trial}: {problems}\n{ds01_home.server.log_text()[-3000:]}"
        assert ds01d_serves(dave)
        [*left] = engine_clean.api.containers(all=True, filters={"name": f"{name}._.{dave.uid}"})
        assert not left or left[0]["State"] in ("running", "exited"), left
        if left:
            assert run_as(dave, "container-retire", name, "--yes").returncode == 0
    # the engine is back and ds01d works with it: a deploy after the restarts succeeds
    again = run_as(
        dave, "container-deploy", "after", "--gpus", "1", "--image", base_image_ref, "--background"
    )
    assert again.returncode == 0, again.stderr
    assert run_as(dave, "container-retire", "after", "--yes").returncode == 0
    assert check(ds01_home, engine_clean) == []
    log = ds01_home.server.log_text()
    settled = log.count("undid the deploy") + log.count("waits for the engine")
    print(f"engine restarts: {len(outcomes)}, deploy exit codes: {outcomes}, settled by ds01d: {settled}")
