"""The wizards' questions (`wizards.prompts.Prompter`) asked with rich's prompts, for the commands that ask a
question or two on a terminal without being a wizard (image-create's framework and project type). The
choices and their defaults come from the same code as project-init's, so both say what this server can
build; the answer is typed (a choice's name), as in the rest of the plain commands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ds01.errors import UsageError

if TYPE_CHECKING:
    from ds01.output import Output
    from ds01.wizards.prompts import Choice


class RichPrompter:
    def __init__(self, out: Output) -> None:
        self.console = out.err_console

    def select(self, question: str, choices: Sequence[Choice], *, default: str | None, flag: str) -> str:
        from rich.markup import escape
        from rich.prompt import Prompt

        open_ = [c.value for c in choices if not c.disabled]
        if not open_:
            raise UsageError(f"nothing to choose for {question!r}", hint=f"pass {flag}")
        for c in choices:
            if c.disabled:
                self.console.print(f"  [dim]{escape(c.title)}  ({escape(c.disabled)})[/dim]", highlight=False)
            else:
                self.console.print(
                    f"  [bold]{escape(c.value)}[/bold]{escape(c.title[len(c.value) :])}", highlight=False
                )
        return Prompt.ask(
            question.rstrip("?"),
            console=self.console,
            choices=open_,
            default=default if default in open_ else open_[0],
            show_choices=False,
        )

    def text(self, question: str, *, default: str, flag: str) -> str:
        from rich.prompt import Prompt

        return Prompt.ask(question, console=self.console, default=default)

    def confirm(self, question: str, *, default: bool, flag: str) -> bool:
        from rich.prompt import Confirm

        return Confirm.ask(question, console=self.console, default=default)
