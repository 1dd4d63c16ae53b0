"""A build's progress: the legacy builder's event stream, followed step by step (engine-free).

ds01d follows the stream to detect a failure (`follow` with `NullView`) and forwards every event to the
client, which feeds the same events to its view (`Follower`).

On a terminal a live view on stderr shows the steps done, the current step with its latest output line
dimmed, and the elapsed time. Elsewhere each step is one plain line on stderr. A failed build shows the
failing step and its last output lines, then raises `OperationFailed` (exit 1).

A base image that has to be downloaded first shows its pull (layers, bytes): ds01d sends `{"pull": REF}`,
then the engine's pull events (`status`, `id`, `progressDetail`); the builder's own pull inside a FROM step
sends the same events. A failure that comes from the network (the registry, PyPI, the apt mirror) is said in
plain words with what to do (`network_failure`), not as the engine's Go error.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Protocol

from ds01.errors import OperationFailed

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
TAIL_LINES = 15
DOCKER_HUB = "registry-1.docker.io"
REGISTRY_UNREACHABLE = "cannot reach the container registry"  # in every such message (base_images looks)
# What the engine, pip and apt say when the network is not there (DNS, routes, refused, timeouts, proxy).
_NO_NETWORK = re.compile(
    r"dial tcp|no such host|network is unreachable|server misbehaving|i/o timeout|connection refused|"
    r"TLS handshake timeout|Client\.Timeout|Failed to establish a new connection|"
    r"Temporary failure in name resolution|Name or service not known|Temporary failure resolving|"
    r"Could not resolve|Could not connect to|Network is unreachable|Connection timed out|Read timed out|"
    r"ProxyError|connection reset by peer|No route to host",
    re.IGNORECASE,
)
_PIP_GAVE_UP = re.compile(r"Could not find a version that satisfies|No matching distribution found")
_DONE_LAYER = ("Pull complete", "Already exists")
# Noise of the legacy builder that says nothing about the user's build.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NOISE = re.compile(r"^( ---> |Removing intermediate container |Successfully (built|tagged) )")


@dataclass
class BuildState:
    step: int = 0
    total: int = 0
    instruction: str = ""
    done: list[str] = field(default_factory=list)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    image_id: str = ""
    started: float = field(default_factory=time.monotonic)
    pull: PullState | None = None
    offline_lines: int = 0  # lines of the current step that say the network is not there

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def where(self) -> str:
        return f"step {self.step}/{self.total} ({self.instruction})" if self.step else "the start"


@dataclass
class PullState:
    """One image being downloaded: each layer's status and bytes (current, total)."""

    image: str
    layers: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    done: bool = False

    @property
    def finished_layers(self) -> int:
        return sum(1 for status, _, _ in self.layers.values() if status in _DONE_LAYER)

    @property
    def bytes(self) -> tuple[int, int]:
        """(downloaded, to download) over the layers whose size is known so far."""
        return sum(c for _, c, _ in self.layers.values()), sum(t for _, _, t in self.layers.values())

    def summary(self) -> str:
        current, total = self.bytes
        size = f", {human_bytes(current)} of {human_bytes(total)}" if total else ""
        return f"{self.finished_layers}/{len(self.layers)} layers{size}"


def human_bytes(n: int) -> str:
    """`3.6 GB`, `45.2 MB`, `512 kB` (decimal, as registries count)."""
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}" if unit != "kB" else f"{n / factor:.0f} {unit}"
    return f"{n} B"


def registry_of(ref: str) -> str:
    """The registry a reference is pulled from: `nvcr.io/nvidia/jax:24.04` -> `nvcr.io`; Docker Hub's
    short names (`pytorch/pytorch:...`, `python:3.11`) -> registry-1.docker.io."""
    first, slash, _ = ref.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return DOCKER_HUB if first in ("docker.io", "index.docker.io") else first
    return DOCKER_HUB


def is_network_failure(text: str) -> bool:
    return bool(_NO_NETWORK.search(text))


def registry_unreachable(ref: str, registry: str | None = None) -> OperationFailed:
    """The plain words for a base that cannot be downloaded (exit 1: neither ds01d nor the engine failed)."""
    host = registry or registry_of(ref)
    return OperationFailed(
        f"this server {REGISTRY_UNREACHABLE} ({host}) to download {ref}",
        hint="pick a base that is on this server (`ds01 image bases`; e.g. rerun with --framework python, "
        "or image-update NAME --framework python) or ask an admin to run `ds01 image build-base` "
        "or to pre-pull it",
    )


