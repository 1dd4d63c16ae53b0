"""The root app `ds01`: every group and helper command under one name."""

from __future__ import annotations

from typing import Annotated

import typer

from ds01 import __version__
from ds01.cli import container, enforcement, export, gpu, image, project, user
from ds01.cli.cluster import cluster_step
from ds01.cli.common import Ds01Typer
from ds01.cli.concepts import concepts
from ds01.cli.helpers import check_limits, doctor, events
from ds01.cli.project_files import dir_app, git_app, readme_app
from ds01.cli.queue import app as queue_app
from ds01.cli.reaper import reaper
from ds01.cli.top import top
from ds01.cli.usage import usage

app = Ds01Typer(
    name="ds01",
    help="Share GPU servers fairly: per-project images, throw-away containers, GPU quotas.\n\n"
    "Start here: [bold]user-setup[/bold], then [bold]project launch my-thesis --open[/bold].",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ds01 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Share GPU servers fairly: per-project images, throw-away containers, GPU quotas."""


app.add_typer(container.app, name="container")
app.add_typer(image.app, name="image")
app.add_typer(project.app, name="project")
app.add_typer(user.app, name="user")
app.add_typer(gpu.app, name="gpu")
app.add_typer(dir_app, name="dir")
app.add_typer(git_app, name="git")
app.add_typer(readme_app, name="readme")
app.add_typer(enforcement.admin_app, name="admin")
app.add_typer(queue_app, name="queue")
container.app.command("extend")(enforcement.extend)
enforcement.admin_app.command("export-quotas")(export.export_quotas)
app.command("concepts")(concepts)
app.command("check-limits")(check_limits)
app.command("doctor")(doctor)
app.command("events")(events)
app.command("reaper")(reaper)
app.command("usage")(usage)
app.command("top")(top)
app.command("cluster-step", hidden=True)(cluster_step)
