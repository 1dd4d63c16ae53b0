"""The wizards' questions: questionary on a terminal, flags otherwise (the only importer of questionary).

Every question names the flag that answers it, so that without a terminal a missing answer is a usage error
(exit 2) that says exactly what to pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ds01.errors import ExitCode, UsageError


class Cancelled(UsageError):
    exit_code = ExitCode.INTERRUPTED
    code = "cancelled"


@dataclass(frozen=True)
class Choice:
    value: str
    title: str
    disabled: str | None = None  # shown greyed out with this reason; cannot be picked


class Prompter(Protocol):
    def select(self, question: str, choices: Sequence[Choice], *, default: str | None, flag: str) -> str: ...
    def text(self, question: str, *, default: str, flag: str) -> str: ...
    def confirm(self, question: str, *, default: bool, flag: str) -> bool: ...


class NoTerminal:
    """Without a terminal every unanswered question is a usage error naming its flag."""

    def select(self, question: str, choices: Sequence[Choice], *, default: str | None, flag: str) -> str:
        raise _missing(question, flag)

    def text(self, question: str, *, default: str, flag: str) -> str:
        raise _missing(question, flag)

    def confirm(self, question: str, *, default: bool, flag: str) -> bool:
        raise _missing(question, flag)


class Defaults:
    """`--yes`: every question takes its default answer."""

    def select(self, question: str, choices: Sequence[Choice], *, default: str | None, flag: str) -> str:
        return default if default is not None else next(c.value for c in choices if not c.disabled)

    def text(self, question: str, *, default: str, flag: str) -> str:
        return default

    def confirm(self, question: str, *, default: bool, flag: str) -> bool:
        return default


class Questionary:
    """Real prompts. `input`/`output` are prompt_toolkit objects; tests pass a pipe input."""

    def __init__(self, *, input: Any = None, output: Any = None) -> None:
        self._io = {k: v for k, v in (("input", input), ("output", output)) if v is not None}

    def _ask(self, question: Any) -> Any:
        """One path for tests and people: Ctrl-C (or Ctrl-D) at a question is `Cancelled`, exit 130."""
        try:
            answer = question.unsafe_ask(patch_stdout=False)
        except (KeyboardInterrupt, EOFError):
            answer = None
        if answer is None:
            raise Cancelled("cancelled", hint="nothing was changed after the last step shown")
        return answer

    def select(self, question: str, choices: Sequence[Choice], *, default: str | None, flag: str) -> str:
        import questionary

        options = [questionary.Choice(c.title, value=c.value, disabled=c.disabled) for c in choices]
        chosen = next((o for o in options if o.value == default), None)
        return str(self._ask(questionary.select(question, options, default=chosen, **self._io)))

    def text(self, question: str, *, default: str, flag: str) -> str:
        import questionary

        return str(self._ask(questionary.text(question, default=default, **self._io))).strip()

    def confirm(self, question: str, *, default: bool, flag: str) -> bool:
        import questionary

        return bool(self._ask(questionary.confirm(question, default=default, **self._io)))


def _missing(question: str, flag: str) -> UsageError:
    return UsageError(
        f"no answer for {question.rstrip('?').lower()!r}",
        hint=f"pass {flag}, or --yes for the defaults (no terminal to ask on)",
    )


def prompter_for(*, yes: bool, tty: bool) -> Prompter:
    if yes:
        return Defaults()
    return Questionary() if tty else NoTerminal()
