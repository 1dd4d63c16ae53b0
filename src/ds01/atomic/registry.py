"""Inside ds01d: whether this server can download a base image, and downloading one with its progress.

`registry_answers`: the engine asks the registry for a manifest (`GET /distribution/{ref}/json`, at most
`CHECK_TIMEOUT_S`, no credentials sent), so the engine's own network is what counts, not ds01d's. Any answer
of the registry (even "not found" or "unauthorized") means it is reachable; a DNS, route or connection
failure or no answer in time means it is not. The verdict is kept per (engine, registry) for `KEEP_S`
(`KEEP_UNREACHABLE_S` when it did not answer, so a mended network is seen soon).

`bases_report`: every catalogue base, on this server (with its size) or not, and whether it can be had.
`pull_missing`: before a build, each image it reads that is not on this server is pulled here, the engine's
progress events forwarded to the client; a registry that does not answer is said in plain words (exit 1).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ds01.context import Context
from ds01.errors import Ds01Error, EngineUnavailable, NotFound, OperationFailed
from ds01.project.build_view import is_network_failure, registry_of, registry_unreachable

Emit = Callable[[Mapping[str, Any]], None]
CHECK_TIMEOUT_S = 3.0
KEEP_S = 300.0
KEEP_UNREACHABLE_S = 60.0
_OWN_NAMESPACE = re.compile(r"^ds01-\d+/")
_PULL_KEYS = ("status", "id", "progressDetail")

_verdicts: dict[tuple[str, str], tuple[float, bool, str]] = {}
_verdicts_lock = threading.Lock()


def _explain(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or getattr(exc, "message", None) or exc)


def _ask_registry(ctx: Context, ref: str) -> tuple[bool, str]:
    """(reachable, what was seen): one manifest request through the engine, time-bounded."""
    import requests.exceptions

    api = ctx.gateway.api
    try:
        # the session's own get: docker-py's `_get` would add headers from root's Docker config
        response = api.get(api._url("/distribution/{0}/json", ref), timeout=CHECK_TIMEOUT_S)
    except requests.exceptions.Timeout:
        return False, f"no answer within {CHECK_TIMEOUT_S:g} s"
    except requests.exceptions.ConnectionError:
        raise EngineUnavailable(
            "the Docker engine did not answer", hint="see `ds01 doctor`; an admin starts the engine"
        ) from None
    text = response.text[:500]
    if response.status_code < 400:
        return True, "answered"
    return (False, text) if is_network_failure(text) else (True, f"answered ({response.status_code})")


def registry_answers(ctx: Context, ref: str) -> bool:
    """Does the registry of `ref` answer the engine? Cached; at most CHECK_TIMEOUT_S when not cached."""
    key = (str(ctx.gateway.address), registry_of(ref))
    now = time.monotonic()
    with _verdicts_lock:
        kept = _verdicts.get(key)
    if kept is not None and kept[0] > now:
        return kept[1]
    reachable, seen = _ask_registry(ctx, ref)
    with _verdicts_lock:
        _verdicts[key] = (now + (KEEP_S if reachable else KEEP_UNREACHABLE_S), reachable, seen)
    return reachable


def bases_report(ctx: Context) -> dict[str, Any]:
    """`GET /v1/catalogue/bases`: each catalogue base here or not, its size, whether it can be had."""
    from ds01.project.catalogue import BaseStatus, load_catalogue

    catalogue = load_catalogue(ctx.config.source)
    registries: dict[str, bool] = {}
    bases: list[BaseStatus] = []
    for base in catalogue.bases():
        raw = ctx.gateway.image_inspect(base.image)
        lab = catalogue.is_lab(base.image)
        host = "" if lab else registry_of(base.image)
        if host and host not in registries:
            registries[host] = registry_answers(ctx, base.image)
        bases.append(
            BaseStatus(
                image=base.image, present=raw is not None,
                size=int(raw.get("Size") or 0) if raw is not None else None,
                download_gb=catalogue.download_gb.get(base.image), lab=lab, registry=host,
                reachable=registries[host] if host else None,
            )
        )  # fmt: skip
    bases.sort(key=lambda b: (not b.present, not b.buildable))  # here first, then what can be downloaded
    return {
        "bases": [b.as_dict() for b in bases],
        "registries": {h: "reachable" if ok else "unreachable" for h, ok in registries.items()},
        "build_network": ctx.config.images.effective_build_network(),
    }


def _split(ref: str) -> tuple[str, str | None]:
    """`repo[:tag]` / `repo@digest` -> (fromImage, tag) as the engine's create-image call takes them."""
    if "@" in ref:
        return ref, None
    repo, colon, tag = ref.rpartition(":")
    if colon and "/" not in tag:
        return repo, tag
    return ref, "latest"


def pull_image(ctx: Context, ref: str, emit: Emit | None = None) -> float:
    """Pull `ref` (no credentials sent), forwarding the engine's progress; the seconds it took."""
    from ds01.docker_gateway import engine_errors

    started = time.monotonic()
    if emit is not None:
        emit({"pull": ref})
    api = ctx.gateway.api
    image, tag = _split(ref)
    params = {"fromImage": image, **({"tag": tag} if tag else {})}
    response = None
    try:
        with engine_errors(f"pull {ref}"):
            response = api.post(api._url("/images/create"), params=params, stream=True, timeout=None)
            api._raise_for_status(response)
            for event in api._stream_helper(response, decode=True):
                if not isinstance(event, dict):
                    continue
                if "error" in event or "errorDetail" in event:
                    detail = event.get("errorDetail") or {}
                    raise OperationFailed(str(detail.get("message") or event.get("error")).strip())
                if emit is not None:
                    emit({k: event[k] for k in _PULL_KEYS if k in event})
    except EngineUnavailable:
        raise
    except Ds01Error as exc:
        if is_network_failure(exc.message):
            raise registry_unreachable(ref) from None
        raise OperationFailed(
            f"cannot download {ref}: {_explain(exc)}",
            hint="check the image name in the Dockerfile's FROM (`ds01 image bases` lists the lab's bases)",
        ) from None
    finally:
        if response is not None:
            response.close()  # a client gone mid-pull: the engine cancels it
    return time.monotonic() - started


def pull_missing(ctx: Context, refs: Sequence[str], emit: Emit | None = None) -> list[str]:
    """Before a build: pull each image it reads that is not on this server (its owner checked already).
    A user's own images and the lab's bases are never downloaded (they are made here or not at all)."""
    from ds01.project.catalogue import load_catalogue

    catalogue = load_catalogue(ctx.config.source)
    pulled = []
    for ref in dict.fromkeys(refs):
        if catalogue.is_lab(ref) or ctx.gateway.image_inspect(ref) is not None:
            continue
        if _OWN_NAMESPACE.match(ref):  # never looked for on Docker Hub
            raise NotFound(
                f"the image {ref} is not on this server",
                hint="build it first (image-create NAME), or FROM another",
            )
        seconds = pull_image(ctx, ref, emit)
        ctx.log("image_pull", None, image=ref, seconds=round(seconds, 1))
        pulled.append(ref)
    return pulled
