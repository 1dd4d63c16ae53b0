"""The `gpu` group: `gpu VERB` and `ds01 gpu VERB`."""

from __future__ import annotations

from ds01.cli.common import new_app

app = new_app("gpu", "GPUs and MIG slices: who holds what.")
