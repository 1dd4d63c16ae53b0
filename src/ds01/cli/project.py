"""The `project` group: `project VERB` and `ds01 project VERB`."""

from __future__ import annotations

from ds01.cli.common import new_app

app = new_app("project", "Start and launch projects: workspace, image and container in one go.")
