"""`dynacure report`: not built yet (see the issue that owns it)."""

from __future__ import annotations

import typer

from dynacure.cli.errors import NotBuiltYet, cli_errors


def register(app: typer.Typer) -> None:
    @app.command("report", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    @cli_errors
    def _cmd() -> None:
        """Not built yet."""
        raise NotBuiltYet("'dynacure report' is part of the design but not implemented in this version")
