"""One output object: rich tables and messages for people, plain JSON for `--json` and scripts."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

    from ds01.errors import Ds01Error


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
        from rich.table import Table

        table = Table(title=title, header_style="bold", box=None, pad_edge=False, show_header=header)
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*(_cell(v) for v in row))
        self.console.print(table)

    def say(self, message: str) -> None:
        """A result line for people (stdout); silent in JSON mode."""
        if not self.json_mode:
            self.console.print(message)

    def info(self, message: str) -> None:
        self.err_console.print(message, style="dim" if self.json_mode else None)

    def success(self, message: str) -> None:
        if not self.json_mode:
            self.console.print(f"[green]✓[/green] {message}")

    def warn(self, message: str) -> None:
        self.err_console.print(f"[yellow]warning:[/yellow] {_escape(message)}")

    def hint(self, message: str) -> None:
        if not self.json_mode:
            self.err_console.print(f"[dim]{message}[/dim]")

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
