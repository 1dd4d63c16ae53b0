"""The queue's ordering rules (atomic/queue.py), without an engine."""

from __future__ import annotations

from dataclasses import dataclass

from ds01.atomic.queue import choose, in_order


@dataclass
class W:
    name: str
    priority: int = 10
    recent_gpueq_h: float = 0.0
    arrived: float = 0.0
    seq: int = 0
    passed_over: int = 0
    size: int = 1


def names(ws: list[W]) -> list[str]:
    return [w.name for w in ws]


def test_priority_then_recent_use_then_arrival():
    ws = [
        W("early-heavy", recent_gpueq_h=5, arrived=1, seq=1),
        W("late-light", arrived=3, seq=3),
        W("middle-light", arrived=2, seq=2),
        W("high", priority=50, recent_gpueq_h=100, arrived=9, seq=9),
    ]
    assert names(in_order(ws)) == ["high", "middle-light", "late-light", "early-heavy"]


def test_the_first_that_fits_is_granted_and_those_before_it_are_passed_over():
    big, small1, small2 = W("big", size=2, seq=0), W("s1", seq=1), W("s2", seq=2)
    chosen, passed = choose([big, small1, small2], lambda w: w.size <= 1, max_bypass=3)
    assert chosen is small1 and passed == [big]


def test_a_request_passed_over_max_bypass_times_reserves_the_capacity():
    big, small = W("big", size=2, passed_over=3), W("s", seq=1)
    assert choose([big, small], lambda w: w.size <= 1, max_bypass=3) == (None, [])
    assert choose([big, small], lambda w: w.size <= 2, max_bypass=3) == (big, [])


def test_nothing_fits_nothing_is_granted():
    assert choose([W("a"), W("b")], lambda w: False, max_bypass=1) == (None, [])
