"""`ds01 image bases`: the catalogue's base images and whether this server can build from each.

A client of ds01d (`GET /v1/catalogue/bases`): here already (and its size), downloadable (about how much),
or not to be had (a registry the server cannot reach, a lab base not built yet).
"""

from __future__ import annotations

from ds01.cli.common import JsonOpt, connect, handle_errors
from ds01.client import path_of


@handle_errors
def bases(json_out: JsonOpt = False) -> None:
    """List the base images projects can start from, and which of them this server can build.

    Examples:
      ds01 image bases
      ds01 image bases --json
    """
    from ds01.project.catalogue import availability_from_json

    client = connect(json_out)
    out = client.out
    answer = client.call("GET", path_of("catalogue", "bases"))
    if out.json_mode:
        out.json(answer)
        return
    known = availability_from_json(answer)
    rows = [
        (b.image, "yes" if b.present else "no", _size(b.size, b.download_gb), b.mark().strip("()"))
        for b in known.bases.values()
    ]
    out.table(("base", "here", "size", "state"), rows, empty="the catalogue names no bases")
    if not known.packages_reachable:
        out.hint(
            "builds here have no network (images.build_network: none): project types that install "
            "packages cannot build; --type custom downloads nothing"
        )


def _size(here: int | None, download_gb: float | None) -> str:
    from ds01.project.build_view import human_bytes

    if here:
        return human_bytes(here)
    return f"~{download_gb:g} GB" if download_gb else "-"