def packages_unreachable(where: str, kind: str) -> OperationFailed:
    """A RUN step that could not download packages: builds have no network unless the admin gives one."""
    what = {"pip": "PyPI (pip install)", "apt": "the Debian/Ubuntu package mirror (apt-get)"}.get(
        kind, "the network"
    )
    return OperationFailed(
        f"the build cannot reach {what} at {where}",
        hint="ask the admin to enable build network (images.build_network) or a proxy / local mirror; "
        "or build with no packages to download (project type custom)",
    )


def network_failure(state: BuildState, error: str) -> OperationFailed | None:
    """The plain-words failure when a step failed for want of network, else None."""
    instruction = state.instruction.strip()
    if not state.step or instruction.upper().startswith("FROM") or "/v2/" in error:
        if not is_network_failure(error):
            return None
        ref = state.pull.image if state.pull is not None else _from_ref(instruction)
        return registry_unreachable(ref) if ref else None
    if not state.offline_lines:
        return None
    lowered = instruction.lower()
    kind = "pip" if "pip" in lowered else "apt" if "apt" in lowered else "network"
    if kind == "network" and any(_PIP_GAVE_UP.search(line) for line in state.tail):
        kind = "pip"
    return packages_unreachable(state.where, kind)


def _from_ref(instruction: str) -> str:
    words = [w for w in instruction.split()[1:] if not w.startswith("--")]
    return words[0] if words else ""


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    steps: int
    seconds: float


class BuildView(Protocol):
    def started(self, state: BuildState) -> None: ...
    def step(self, state: BuildState) -> None: ...
    def output(self, state: BuildState, line: str) -> None: ...
    def pulling(self, state: BuildState) -> None: ...
    def finished(self, state: BuildState, error: str | None) -> None: ...


def follow(events: Iterable[Mapping[str, Any]], view: BuildView) -> BuildResult:
    """Feed the builder's events to the view; raise with the failing step when the build fails."""
    state = BuildState()
    view.started(state)
    reported = False
    try:
        for event in events:
            error = _apply(state, event, view)
            if error is not None:
                reported = True
                view.finished(state, error)
                raise network_failure(state, error) or OperationFailed(
                    f"the build failed at {state.where}: {error}",
                    hint="fix that step of the Dockerfile, then rebuild",
                )
    except BaseException as exc:
        if not reported:  # the engine refused the build, or Ctrl-C: close the live view first
            view.finished(state, str(exc) or "interrupted")
        raise
    view.finished(state, None)
    if not state.image_id:
        raise OperationFailed("the build ended without an image", hint="see the build output above")
    return BuildResult(state.image_id, state.total, state.elapsed)


def _apply(state: BuildState, event: Mapping[str, Any], view: BuildView) -> str | None:
    if "error" in event or "errorDetail" in event:
        detail = event.get("errorDetail") or {}
        return str(detail.get("message") or event.get("error") or "unknown error").strip()
    aux = event.get("aux")
    if isinstance(aux, Mapping) and aux.get("ID"):
        state.image_id = str(aux["ID"])
    if "pull" in event or "status" in event:
        _pull_event(state, event, view)
        return None
    for line in _lines(str(event.get("stream", ""))):
        match = STEP.match(line)
        if match:
            if state.step:
                state.done.append(f"{state.step}/{state.total} {state.instruction}")
            state.step, state.total, state.instruction = int(match[1]), int(match[2]), match[3]
            state.tail.clear()
            state.offline_lines = 0
            state.pull = None
            view.step(state)
        elif not _NOISE.match(line):
            state.tail.append(line)
            state.offline_lines += is_network_failure(line)
            view.output(state, line)
    return None


def _pull_event(state: BuildState, event: Mapping[str, Any], view: BuildView) -> None:
    """`{"pull": REF}` (ds01d starts a download) or one of the engine's pull events."""
    if "pull" in event:
        state.pull = PullState(str(event["pull"]))
        view.pulling(state)
        return
    status, layer = str(event.get("status") or ""), str(event.get("id") or "")
    if state.pull is None:  # the builder pulling a FROM image by itself
        state.pull = PullState(_from_ref(state.instruction) or "the base image")
    pull = state.pull
    detail = event.get("progressDetail")
    detail = detail if isinstance(detail, Mapping) else {}
    if layer and status and not status.startswith("Pulling from"):
        _, current, total = pull.layers.get(layer, ("", 0, 0))
        if isinstance(detail.get("total"), int) and status == "Downloading":
            current, total = int(detail.get("current") or 0), int(detail["total"])
        elif status in ("Download complete", "Verifying Checksum", "Extracting", "Pull complete"):
            current = total
        pull.layers[layer] = (status, current, total)
    if status.startswith(("Status:", "Digest:")):
        pull.done = pull.done or status.startswith("Status:")
    view.pulling(state)


