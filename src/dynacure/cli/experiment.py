"""`dynacure experiment CONFIG.toml --out RUNS`: strategies x seeds x budgets x reward weights from one
config, resumable, into one results table (RUNS/results.parquet)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from dynacure.cli.console import make_console
from dynacure.cli.errors import cli_errors


class RichEvents:
    """Turns the runner's events into a Rich progress display (stages, cells, and work inside a cell)."""

    def __init__(self, progress: Progress, console: Console) -> None:
        self.progress = progress
        self.console = console
        self.stage_task = progress.add_task("starting", total=None)
        self.cell_task: int | None = None
        self.detail_task: int | None = None
        self.current = ""

    def events(self, in_process: bool):  # noqa: ANN201 - returns the runner's Events
        from dynacure.experiments.runner import Events

        return Events(
            stage=self.stage,
            cells_total=self.cells_total,
            cell_started=self.cell_started,
            cell_finished=self.cell_finished,
            detail=self.detail,
            inner_progress=in_process,
        )

    def stage(self, msg: str) -> None:
        self.progress.update(self.stage_task, description=msg)

    def cells_total(self, total: int, done: int) -> None:
        self.cell_task = self.progress.add_task("cells", total=total, completed=done)
        if done:
            self.console.print(f"resuming: {done} of {total} cells already done (DONE marker found)")

    def cell_started(self, cell_id: str) -> None:
        self.current = cell_id
        self.progress.update(self.stage_task, description=f"cell {cell_id}")

    def cell_finished(self, cell_id: str, seconds: float) -> None:
        if self.cell_task is not None:
            self.progress.advance(self.cell_task)
        if self.detail_task is not None:
            self.progress.update(self.detail_task, visible=False)
        self.console.print(f"[green]done[/] {cell_id} in {seconds:.1f}s")

    def detail(self, what: str, done: int, total: int) -> None:
        if self.detail_task is None:
            self.detail_task = self.progress.add_task(what, total=total)
        self.progress.update(
            self.detail_task, description=f"  evaluating: {what}", completed=done, total=total, visible=True
        )


def progress_bar(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def summary_table(results) -> Table:  # noqa: ANN001 - a pandas DataFrame
    """Headline metrics per strategy x budget (mean over seeds) for the terminal."""
    from dynacure.report.data import SAFETY_METRICS, UTILITY_METRICS, aggregate, pick_metric

    t = Table(title="results (mean over seeds, 95% interval)")
    t.add_column("strategy")
    t.add_column("budget", justify="right")
    keys = [k for k in (pick_metric(results, SAFETY_METRICS), pick_metric(results, UTILITY_METRICS)) if k]
    for k in keys:
        t.add_column(f"{k[1]} (lower is better)", justify="right")
    aggs = [aggregate(results, *k, by=("strategy", "budget")).set_index(["strategy", "budget"]) for k in keys]
    groups = results[["strategy", "budget"]].drop_duplicates().sort_values(["budget", "strategy"])
    for _, g in groups.iterrows():
        row = [str(g["strategy"]), f"{g['budget']:g}"]
        for a in aggs:
            idx = (g["strategy"], g["budget"])
            if idx in a.index:
                r = a.loc[idx]
                row.append(f"{r['value']:.3g} [{r['low']:.3g}, {r['high']:.3g}]")
            else:
                row.append("n/a")
        t.add_row(*row)
    return t


def composition_table(out: Path) -> Table:
    """Kept tokens and gold toxic share by source, strategies side by side (also RUNS/composition.json)."""
    from dynacure.experiments.composition import wide_view, write_composition

    comp = write_composition(out)
    t = Table(title="curated corpora: kept tokens (gold toxic share of kept docs) by source")
    if not len(comp):
        return t
    wide = wide_view(comp)
    t.add_column("strategy @ budget")
    for col in wide.columns:
        t.add_column(str(col), justify="right")
    for label, row in wide.iterrows():
        t.add_row(str(label), *[str(v) for v in row])
    return t


def register(app: typer.Typer) -> None:
    @app.command("experiment")
    @cli_errors
    def experiment_cmd(
        config: Path | None = typer.Argument(None, help="Experiment config (TOML). Or use --preset."),
        out: Path = typer.Option(Path("runs"), "--out", "-o", help="RUNS folder (resumed when it exists)."),
        preset: str | None = typer.Option(
            None, "--preset", "-p", help="A shipped preset: ci, standard, gpu."
        ),
        workers: int | None = typer.Option(None, "--workers", "-j", help="Parallel cells (default: config)."),
        report: bool = typer.Option(True, "--report/--no-report", help="Write RUNS/report.html at the end."),
    ) -> None:
        """Run a comparison grid (strategy x seed x budget x reward weights); skips finished cells."""
        from dynacure.experiments.config import load_experiment_config, load_preset, preset_names
        from dynacure.experiments.runner import run_experiment

        if (config is None) == (preset is None):
            raise ValueError(
                f"give a CONFIG file or --preset (one of: {', '.join(preset_names())}), not both"
            )
        cfg = load_preset(preset) if preset is not None else load_experiment_config(config)
        if workers is not None and workers < 1:
            raise ValueError("--workers must be >= 1")
        console = make_console(stderr=True)
        from dynacure.experiments.cells import expand_grid

        n_cells = len(expand_grid(cfg))
        n_workers = workers or cfg.resolved_workers(n_cells)
        console.print(f"experiment [bold]{cfg.name}[/]: {n_cells} cells, {n_workers} process(es), out {out}")
        with progress_bar(console) as progress:
            ev = RichEvents(progress, console)
            results = run_experiment(cfg, out, events=ev.events(in_process=n_workers <= 1), workers=n_workers)
        if len(results):
            console.print(composition_table(out))
            console.print(summary_table(results))
        console.print(f"results: {out / 'results.parquet'} ({len(results)} rows)")
        if report and len(results):
            from dynacure.report.html import build_report

            path = build_report(out, out / "report.html")
            console.print(f"report: [bold]{path}[/]")
