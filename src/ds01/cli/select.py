"""A missing NAME: a numbered choice on a terminal, a usage error (exit 2) naming the argument otherwise.

Rich's prompts, not questionary: questionary belongs to the wizards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ds01.cli.common import stdin_is_tty
from ds01.errors import NotFound, UsageError

if TYPE_CHECKING:
    from ds01.context import Context


def _no_terminal(command: str, example: str) -> UsageError:
    return UsageError(
        f"missing argument NAME for {command}",
        hint=f"pass it, e.g. `{command} {example}` (no terminal to ask on)",
    )


def container_name(
    ctx: Context,
    name: str | None,
    *,
    command: str,
    user: str | None = None,
    states: frozenset[str] | None = None,
) -> str:
    """NAME as given, or one of the user's containers (in `states`) picked from a numbered list."""
    if name:
        return name
    if not stdin_is_tty():
        raise _no_terminal(command, "thesis")
    from rich.prompt import IntPrompt

    from ds01.atomic.containers import list_views

    views = [v for v in list_views(ctx, owner=ctx.target_user(user)) if states is None or v.state in states]
    if not views:
        raise NotFound(
            f"no container to pick for {command}", hint="see container-list, or container-create NAME"
        )
    console = ctx.out.err_console
    for i, v in enumerate(views, 1):
        console.print(f"  {i}) {v.name}  [dim]{v.state}, {v.image}[/dim]", markup=True, highlight=False)
    pick = IntPrompt.ask(
        "Which container",
        console=console,
        choices=[str(i) for i in range(1, len(views) + 1)],
        show_choices=False,
    )
    return views[pick - 1].docker_name


def new_name(ctx: Context, name: str | None, *, command: str) -> str:
    """NAME as given, or asked for on a terminal."""
    if name:
        return name
    if not stdin_is_tty():
        raise _no_terminal(command, "my-thesis")
    from rich.prompt import Prompt

    return Prompt.ask("Name (e.g. my-thesis)", console=ctx.out.err_console).strip()
