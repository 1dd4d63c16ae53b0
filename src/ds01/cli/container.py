"""The `container` group: `container VERB` and `ds01 container VERB`."""

from __future__ import annotations

from ds01.cli.common import new_app

app = new_app("container", "Create, run and retire your containers (your workspace always stays).")
