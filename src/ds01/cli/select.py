"""A missing NAME: a numbered choice on a terminal, a usage error (exit 2) naming the argument otherwise.

The choices come from ds01d (`GET /v1/containers`). Rich's prompts, not questionary: questionary belongs to
the wizards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ds01.cli.common import stdin_is_tty
from ds01.client import path_of
from ds01.errors import NotFound, UsageError

if TYPE_CHECKING:
    from ds01.client import Client
    from ds01.output import Output


class HasOutput(Protocol):
    """A client (or anything with the command's `Output`)."""

    @property
    def out(self) -> Output: ...


def _no_terminal(command: str, example: str) -> UsageError:
    return UsageError(
        f"missing argument NAME for {command}",
        hint=f"pass it, e.g. `{command} {example}` (no terminal to ask on)",
    )


def container_name(
    client: Client,
    name: str | None,
    *,
    command: str,
    user: str | None = None,
    states: frozenset[str] | None = None,
) -> str:
    """NAME as given, or one of the user's containers (in `states`) picked from a numbered list; the pick
    is returned as the engine's name (`name._.uid`)."""
    if name:
        return name
    if not stdin_is_tty():
        raise _no_terminal(command, "thesis")
    from rich.prompt import IntPrompt

    entries = [
        e
        for e in client.call("GET", path_of("containers"), {"user": user})
        if states is None or e["status"] in states
    ]
    if not entries:
        raise NotFound(
            f"no container to pick for {command}", hint="see container-list, or container-create NAME"
        )
    console = client.out.err_console
    for i, e in enumerate(entries, 1):
        console.print(
            f"  {i}) {e['name']}  [dim]{e['status']}, {e['image']}[/dim]", markup=True, highlight=False
        )
    pick = IntPrompt.ask(
        "Which container",
        console=console,
        choices=[str(i) for i in range(1, len(entries) + 1)],
        show_choices=False,
    )
    return str(entries[pick - 1]["container"])


def new_name(client: HasOutput, name: str | None, *, command: str) -> str:
    """NAME as given, or asked for on a terminal."""
    if name:
        return name
    if not stdin_is_tty():
        raise _no_terminal(command, "my-thesis")
    from rich.prompt import Prompt

    return Prompt.ask("Name (e.g. my-thesis)", console=client.out.err_console).strip()
