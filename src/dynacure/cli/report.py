"""`dynacure report PATH --out report.html`: a static, self-contained HTML page of an experiment, a curated
corpus or a trained model's evaluation; the kind is told from the files at PATH (``report.kinds``)."""

from __future__ import annotations

from pathlib import Path

import typer

from dynacure.cli.console import make_console
from dynacure.cli.errors import cli_errors
from dynacure.cli.paths import check_out_path


def register(app: typer.Typer) -> None:
    @app.command("report")
    @cli_errors
    def report_cmd(
        path: Path = typer.Argument(
            ..., help="A RUNS folder of `dynacure experiment` / `demo`, a curated corpus folder of "
            "`dynacure curate`, or an evaluation: the results JSON of `dynacure evaluate` or the folder "
            "holding it (e.g. the model folder)."
        ),
        out: Path | None = typer.Option(None, "--out", "-o",
                                        help="HTML file (default: report.html in PATH's folder)."),
    ) -> None:
        """One HTML page with plots and tables: an experiment's comparison (with intervals), a curated
        corpus (composition by source, drops by reason, score distributions) or an evaluation (every
        metric with its interval). The kind is told from PATH's files."""
        from dynacure.report.kinds import build_any, default_out, detect

        # the output path first (before anything is read), then what PATH is
        check_out_path(out if out is not None else default_out(path), "file")
        kind, _source = detect(path)
        console = make_console(stderr=True)
        with console.status(f"rendering the {kind} report"):
            _, written = build_any(path, out)
        console.print(f"{kind} report: [bold]{written}[/]")
