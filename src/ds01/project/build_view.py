"""A build's progress: the legacy builder's event stream, followed step by step (engine-free).

ds01d follows the stream to detect a failure (`follow` with `NullView`) and forwards every event to the
client, which feeds the same events to its view (`Follower`).

On a terminal a live view on stderr shows the steps done, the current step with its latest output line
dimmed, and the elapsed time. Elsewhere each step is one plain line on stderr. A failed build shows the
failing step and its last output lines, then raises `OperationFailed` (exit 1).
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

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def where(self) -> str:
        return f"step {self.step}/{self.total} ({self.instruction})" if self.step else "the start"


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    steps: int
    seconds: float


class BuildView(Protocol):
    def started(self, state: BuildState) -> None: ...
    def step(self, state: BuildState) -> None: ...
    def output(self, state: BuildState, line: str) -> None: ...
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
                raise OperationFailed(
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
    for line in _lines(str(event.get("stream", ""))):
        match = STEP.match(line)
        if match:
            if state.step:
                state.done.append(f"{state.step}/{state.total} {state.instruction}")
            state.step, state.total, state.instruction = int(match[1]), int(match[2]), match[3]
            state.tail.clear()
            view.step(state)
        elif not _NOISE.match(line):
            state.tail.append(line)
            view.output(state, line)
    return None


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

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def started(self, state: BuildState) -> None:
        return None

    def step(self, state: BuildState) -> None:
        self._write(f"Step {state.step}/{state.total} : {state.instruction}")

    def output(self, state: BuildState, line: str) -> None:
        return None

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
