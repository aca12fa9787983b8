"""`dynacure report RUNS --out report.html`: a static, self-contained HTML page of an experiment."""

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
        runs: Path = typer.Argument(
            ..., help="RUNS folder written by `dynacure experiment` or `dynacure demo`."
        ),
        out: Path | None = typer.Option(None, "--out", "-o", help="HTML file (default RUNS/report.html)."),
    ) -> None:
        """Plots and tables (with intervals) of an experiment's results as one HTML file."""
        if not runs.is_dir():
            raise FileNotFoundError(f"{runs}: no such RUNS folder (written by `dynacure experiment` or "
                                    "`dynacure demo`)")
        check_out_path(out if out is not None else runs / "report.html", "file")
        from dynacure.report.html import build_report

        console = make_console(stderr=True)
        with console.status("rendering the report"):
            path = build_report(runs, out)
        console.print(f"report: [bold]{path}[/]")
