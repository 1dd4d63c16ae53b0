"""Shared pieces of every command: options, the error ladder, TTY rules."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand

from ds01.errors import Ds01Error, ExitCode, UsageError
from ds01.output import Output

if TYPE_CHECKING:
    from ds01.client import Client

F = TypeVar("F", bound=Callable[..., Any])

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (for scripts).")]
UserOpt = Annotated[str | None, typer.Option("--user", "-u", help="Act for another user (admins only).")]


def handle_errors(fn: F) -> F:
    """The one try/except ladder: expected failures become one line and the contract's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = Output(json_mode=bool(kwargs.get("json_out")))
        try:
            _check_encoding(kwargs)
            return fn(*args, **kwargs)
        except Ds01Error as err:
            if os.environ.get("DS01_DEBUG"):
                import traceback

                traceback.print_exc()
            out.error(err)
            raise typer.Exit(int(err.exit_code)) from None
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except typer.Exit:
            raise
        except Exception as exc:  # an unexpected bug: say so in one line unless debugging
            if os.environ.get("DS01_DEBUG"):
                raise
            out.error(
                Ds01Error(
                    f"internal error: {type(exc).__name__}: {exc}",
                    hint="re-run with DS01_DEBUG=1 for the traceback and report it",
                )
            )
            raise typer.Exit(int(ExitCode.FAILURE)) from None

    return wrapper  # type: ignore[return-value]


def _check_encoding(kwargs: dict[str, Any]) -> None:
    """An argument whose bytes are not UTF-8 (Python keeps them as lone surrogates) is a usage error here,
    before it reaches a path, a query or a message that would have to encode it."""
    for value in kwargs.values():
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, str) and not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise UsageError(
                        f"the argument {item[:40]!r} is not valid UTF-8",
                        hint="pass text in UTF-8 (check the terminal's or the script's encoding)",
                    ) from None


def connect(json_out: bool = False) -> Client:
    """The command's client of ds01d, showing ds01d's messages through this command's output."""
    from ds01.client import Client

    return Client(Output(json_mode=json_out))


def stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


class JsonAwareCommand(TyperCommand):
    """With --json, a command-line error (unknown option, bad value) also prints the error object on
    stdout, as every other failure does (CONTRACT §4); the usual usage message stays on stderr."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        wants_json = "--json" in (args[: args.index("--")] if "--" in args else args)
        try:
            return super().parse_args(ctx, args)
        except Exception as exc:
            if (
                wants_json
                and getattr(exc, "exit_code", None) == ExitCode.USAGE
                and hasattr(exc, "format_message")
            ):
                Output(json_mode=True).json(
                    {"error": {"code": UsageError.code, "message": exc.format_message()}}
                )
            raise


class Ds01Typer(typer.Typer):
    """A Typer whose commands are JsonAwareCommands."""

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or JsonAwareCommand, **kwargs)


def new_app(name: str, help: str) -> typer.Typer:
    app = Ds01Typer(
        name=name,
        help=help,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def _group() -> None:
        """Keeps this app a group even when it has one command."""

    _group.__doc__ = help
    return app


def single_command(fn: Callable[..., Any], prog_name: str) -> None:
    """Run one command function as its own console script (`container-deploy`, ...)."""
    app = Ds01Typer(
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.command()(fn)
    app(prog_name=prog_name)
