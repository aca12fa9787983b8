"""`dynacure experiment CONFIG.toml --out RUNS`: strategies x seeds x budgets x reward weights from one
config, resumable, into one results table (RUNS/results.parquet).

RUNS made by another experiment config (or holding another command's run) is refused unless
``--overwrite``, which empties RUNS first (``open_runs``): an experiment's cells of another config are not
to be reused, so replacing means starting over.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

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
from dynacure.cli.paths import OVERWRITE_HELP, check_out_path, claim_out_dir, make_request

if TYPE_CHECKING:
    from dynacure.experiments.config import ExperimentConfig


def open_runs(cfg: ExperimentConfig, out: Path, command: str, overwrite: bool) -> str | None:
    """Check RUNS before any work: refuse another command's run there and an experiment of another config
    or environment (``runner.open_workspace``'s refusal, with the flag added) unless ``overwrite``, which
    empties RUNS. Returns the line saying what was replaced, or None."""
    import shutil

    from dynacure.config import ConfigError
    from dynacure.experiments.runner import open_workspace

    claim = claim_out_dir(out, command, make_request(), overwrite=overwrite)
    replaced = ", ".join(claim.replaced) or None
    if not (out / "experiment.json").exists():
        return f"--overwrite: replaced {replaced} in {out}" if replaced else None
    try:
        open_workspace(cfg, out)
    except ConfigError as exc:
        if not overwrite:
            raise ConfigError(f"{exc}; or pass --overwrite to replace it") from None
        for entry in out.iterdir():  # the other experiment's cells may not be reused: start over
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        return f"--overwrite: emptied {out} (it held an experiment of another config: {exc})"
    return None


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


class StageProgress(Progress):
    """A Progress whose open tasks are completed when the block ends without an error: a stage spinner
    ("collecting results 0/?") must not stay on screen as if the run were still at it."""

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None,
                 exc_tb: TracebackType | None) -> None:
        if exc_type is None:
            for task in self.tasks:
                if not task.finished:
                    total = task.total if task.total is not None else max(task.completed, 1)
                    self.update(task.id, total=total, completed=total)
        super().__exit__(exc_type, exc_val, exc_tb)


def progress_bar(console: Console) -> Progress:
    """The experiment's (and the demo's) display: stage, cells, work inside a cell; on ``console``
    (stderr), finished tasks shown as done when the block ends."""
    return StageProgress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def summary_table(results, paired=None) -> Table:  # noqa: ANN001 - pandas DataFrames
    """Headline metrics per strategy x budget (mean over seeds), and under them the paired differences on
    those metrics against random and the best static baseline, for the terminal.

    ``paired`` defaults to RUNS/paired.parquet of the folder the results came from
    (``results.attrs["runs"]``, set by collect_results / read_results); without it only the first table.
    """
    import math

    from rich.text import Text

    from dynacure.experiments.paired import read_paired
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
        row = [Text(str(g["strategy"])), f"{g['budget']:g}"]  # Text: a label is not Rich markup
        for a in aggs:
            idx = (g["strategy"], g["budget"])
            if idx in a.index:
                r = a.loc[idx]
                row.append(f"{r['value']:.3g} [{r['low']:.3g}, {r['high']:.3g}]")
            else:
                row.append("n/a")
        t.add_row(*row)
    if paired is None and results.attrs.get("runs"):
        paired = read_paired(results.attrs["runs"])
    if paired is None or not len(paired):
        return t
    p = Table(title="paired differences vs random and the best static baseline: strategy - baseline, 95% "
                    "paired bootstrap interval, seeds paired (* excludes 0; green better, red worse)")
    p.add_column("budget", justify="right")
    multi_w = paired["weights"].nunique() > 1
    if multi_w:
        p.add_column("weights")
    p.add_column("strategy")
    p.add_column("against")
    shown = [k for k in keys if ((paired["suite"] == k[0]) & (paired["metric"] == k[1])).any()]
    for k in shown:
        p.add_column(k[1], justify="right")
    p.add_column("seeds", justify="right")
    p.add_column("other metrics: better / worse (*)", justify="right")
    index = ["budget", "weights", "strategy", "baseline_role", "baseline"]

    def flag(x) -> bool | None:  # noqa: ANN001 - a nullable boolean of the paired table
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else bool(x)

    order = paired.assign(_r=(paired["baseline_role"] != "random").astype(int)).sort_values(
        ["budget", "weights", "strategy", "_r"])
    for key, g in order.groupby(index, sort=False):
        budget, weights, strategy, role, baseline = key
        row: list = [f"{budget:g}", *([Text(str(weights))] if multi_w else []), Text(str(strategy)),
                     Text(f"{baseline}" + (" (best static)" if role == "best_static" else ""))]
        for k in shown:
            m = g[(g["suite"] == k[0]) & (g["metric"] == k[1])]
            if not len(m):
                row.append("n/a")
                continue
            r = m.iloc[0]
            cell = f"{r['diff']:+.3g} [{r['low']:+.3g}, {r['high']:+.3g}]"
            if bool(r["significant"]):
                better = flag(r["better"])
                style = "bold" if better is None else ("green" if better else "red")
                row.append(Text(cell + " *", style=style))
            else:
                row.append(cell)
        row.append(str(int(g["n_seeds"].max())))
        rest = g[~g.set_index(["suite", "metric"]).index.isin(shown) & g["significant"].astype(bool)]
        flags = [flag(b) for b in rest["better"]]
        row.append(f"{flags.count(True)} / {flags.count(False)}")
        p.add_row(*row)
    grid = Table.grid(padding=(1, 0))  # a Table of two tables, so callers keep printing one renderable
    grid.add_row(t)
    grid.add_row(p)
    return grid


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
            None, "--preset", "-p", help="A shipped preset, one of: @@presets@@."
        ),
        workers: int | None = typer.Option(None, "--workers", "-j", help="Parallel cells (default: config)."),
        report: bool = typer.Option(True, "--report/--no-report", help="Write RUNS/report.html at the end."),
        keep_models: bool = typer.Option(
            False, "--keep-models",
            help="Save each cell's trained learner in RUNS/cells/<cell>/model (open it with load_learner or "
                 "`dynacure evaluate`); finished cells without one are run again.",
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    ) -> None:
        """Run a comparison grid (strategy x seed x budget x reward weights); skips finished cells."""
        from dynacure.experiments.config import load_experiment_config, load_preset, preset_names
        from dynacure.experiments.runner import run_experiment

        if config is None and preset is None:
            raise ValueError(f"no experiment given: pass a CONFIG file (TOML) or --preset NAME (one of: "
                             f"{', '.join(preset_names())})")
        if config is not None and preset is not None:
            raise ValueError(f"both a CONFIG file ({config}) and --preset {preset} given: pass one of them")
        check_out_path(out, "dir")
        cfg = load_preset(preset) if preset is not None else load_experiment_config(config)
        if workers is not None and workers < 1:
            raise ValueError("--workers must be >= 1")
        console = make_console(stderr=True)
        replaced = open_runs(cfg, out, "experiment", overwrite)
        if replaced:
            console.print(replaced, soft_wrap=True, highlight=False, markup=False)
        from dynacure.experiments.cells import expand_grid

        n_cells = len(expand_grid(cfg))
        n_workers = workers or cfg.resolved_workers(n_cells)
        console.print(f"experiment [bold]{cfg.name}[/]: {n_cells} cells, {n_workers} process(es), out {out}")
        if keep_models and not cfg.learner.train:
            console.print("--keep-models: learner.train = false, so no cell trains a learner to keep")
        with progress_bar(console) as progress:
            ev = RichEvents(progress, console)
            results = run_experiment(cfg, out, events=ev.events(in_process=n_workers <= 1), workers=n_workers,
                                     keep_models=keep_models)
        if len(results):
            console.print(composition_table(out))
            console.print(summary_table(results))
        console.print(f"results: {out / 'results.parquet'} ({len(results)} rows)")
        if report and len(results):
            from dynacure.report.html import build_report

            path = build_report(out, out / "report.html")
            console.print(f"report: [bold]{path}[/]")
