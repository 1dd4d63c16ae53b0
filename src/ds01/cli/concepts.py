"""`ds01 concepts`: the three ideas behind every command, in one screen (the help tier above `--help`)."""

from __future__ import annotations

CONCEPTS = """\
ds01 in three ideas

  image      the recipe. Your project's Dockerfile (in its workspace) says what is installed; ds01 builds
             it into ds01-<uid>/<project>:latest with you baked in. Change the recipe, rebuild:
               image-update my-thesis --add "transformers"

  container  the laptop you check out and hand back. A temporary compute session made from the image,
             with your GPU, CPUs and memory. Check one out in the morning, hand it back at night:
               container-deploy my-thesis          container-retire my-thesis
             Retiring frees the GPU at once for the next person; nothing of yours is lost.

  workspace  the hard drive that stays. ~/workspace/<project> on the server is /workspace inside every
             container of that project. Code, data, checkpoints and results live here; no ds01 command
             ever deletes it.

The day, in practice:
  project launch my-thesis --open     build if needed, check out a container, open a shell in /workspace
  ... work; save everything under /workspace ...
  exit, then container-retire my-thesis

This is how the cloud works too: task definition (image), temporary execution (container), persistent
storage (workspace / S3). More: `ds01 --help`, and `--help` on any command for its examples.
"""


def concepts() -> None:
    """Image = recipe, container = laptop you hand back, workspace = hard drive that stays (one screen)."""
    import sys

    sys.stdout.write(CONCEPTS)