def _lines(chunk: str) -> Iterator[str]:
    for raw in _ANSI.sub("", chunk).replace("\r", "\n").split("\n"):
        line = raw.rstrip()
        if line.strip():
            yield line


class NullView:
    """Shows nothing (ds01d's side: the client renders the events it forwards)."""

    def started(self, state: BuildState) -> None:
        return None

    def step(self, state: BuildState) -> None:
        return None

    def output(self, state: BuildState, line: str) -> None:
        return None

    def pulling(self, state: BuildState) -> None:
        return None

    def finished(self, state: BuildState, error: str | None) -> None:
        return None


class Follower:
    """The client's side: events arrive one by one (`on_event`), then the call ends (`done`)."""

    def __init__(self, view: BuildView) -> None:
        self.view = view
        self.state = BuildState()
        self.reported = False
        self.began = False

    def on_event(self, event: Any) -> None:
        if not isinstance(event, Mapping) or self.reported:
            return
        if not self.began:
            self.began = True
            self.view.started(self.state)
        error = _apply(self.state, event, self.view)
        if error is not None:
            self.reported = True
            self.view.finished(self.state, error)

    def done(self, error: str | None) -> None:
        if self.reported or not self.began:  # refused before the build began: the error says it all
            return
        self.reported = True
        self.view.finished(self.state, error)


class PlainView:
    """No terminal: one line per step on stderr, the failing step's output when it fails."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._pulled: tuple[str, int] = ("", -1)  # (image, finished layers) last written

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def started(self, state: BuildState) -> None:
        return None

    def step(self, state: BuildState) -> None:
        self._write(f"Step {state.step}/{state.total} : {state.instruction}")

    def output(self, state: BuildState, line: str) -> None:
        return None

    def pulling(self, state: BuildState) -> None:
        """A line when the download starts and one each time a layer is done (not one per chunk)."""
        pull = state.pull
        if pull is None:
            return
        if self._pulled[0] != pull.image:
            self._pulled = (pull.image, 0)
            self._write(f"Downloading {pull.image} from {registry_of(pull.image)}")
        if pull.layers and pull.finished_layers != self._pulled[1]:
            self._pulled = (pull.image, pull.finished_layers)
            self._write(f"  {pull.summary()}")

    def finished(self, state: BuildState, error: str | None) -> None:
        if error is None:
            self._write(f"built in {state.elapsed:.1f} s")
            return
        self._write(f"build failed at {state.where}; its last output:")
        for line in state.tail:
            self._write(f"  | {line}")


class LiveView:
    """A terminal: a rich live view on stderr, kept short (done steps, current step, one dim line)."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title
        self.last_line = ""
        self._live: Any = None

    def started(self, state: BuildState) -> None:
        from rich.live import Live

        self._state = state
        self._live = Live(self, console=self.console, refresh_per_second=8, transient=True)
        self._live.start()

    def __rich__(self) -> RenderableType:
        from rich.console import Group
        from rich.text import Text

        state = self._state
        rows: list[RenderableType] = [Text(f"{self.title}  {state.elapsed:5.1f} s", style="bold")]
        rows += [Text(f"  ✓ {d}", style="green") for d in state.done[-8:]]
        if state.pull is not None and not state.pull.done:
            pull = state.pull
            rows.append(
                Text(f"  ⇣ downloading {pull.image}: {pull.summary()}", overflow="ellipsis", no_wrap=True)
            )
        if state.step:
            rows.append(
                Text(f"  ▸ {state.step}/{state.total} {state.instruction}", overflow="ellipsis", no_wrap=True)
            )
        if self.last_line:
            rows.append(Text(f"    {self.last_line}", style="dim", overflow="ellipsis", no_wrap=True))
        return Group(*rows)

    def step(self, state: BuildState) -> None:
        self.last_line = ""

    def output(self, state: BuildState, line: str) -> None:
        self.last_line = line

    def pulling(self, state: BuildState) -> None:
        return None  # drawn from the state at the next refresh

    def finished(self, state: BuildState, error: str | None) -> None:
        if self._live is not None:
            self._live.stop()
        if error is None:
            self.console.print(
                f"[green]✓[/green] built {self.title} in {state.elapsed:.1f} s ({state.total} steps)",
                highlight=False,
            )
            return
        from rich.markup import escape

        self.console.print(
            f"[red]✗[/red] build failed at {escape(state.where)}; its last output:", highlight=False
        )
        for line in state.tail:
            self.console.print(f"  [dim]|[/dim] {escape(line)}", highlight=False)


def make_view(*, interactive: bool, console: Console | None, stream: IO[str], title: str) -> BuildView:
    if interactive and console is not None:
        return LiveView(console, title)
    return PlainView(stream)
