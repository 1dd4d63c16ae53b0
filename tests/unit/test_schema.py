"""ds01d's declared request schemas: what a body may hold, exactly."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ds01 import protocol
from ds01.daemon.schema import limit, parse
from ds01.errors import Ds01Error, NoCapacity, NotFound, QuotaExceeded, UsageError


@dataclass(frozen=True)
class Body:
    name: str = field(metadata=limit(max_len=8))
    gpus: int | None = field(default=None, metadata=limit(min=0, max=16))
    ratio: float = 0.5
    force: bool = False
    mode: str = field(default="a", metadata=limit(choices=("a", "b")))
    command: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)


def test_a_good_body_becomes_the_dataclass():
    body = parse(Body, {"name": "x", "gpus": 2, "ratio": 1, "command": ["a", "b"], "labels": {"k": "v"}})
    assert body == Body(name="x", gpus=2, ratio=1.0, command=("a", "b"), labels={"k": "v"})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "lacks the field 'name'"),
        ({"name": "x", "uid": 0}, "unknown field 'uid'"),
        ({"name": 3}, "name: expected a string"),
        ({"name": "123456789"}, "longer than 8"),
        ({"name": "a\x00b"}, "NUL"),
        ({"name": "x", "gpus": True}, "gpus: expected a number"),
        ({"name": "x", "gpus": 1.5}, "whole number"),
        ({"name": "x", "gpus": -1}, "out of range"),
        ({"name": "x", "gpus": 17}, "out of range"),
        ({"name": "x", "ratio": float("nan")}, "finite"),
        ({"name": "x", "ratio": float("inf")}, "finite"),
        ({"name": "x", "force": "yes"}, "expected true or false"),
        ({"name": "x", "mode": "c"}, "not one of a, b"),
        ({"name": "x", "command": "ls"}, "expected a list"),
        ({"name": "x", "command": [1]}, "expected a string"),
        ({"name": "x", "command": ["a"] * 300}, "too many items"),
        ({"name": "x", "labels": ["k"]}, "expected an object"),
        ({"name": "x", "labels": {"k": 1}}, "expected a string"),
        ({"name": "x", "name2": None}, "unknown field"),
        ({"name": None}, "must not be null"),
    ],
)
def test_bad_bodies_are_usage_errors_naming_the_field(data, message):
    with pytest.raises(UsageError, match=message):
        parse(Body, data)


@pytest.mark.parametrize("data", [None, [], "x", 3])
def test_a_body_that_is_not_an_object(data):
    if data is None:
        with pytest.raises(UsageError, match="lacks the field"):
            parse(Body, data)
        return
    with pytest.raises(UsageError, match="must be a JSON object"):
        parse(Body, data)


def test_query_strings_are_coerced_by_the_declared_type():
    body = parse(
        Body, {"name": "x", "gpus": "3", "force": "true", "command": "a,b", "ratio": "2"}, coerce=True
    )
    assert (body.gpus, body.force, body.command, body.ratio) == (3, True, ("a", "b"), 2.0)
    with pytest.raises(UsageError, match="expected a number"):
        parse(Body, {"name": "x", "gpus": "three"}, coerce=True)


@pytest.mark.parametrize("err", [UsageError("u", hint="h"), NotFound("n"), NoCapacity("held by bob")])
def test_errors_cross_the_wire_as_the_same_class_and_exit_code(err):
    back = protocol.error_from_payload(protocol.error_payload(err))
    assert type(back) is type(err) and back.exit_code == err.exit_code and str(back) == str(err)
    assert isinstance(back, Ds01Error)


def test_a_malformed_error_from_the_wire_is_still_one_error():
    assert isinstance(protocol.error_from_payload("nonsense"), Ds01Error)
    odd = protocol.error_from_payload({"code": "nope", "message": "m", "exit_code": 4})
    assert odd.exit_code == 4 and isinstance(
        protocol.error_from_payload({"code": "quota_exceeded"}), QuotaExceeded
    )
