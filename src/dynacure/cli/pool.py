"""`dynacure pool build`: compose a raw pool from the local copies of public datasets."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dynacure.cli.console import make_console
from dynacure.cli.errors import cli_errors
from dynacure.cli.paths import OVERWRITE_HELP, check_out_path, claim_out_dir, make_request

app = typer.Typer(no_args_is_help=True)
console = make_console()


@app.command("build")
@cli_errors
def build(
    out: Path = typer.Option(..., "--out", "-o", help="output corpus folder (shards + corpus.json)"),
    data_dir: Path = typer.Option(None, "--data-dir",
                                  help="public datasets folder (default: $DYNACURE_DATA or ../shared/data)"),
    seed: int = typer.Option(0, help="shuffle (and subsample) seed"),
    shard_size: int = typer.Option(5000, "--shard-size", min=1, help="documents per shard"),
    max_docs_per_source: int = typer.Option(None, "--max-docs-per-source", min=1,
                                            help="keep a seeded sample of at most this many per source"),
    source: list[str] = typer.Option(None, "--source",
                                     help="only these sources (repeatable; default: all)"),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Compose the raw pool: clean WikiText-2/PTB/HH-RLHF text plus the pool part of the toxicity sets.

    Gold toxicity labels are kept in each document's meta for analysis only. Test and evaluation splits,
    and the reward/judge parts of the labeled sets, never enter the pool.
    """
    check_out_path(out, "dir")
    from dynacure.io.pool import POOL_SOURCES, build_pool, composition_table
    from dynacure.io.public_data import default_data_dir
    from dynacure.runinfo import write_run_info

    data = data_dir if data_dir is not None else default_data_dir()
    chosen = list(source) if source else None
    names = chosen or list(POOL_SOURCES)
    # another run's output in OUT is refused before any work (the same build re-runs)
    claim = claim_out_dir(out, "pool build", make_request(
        {"data_dir": data}, seed=seed, shard_size=shard_size, max_docs_per_source=max_docs_per_source,
        sources=names), overwrite=overwrite)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=make_console(stderr=True), transient=True) as progress:
        task = progress.add_task("reading sources", total=len(names))

        def done(name: str, n: int) -> None:
            progress.update(task, advance=1, description=f"read {name} ({n:,} docs)")

        summary = build_pool(data, out, seed=seed, shard_size=shard_size,
                             max_docs_per_source=max_docs_per_source, sources=chosen, on_source=done)
    write_run_info(out, "pool build",
                   {"data_dir": str(data), "seed": seed, "shard_size": shard_size,
                    "max_docs_per_source": max_docs_per_source, "sources": names}, seed, paths=("data_dir",))
    claim.finish()
    console.print(composition_table(summary))
    console.print(f"wrote {summary.n_docs:,} documents in {summary.n_shards} shards to {out} "
                  f"(composition in {out / 'corpus.json'})")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="pool", help="Build a raw pool from local copies of public datasets.")
