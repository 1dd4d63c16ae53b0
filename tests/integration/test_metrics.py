"""ds01d's /metrics, scraped by a real Prometheus, and the Grafana dashboard that reads it."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from harness.users import run_as

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "ds01.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def metric_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names.add(name)
            if kind in ("counter",):
                names |= {name + "_total", name + "_created"}
            if kind == "histogram":
                names |= {name + s for s in ("_bucket", "_sum", "_count", "_created")}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


@pytest.fixture
def metrics_port(ds01_home) -> int:
    port = free_port()
    ds01_home.reconfigure(monitoring={"listen": f"127.0.0.1:{port}"})
    ds01_home.restart()
    scrape(port)
    return port


@pytest.fixture
def prometheus(tmp_path_factory, metrics_port):
    exe = shutil.which("prometheus")
    if not exe:
        pytest.skip("Prometheus is not installed (apt-get install prometheus)")
    home = tmp_path_factory.mktemp("prom")
    (home / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: ds01\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [exe, f"--config.file={home / 'prometheus.yml'}", f"--storage.tsdb.path={home / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(home / "prom.log").open("wb"),
    )  # fmt: skip
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def promql(port: int, query: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as r:
        doc = json.load(r)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def wait_promql(port: int, query: str, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = promql(port, query)
            if result:
                return result
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{query}: no answer from Prometheus within {timeout} s")
        time.sleep(0.5)


@pytest.mark.slow
def test_prometheus_sees_the_users_gpueq_after_a_deploy(
    ds01_home, engine_clean, base_image_ref, unix_users, prometheus, metrics_port
):
    alice = unix_users["alice"]
    r = run_as(alice, "container-deploy", "thesis", "--gpus", "1", "--image", base_image_ref,
               "--background", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    held = json.loads(r.stdout)["gpus"][0]
    result = wait_promql(prometheus, f'ds01_user_gpueq{{user="{alice.name}"}} > 0')
    print(f"PromQL ds01_user_gpueq{{user={alice.name!r}}} > 0 -> {json.dumps(result)}")
    assert float(result[0]["value"][1]) == pytest.approx(held["gpueq"])
    slot = wait_promql(prometheus, f'ds01_slot_holder{{user="{alice.name}"}}')
    assert slot[0]["metric"]["slot"] == held["slot"] and slot[0]["metric"]["container"] == "thesis"
    quota = wait_promql(prometheus, f'ds01_user_gpueq_quota{{user="{alice.name}"}}')
    assert float(quota[0]["value"][1]) > 0
    running = wait_promql(prometheus, f'ds01_containers{{user="{alice.name}",state="running"}}')
    assert running[0]["value"][1] == "1"
    latency = wait_promql(prometheus, 'ds01_request_seconds_count{endpoint="POST /deploy"}')
    assert float(latency[0]["value"][1]) >= 1


def test_metrics_after_retire_count_events_without_container_ids(
    ds01_home, engine_clean, base_image_ref, unix_users, metrics_port
):
    alice = unix_users["alice"]
    for args in (("container-deploy", "a1", "--gpus", "1", "--image", base_image_ref, "--background"),
                 ("container-retire", "a1", "--yes")):  # fmt: skip
        r = run_as(alice, *args)
        assert r.returncode == 0, r.stderr
    r = run_as(unix_users["bob"], "container-retire", "a1", "--yes")
    assert r.returncode != 0
    time.sleep(1.1)  # past the one-second cache
    text = scrape(metrics_port)
    assert 'ds01_events_total{type="allocate"} 1.0' in text
    assert 'ds01_events_total{type="release"} 1.0' in text
    assert not re.search(rf'^ds01_user_gpueq{{[^}}]*user="{alice.name}"[^}}]*}} [1-9]', text, re.M)
    assert "ds01d_up 1.0" in text and "ds01d_engine_up 1.0" in text
    ids = {c for c in re.findall(r"[0-9a-f]{64}", text)}
    assert not ids, "a container id in a label"
    for line in text.splitlines():
        if line.startswith(
            ("ds01_events_total", "ds01_reaper_actions_total", "ds01_container_removals_total")
        ):
            assert "a1" not in line


def test_metrics_off_when_listen_is_null(ds01_home, unix_users):
    port = free_port()
    ds01_home.reconfigure(monitoring={"listen": f"127.0.0.1:{port}"})
    run_as(unix_users["alice"], "container-list")  # the config is re-read; the listener follows in ~2 s
    assert "ds01d_up 1.0" in scrape(port)
    ds01_home.reconfigure(monitoring={"listen": None})
    run_as(unix_users["alice"], "container-list")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                break
        time.sleep(0.2)
    else:
        pytest.fail("the metrics port stayed open after monitoring.listen: null")


def dashboard_expressions() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                exprs.append(node["expr"])
            if isinstance(node.get("query"), str) and "label_values" in node["query"]:
                exprs.append(node["query"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    return exprs


PROMQL_WORDS = {
    "sum", "by", "without", "rate", "irate", "increase", "histogram_quantile", "max", "min", "avg", "count",
    "topk", "bottomk", "le", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "time",
    "label_values", "clamp_min", "clamp_max", "abs", "vector", "scalar", "sort_desc", "offset", "bool",
    "max_over_time", "avg_over_time", "sum_over_time", "changes", "delta", "deriv", "absent",
}  # fmt: skip


def test_every_dashboard_expression_names_an_exported_metric(
    ds01_home, engine_clean, base_image_ref, unix_users, metrics_port
):
    r = run_as(unix_users["alice"], "container-deploy", "d1", "--gpus", "1", "--image", base_image_ref,
               "--background")  # fmt: skip
    assert r.returncode == 0, r.stderr
    time.sleep(1.1)
    exported = metric_names(scrape(metrics_port))
    exprs = dashboard_expressions()
    assert len(exprs) >= 8
    for expr in exprs:
        bare = re.sub(r'"[^"]*"', "", expr)  # label values
        bare = re.sub(r"\{[^}]*\}", "", bare)  # matchers
        bare = re.sub(r"\[[^\]]*\]", "", bare)  # ranges
        words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare))
        metrics = {w for w in words if w.startswith(("ds01", "process_", "ds01d"))}
        assert metrics, f"{expr!r} names no ds01 metric"
        assert not (metrics - exported), f"{expr!r}: {sorted(metrics - exported)} not exported"
        others = {w for w in words - metrics - PROMQL_WORDS if "_" in w and not w.startswith("$")}
        assert not others, f"{expr!r}: {sorted(others)} is neither a metric ds01d exports nor PromQL"


def test_reaper_actions_are_counted_by_kind_and_rule(
    ds01_home, engine_clean, base_image_ref, unix_users, metrics_port
):
    import subprocess
    import sys
    from datetime import UTC, datetime, timedelta

    alice = unix_users["alice"]
    ds01_home.reconfigure(
        monitoring={"listen": f"127.0.0.1:{metrics_port}"}, user_overrides={alice.name: {"max_runtime_h": 1}}
    )
    r = run_as(alice, "container-deploy", "long", "--image", base_image_ref, "--cpu-only", "--background")
    assert r.returncode == 0, r.stderr
    reaper = Path(sys.executable).parent / "ds01-reaper"
    start = datetime.now(UTC)
    for minutes in (55, 65):
        when = (start + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
        done = subprocess.run(
            [str(reaper), "--once", "--now", when], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
    time.sleep(1.1)
    text = scrape(metrics_port)
    assert 'ds01_reaper_actions_total{action="runtime_warning",reason="max_runtime_h"} 1.0' in text
    assert 'ds01_reaper_actions_total{action="runtime_stop",reason="max_runtime_h"} 1.0' in text
    assert 'ds01_request_seconds_count{endpoint="POST /reaper"} 2.0' in text


def test_queue_length_and_waiting_times_are_metrics(
    ds01_home, engine_clean, base_image_ref, unix_users, metrics_port
):
    """Issue 15 asks for the queue's length and waiting times once the queue exists (issue 16)."""
    import yaml

    alice, bob = unix_users["alice"], unix_users["bob"]
    inventory = ds01_home / "one-gpu.yaml"
    inventory.write_text(yaml.safe_dump({"gpus": [{"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920}]}))
    limits = {"max_gpu_equivalents": None, "allow_full_gpu": True, "gpu_hold_after_stop_h": 0}
    ds01_home.reconfigure(
        gpu={"backend": "simulated", "inventory": str(inventory), "attach": "device-request"},
        defaults=limits, groups={"student": {**limits, "members": []}},
        monitoring={"listen": f"127.0.0.1:{metrics_port}"},  # a rewrite starts from the test config again
    )  # fmt: skip
    deploy = ("container-deploy", "--gpus", "1", "--image", base_image_ref, "--background")
    r = run_as(alice, deploy[0], "holder", *deploy[1:])
    assert r.returncode == 0, r.stderr
    r = run_as(bob, deploy[0], "later", *deploy[1:], "--wait", "--detach")
    assert r.returncode == 0, r.stderr
    time.sleep(1.1)  # past the one-second cache
    text = scrape(metrics_port)
    assert re.search(r'^ds01_queue_length\{shape="[^"]+"\} 1\.0$', text, re.M), text
    assert re.search(r"^ds01_queue_oldest_wait_seconds [0-9.]+$", text, re.M)
    assert run_as(alice, "container-retire", "holder", "--yes").returncode == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(1.1)
        text = scrape(metrics_port)
        if "ds01_queue_wait_seconds_count 1.0" in text:
            break
    assert "ds01_queue_wait_seconds_count 1.0" in text
    assert not re.search(r"^ds01_queue_length\{", text, re.M)
