"""The ``dynacure`` command: one Typer app, one module per subcommand registered here."""

from __future__ import annotations

import logging
import os

import typer

from dynacure import __version__

# Nothing in dynacure may reach a model hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

app = typer.Typer(
    name="dynacure",
    help="Curate LM training data with a learned selection policy for safer, better aligned models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dynacure {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="-v info, -vv debug logging"),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print version."),
) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _register() -> None:
    from dynacure.cli import (
        adapt,
        audit,
        curate,
        demo,
        evaluate,
        experiment,
        pool,
        report,
        score,
        train,
        train_scorer,
    )

    app.add_typer(pool.app, name="pool", help="Build a raw pool from local copies of public datasets.")
    for mod in (demo, score, train_scorer, curate, train, evaluate, experiment, report, audit, adapt):
        mod.register(app)


_register()
