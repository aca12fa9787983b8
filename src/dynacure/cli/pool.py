"""`dynacure pool build`: not built yet."""

from __future__ import annotations

import typer

from dynacure.cli.errors import NotBuiltYet, cli_errors

app = typer.Typer(no_args_is_help=True)


@app.command("build")
@cli_errors
def build() -> None:
    """Not built yet."""
    raise NotBuiltYet("'dynacure pool build' is not implemented yet")
