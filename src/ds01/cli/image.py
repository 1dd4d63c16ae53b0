"""The `image` group: `image VERB` and `ds01 image VERB`."""

from __future__ import annotations

from ds01.cli.common import new_app

app = new_app("image", "Build and manage your per-project images (the Dockerfile is the recipe).")
