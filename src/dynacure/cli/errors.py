"""How the CLI reports failures: a clear one-line message and a non-zero exit, never a traceback.

Exit codes: 2 bad input, bad config or an unusable path (``error: ...``); 3 not built yet; 130 interrupted
(Ctrl-C: ``interrupted; re-run the same command to resume``; every command resumes or starts over cleanly).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.markup import escape

from dynacure.cli.console import make_console

err_console = make_console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

INTERRUPTED = "interrupted; re-run the same command to resume"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C
# Path errors from the OS (writing where a file / folder / no permission is in the way).
_PATH_ERRORS = (PermissionError, FileExistsError, IsADirectoryError, NotADirectoryError)


class NotBuiltYet(RuntimeError):
    """A command of the design that this version does not implement yet."""


def error_message(exc: BaseException) -> str:
    """The message for ``exc``: our own messages as they are, an OS error as ``PATH: reason``."""
    if isinstance(exc, KeyError) and exc.args:
        msg = str(exc.args[0])
    elif isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        # "[Errno 17] File exists: 'x'" -> "x: File exists"; a rename names both paths
        where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else str(exc.filename)
        msg = f"{where}: {exc.strerror}"
    else:
        msg = str(exc) or type(exc).__name__
    return msg.strip()  # a config error may list one problem per line below its first line


def print_error(msg: str, label: str = "error") -> None:
    """``label: msg`` on stderr as one line (no markup read from paths, no wrapping at the console width)."""
    err_console.print(f"[bold red]{label}:[/] {escape(msg)}", soft_wrap=True, highlight=False)


def cli_errors(func: F) -> F:
    """Turn expected errors (bad input, bad config, missing files, unusable paths) into ``error: ...`` and
    exit code 2, and Ctrl-C into one line and exit code 130."""
    from dynacure.config import ConfigError

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NotBuiltYet as exc:
            print_error(error_message(exc), "not built yet")
            raise typer.Exit(3) from None
        except (ConfigError, FileNotFoundError, ValueError, KeyError, *_PATH_ERRORS) as exc:
            print_error(error_message(exc))
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print(INTERRUPTED, soft_wrap=True, highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]
