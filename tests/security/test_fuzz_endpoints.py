"""Generated bodies for every endpoint of ds01d, sent by an ordinary user: the answer is always one of the
contract's exit codes with one line (never a traceback or an internal error), and ds01d keeps serving."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ds01.daemon.routes import all_routes
from harness.raw import Shuttle

pytestmark = pytest.mark.docker
ROUTES = sorted(all_routes(), key=lambda r: r.name)
CONTRACT_CODES = {1, 2, 3, 4, 5, 6}

weird_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", ".", "..", "../../etc", "/", "/etc/shadow", "~root", "a._.0", "x" * 300, "\u202e",
                     "ds01-0/x:latest", "sha256:" + "0" * 64, "a b", "A", "-rf", "$(id)", "%00", "\n", "😀"]),
)  # fmt: skip
any_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | weird_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(weird_text, inner, max_size=4),
    max_leaves=8,
)


def _field_value(tp: typing.Any) -> st.SearchStrategy[typing.Any]:
    text = str(tp)
    typed: st.SearchStrategy[typing.Any]
    if "bool" in text:
        typed = st.booleans()
    elif "int" in text:
        typed = st.integers(-5, 2**40)
    elif "float" in text:
        typed = st.floats(allow_nan=True)
    elif "tuple" in text or "list" in text:
        typed = st.lists(weird_text, max_size=5)
    elif "dict" in text:
        typed = st.dictionaries(weird_text, weird_text, max_size=4)
    else:
        typed = weird_text
    return st.one_of(typed, typed, any_json)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, str]:
    route = draw(st.sampled_from(ROUTES))
    fields = dataclasses.fields(route.body)
    body = {f.name: draw(_field_value(f.type)) for f in fields if draw(st.booleans())}
    if draw(st.integers(0, 9)) == 0:
        body[draw(weird_text)] = draw(any_json)
    target = "/v1" + re.sub(r"\{\w+\}", lambda _: quote(draw(weird_text), safe="") or "x", route.pattern)
    if route.method == "GET":
        query = urlencode({k: json.dumps(v) if not isinstance(v, str) else v for k, v in body.items()})
        return route.method, target + (f"?{query}" if query else ""), ""
    raw = json.dumps(body) if draw(st.integers(0, 19)) else draw(st.text(max_size=30))
    return route.method, target, raw


@pytest.fixture
def shuttle(ds01_home, engine_clean, unix_users):
    s = Shuttle(unix_users["alice"], ds01_home.socket)
    yield s
    s.close()


def test_generated_requests_get_contract_answers_and_ds01d_keeps_serving(ds01_home, shuttle):
    seen: list[int] = []

    @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(requests())
    def one(req: tuple[str, str, str]) -> None:
        answer = shuttle.send(*req)
        assert answer.lines, req
        last = answer.lines[-1]
        assert set(last) <= {"result", "error"} and last, (req, answer)
        if "error" in last:
            err = last["error"]
            assert err["exit_code"] in CONTRACT_CODES, (req, err)
            assert "\n" not in err["message"] and "internal error" not in err["message"], (req, err)
            assert "Traceback" not in err["message"]
            seen.append(err["exit_code"])
        else:
            seen.append(0)

    one()
    assert shuttle.send("GET", "/v1/version", "").result["version"]
    assert "internal error" not in ds01_home.server.log_text()
    assert len(seen) >= 200 and 2 in seen
