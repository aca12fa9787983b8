"""`dynacure audit`: removal disparity per identity group and dialect for one or more decision manifests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.table import Table

from dynacure.cli.console import make_console
from dynacure.cli.errors import cli_errors
from dynacure.cli.paths import check_out_path

console = make_console()


def register(app: typer.Typer) -> None:
    @app.command("audit")
    @cli_errors
    def audit(
        paths: list[Path] = typer.Argument(
            ..., help="manifest.parquet, curate output folder(s), or an experiment folder"
        ),
        corpus: Path = typer.Option(
            None,
            "--corpus",
            help="the corpus the manifests were made from (default: the one recorded by curate in run.json)",
        ),
        out: Path = typer.Option(Path("audit.json"), "--out", help="where to write the audit (JSON)"),
        n_boot: int = typer.Option(1000, help="bootstrap resamples for the intervals"),
        seed: int = typer.Option(0),
    ) -> None:
        """What share of documents mentioning each identity group (or in AAE style) each strategy removes,
        against the corpus-wide removal rate: disparity ratios with 95% bootstrap intervals."""
        check_out_path(out, "file")
        from dynacure.audit.run import (
            audit_manifest,
            corpus_of,
            find_manifests,
            no_groups_message,
            ratios_matrix,
            text_field_of,
        )
        from dynacure.io.atomic import write_json_atomic
        from dynacure.io.quarantine import Quarantine
        from dynacure.io.readers import read_documents, text_field_default

        manifests = find_manifests(paths)
        texts_cache: dict[Path, pd.Series] = {}
        results = {}
        for label, mpath in manifests.items():
            src = corpus or corpus_of(mpath)
            if src is None:
                raise ValueError(f"{mpath}: no corpus recorded next to it; pass --corpus")
            if src not in texts_cache:
                # the texts as curate read them: its --text-field, else each file's own text field; the
                # records curate quarantined are quarantined in the manifest too (said there, not again)
                with text_field_default(text_field_of(mpath), auto=True):
                    docs = read_documents(src, quarantine=Quarantine())
                    texts_cache[src] = pd.Series({d.id: d.text for d in docs})
            manifest = pd.read_parquet(mpath)
            results[label] = audit_manifest(manifest, texts_cache[src], n_boot=n_boot, seed=seed)
        write_json_atomic(out, {"manifests": {k: str(v) for k, v in manifests.items()}, "results": results})
        empty = no_groups_message(results)
        if empty is not None:  # a table of no groups would be a one-column strip
            console.print(f"{empty}; overall removal rate: "
                          + ", ".join(f"{k} {r['overall_removal_rate']:.1%}" for k, r in results.items()),
                          soft_wrap=True)
            console.print(f"audit written to {out}")
            return
        mat = ratios_matrix(results)
        table = Table(
            title="Removal disparity (group removal rate / overall removal rate; >1 = over-removed)"
        )
        table.add_column("group")
        for col in mat.columns:
            table.add_column(str(col), justify="right")
        for group, row in mat.iterrows():
            table.add_row(str(group), *[f"{v:.2f}" if pd.notna(v) else "-" for v in row])
        console.print(table)
        for label, res in results.items():
            if res["over_removed"]:
                console.print(
                    f"[bold]{label}[/]: over-removes (interval above 1): {', '.join(res['over_removed'])}"
                )
        console.print(f"audit written to {out}")
