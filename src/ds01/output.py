"""One output object: rich tables and messages for people, plain JSON for `--json` and scripts."""

from __future__ import annotations

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
        self.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        self.stdout.flush()

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
        cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
        if header:
            cells.insert(0, [str(c) for c in columns])
        widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
        for r in cells:
            self.stdout.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")
        self.stdout.flush()

    def _print(self, stream: TextIO, message: str) -> None:
        if _plain(stream):
            stream.write(strip_markup(message) + "\n")
            stream.flush()
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
        if self.json_mode:
            self.json({"error": {"code": err.code, "message": str(err)}})
        # plain write: no rich import on the error path, and no markup surprises in user strings
        self.stderr.write(f"error: {err}\n")
        self.stderr.flush()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return _escape(str(value))
