"""The `user` group: `user VERB` and `ds01 user VERB`."""

from __future__ import annotations

from ds01.cli.common import new_app

app = new_app("user", "Onboarding and your account.")
