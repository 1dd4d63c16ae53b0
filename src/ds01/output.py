"""One output object: rich tables and messages for people, plain JSON for `--json` and scripts."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

    from ds01.errors import Ds01Error

# ds01's own markup tags; messages to pipes and files are written without rich (and without its import).
_MARKUP = re.compile(r"\[/?(?:bold|dim|italic|green|yellow|red|cyan|blue|magenta)(?: [a-z]+)*\]")


def _plain(stream: TextIO) -> bool:
    try:
        return not stream.isatty() and not os.environ.get("FORCE_COLOR")
    except (AttributeError, ValueError):
        return True


# Control characters, line separators and bidi overrides (e.g. from a name or path the user typed).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def one_line(text: str) -> str:
    """Text as one printable line: control characters shown escaped (`\\n`, `\\x1b`), never acted on."""
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


def strip_markup(text: str) -> str:
    return _MARKUP.sub("", text).replace("\\[", "[")


class Output:
    def __init__(
        self, *, json_mode: bool = False, stdout: TextIO | None = None, stderr: TextIO | None = None
    ):
        self.json_mode = json_mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._out: Console | None = None
        self._err: Console | None = None

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and self.stdout.isatty() and not self.json_mode

    def _console(self, stream: TextIO) -> Console:
        from rich.console import Console

        width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else None
        return Console(file=stream, highlight=False, emoji=False, soft_wrap=not stream.isatty(), width=width)

    @property
    def console(self) -> Console:
        if self._out is None:
            self._out = self._console(self.stdout)
        return self._out

    @property
    def err_console(self) -> Console:
        if self._err is None:
            self._err = self._console(self.stderr)
        return self._err

    def json(self, payload: Any) -> None:
        _write(self.stdout, json.dumps(payload, indent=2, default=str) + "\n")

    def table(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        title: str | None = None,
        empty: str = "nothing to show",
        header: bool = True,
    ) -> None:
        if not rows:
            self.info(empty)
            return
        if _plain(self.stdout):
            self._plain_table(columns, rows, header=header)
            return
        from rich.table import Table

        table = Table(title=title, header_style="bold", box=None, pad_edge=False, show_header=header)
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*(_cell(v) for v in row))
        self.console.print(table)

    def _plain_table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, header: bool) -> None:
        cells = [[("-" if v is None else strip_markup(str(v))) for v in row] for row in rows]
        if header:
            cells.insert(0, [str(c) for c in columns])
        widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
        text = "".join(
            "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in cells
        )
        _write(self.stdout, text)

    def _print(self, stream: TextIO, message: str) -> None:
        if _plain(stream):
            _write(stream, strip_markup(message) + "\n")
        else:
            (self.console if stream is self.stdout else self.err_console).print(message)

    def say(self, message: str) -> None:
        """A result line for people (stdout); silent in JSON mode."""
        if not self.json_mode:
            self._print(self.stdout, message)

    def info(self, message: str) -> None:
        self._print(self.stderr, message if not self.json_mode else f"[dim]{message}[/dim]")

    def success(self, message: str) -> None:
        if not self.json_mode:
            self._print(self.stdout, f"[green]✓[/green] {message}")

    def warn(self, message: str) -> None:
        shown = message if _plain(self.stderr) else _escape(message)
        self._print(self.stderr, f"[yellow]warning:[/yellow] {shown}")

    def hint(self, message: str) -> None:
        if not self.json_mode:
            self._print(self.stderr, f"[dim]{message}[/dim]")

    def error(self, err: Ds01Error) -> None:
        """One line on stderr (plain: no rich import, no markup surprises), and the JSON object with --json.
        A closed stdout does not hide the failure: the caller still exits with the error's code."""
        with contextlib.suppress(OutputClosed):
            _write(self.stderr, f"error: {one_line(str(err))}\n")
        if self.json_mode:
            with contextlib.suppress(OutputClosed):
                self.json({"error": {"code": err.code, "message": str(err)}})


class OutputClosed(SystemExit):
    """The reader of our output went away (`container-list | head`): a quiet exit 0, no trace."""

    def __init__(self) -> None:
        super().__init__(0)


def _write(stream: TextIO | None, text: str) -> None:
    if stream is None:  # closed before we started (`2>&-`): Python has no stream to say it on
        return
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        try:  # point the stream at /dev/null so the interpreter's last flush cannot fail again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
        raise OutputClosed() from None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return _escape(str(value))
