"""Name rules, sizes/durations, username sanitising, and who is acting."""

from __future__ import annotations

import os

import pytest

from ds01 import naming, units
from ds01.errors import ExitCode, InvalidName
from ds01.identity import acting_user


@pytest.mark.parametrize(
    ("raw", "expected"), [("My Thesis", "my-thesis"), ("exp_1.2", "exp_1.2"), ("a", "a")]
)
def test_names_are_normalised(raw, expected):
    assert naming.normalise_name(raw) == expected


@pytest.mark.parametrize(
    "raw", ["a/b", "..", "a..b", "   ", "thésis", "x" * 200, "a;rm -rf", "$(id)", "-lead", "", "a|b", "név"]
)
def test_bad_names_are_usage_errors_with_one_line(raw):
    with pytest.raises(InvalidName) as info:
        naming.normalise_name(raw)
    assert info.value.exit_code == ExitCode.USAGE
    assert "\n" not in str(info.value) and "e.g. my-thesis" in str(info.value)


def test_container_and_image_names_follow_the_contract():
    assert naming.container_name("thesis", 1001) == "thesis._.1001"
    assert naming.split_container_name("/thesis._.1001") == ("thesis", 1001)
    assert naming.split_container_name("postgres") == ("postgres", None)
    assert naming.image_name("thesis", 1001) == "ds01-1001/thesis:latest"


def test_ldap_usernames_are_sanitised_safely_and_stably():
    assert naming.sanitise_username("h.baker@lab.example") == "h_baker"
    assert naming.sanitise_username("H.Baker@lab.example") == "h_baker"
    assert naming.sanitise_username("12345@lab.example") == "u12345"
    long = "a.very.long.name.that.goes.on.and.on@lab.example"
    assert len(naming.sanitise_username(long)) == 32
    assert naming.sanitise_username(long) == naming.sanitise_username(long)
    assert naming.sanitise_username(long) != naming.sanitise_username(long.replace("on@", "no@"))


@pytest.mark.parametrize(
    ("text", "n"),
    [("32g", 32 * 1024**3), ("512m", 512 * 1024**2), ("1.5g", 1610612736), (4096, 4096), ("64k", 65536)],
)
def test_sizes_parse(text, n):
    assert units.parse_size(text) == n


def test_sizes_format_back():
    assert units.format_size(32 * 1024**3) == "32g"
    assert units.format_size(None) == "unlimited"


def test_durations():
    assert units.parse_seconds("15m") == 900
    assert units.parse_seconds(90) == 90
    assert units.format_hours(0.5) == "30 min"
    assert units.format_hours(1.25) == "1 h 15 min"
    assert units.format_hours(None) == "never"


def test_no_environment_variable_changes_who_is_acting(monkeypatch):
    monkeypatch.setenv("SUDO_UID", "4321")
    monkeypatch.setattr(os, "getuid", lambda: 0)
    assert acting_user().uid == 0
    monkeypatch.setattr(os, "getuid", lambda: 1500)
    assert acting_user().uid == 1500
