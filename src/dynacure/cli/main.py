"""The ``dynacure`` command: one Typer app, one module per subcommand registered here."""

from __future__ import annotations

import logging
import os

import rich
import typer

from dynacure import __version__
from dynacure.cli.help import use_dynacure_help

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
    # Rich output that names no console (the learners' training progress bar) goes to stderr like every
    # other progress display: stdout carries only results.
    rich.reconfigure(stderr=True)


def _register() -> None:
    from dynacure.cli import (
        adapt,
        audit,
        curate,
        data,
        demo,
        evaluate,
        experiment,
        pool,
        pretrain,
        report,
        score,
        train,
        train_scorer,
    )

    app.add_typer(pool.app, name="pool", help="Build a raw pool from local copies of public datasets.")
    app.add_typer(data.app, name="data", help="Check the local copies of the public datasets.")
    for mod in (demo, pretrain, score, train_scorer, curate, train, evaluate, experiment, report, audit,
                adapt):
        mod.register(app)


_register()
use_dynacure_help(app)  # after _register: every command's help lists registry values
