"""Builds inside ds01d: the legacy builder's `POST /build` from an archive, with ds01d's labels, and the
engine's events followed (failure detected here) while each is forwarded to the client.

The request is sent without any registry credentials: docker-py's `build` would attach the ones in root's
`~/.docker/config.json` (`X-Registry-Config`), which must never serve a user's build.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

from ds01.context import Context
from ds01.errors import Ds01Error, OperationFailed
from ds01.project.build_view import BuildResult, BuildView, NullView, follow

Emit = Callable[[Mapping[str, Any]], None]


def engine_build(
    ctx: Context,
    archive: IO[bytes],
    *,
    dockerfile: str,
    tag: str,
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
    nocache: bool = False,
) -> Iterator[dict[str, Any]]:
    """The builder's JSON events for an uncompressed tar context (no credentials are sent)."""
    from ds01.docker_gateway import engine_errors

    api = ctx.gateway.api
    params = {
        "t": tag, "dockerfile": dockerfile, "rm": "1", "forcerm": "1", "q": "0", "pull": "0",
        "nocache": "1" if nocache else "0",
        "buildargs": json.dumps(dict(buildargs)), "labels": json.dumps(dict(labels)),
    }  # fmt: skip
    with engine_errors(f"build {tag}"):
        response = api._post(
            api._url("/build"),
            data=archive,
            params=params,
            headers={"Content-Type": "application/x-tar"},
            stream=True,
            timeout=None,
        )
        api._raise_for_status(response)
        for event in api._stream_helper(response, decode=True):
            if isinstance(event, dict):
                yield event


def forwarded(events: Iterator[dict[str, Any]], emit: Emit) -> Iterator[dict[str, Any]]:
    for event in events:
        emit(event)
        yield event


def run_build(
    ctx: Context,
    archive: IO[bytes],
    *,
    dockerfile: str,
    tag: str,
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
    nocache: bool = False,
    emit: Emit | None = None,
    view: BuildView | None = None,
) -> BuildResult:
    """Build and follow: the events go to `emit` (the client) as they come; a failure raises exit 1."""
    events = engine_build(
        ctx, archive, dockerfile=dockerfile, tag=tag, buildargs=buildargs, labels=labels, nocache=nocache
    )
    if emit is not None:
        events = forwarded(events, emit)
    try:
        return follow(events, view or NullView())
    except OperationFailed:
        raise
    except Ds01Error:
        raise
