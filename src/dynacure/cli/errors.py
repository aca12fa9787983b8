"""How the CLI reports failures: a clear one-line message and a non-zero exit, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from dynacure.cli.console import make_console

err_console = make_console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


class NotBuiltYet(RuntimeError):
    """A command of the design that this version does not implement yet."""


def cli_errors(func: F) -> F:
    """Turn expected errors (bad input, bad config, missing files) into ``error: ...`` and exit code 2."""
    from dynacure.config import ConfigError

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NotBuiltYet as exc:
            err_console.print(f"[bold red]not built yet:[/] {exc}")
            raise typer.Exit(3) from None
        except (ConfigError, FileNotFoundError, ValueError, KeyError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            err_console.print(f"[bold red]error:[/] {msg}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
