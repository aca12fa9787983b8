"""`dynacure pretrain`: build (or resume building) the pre-trained base learner that experiment cells
fine-tune (``learner.base = "pretrained"``), cached under ``$DYNACURE_HOME/base/<key>``."""

from __future__ import annotations

from pathlib import Path

import typer

from dynacure.cli.errors import cli_errors
from dynacure.cli.paths import OVERWRITE_HELP


def register(app: typer.Typer) -> None:
    @app.command("pretrain")
    @cli_errors
    def pretrain_cmd(
        data_dir: Path = typer.Option(None, "--data-dir", help="Public data folder (default: $DYNACURE_DATA "
                                      "or ../shared/data); WikiText-2 and PTB are read."),
        tokens: int = typer.Option(None, "--tokens", help="Pre-training tokens (default 5M)."),
        preset: str = typer.Option("base", "--preset", help="TinyGPT size preset of the base."),
        seed: int = typer.Option(0, "--seed"),
        device: str = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda when there)."),
        threads: int = typer.Option(0, "--threads", help="torch CPU threads (0: torch's default)."),
        root: Path = typer.Option(
            None, "--out", "--root", help="Cache of bases (default: $DYNACURE_HOME/base)."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    ) -> None:
        """Pre-train the base learner on the halves of WikiText-2/PTB train that are not in the pool."""
        from dynacure.cli.paths import claim_out_dir, make_request
        from dynacure.learners.pretrain import BaseConfig, base_dir, base_root, build_base, read_base

        # Each config builds its own base/<key> (never another's), so the cache needs only to be no other
        # command's output folder; the same config resumes or reuses its base.
        claim_out_dir(root if root is not None else base_root(), "pretrain", make_request(),
                      overwrite=overwrite)
        import torch

        from dynacure.cli.console import make_console

        if threads:
            torch.set_num_threads(threads)
        cfg = BaseConfig(preset=preset, seed=seed, **({"max_tokens": tokens} if tokens else {}))
        console = make_console(stderr=True)
        folder = base_dir(cfg, data_dir, root)
        state = "reusing" if (folder / "base.json").exists() else (
            "resuming" if (folder / "checkpoint").exists() else "building")
        console.print(f"{state} the base learner in [bold]{folder}[/]")

        def on_point(row: dict) -> None:
            console.print(f"step {row['step']}: {row['tokens']:,} tokens, {row['seconds']:.0f}s, "
                          f"WikiText-2 valid word perplexity {row['valid_word_ppl']:.1f}")

        folder = build_base(cfg, data_dir, root, progress=True, device=device, on_point=on_point)
        info = read_base(folder)
        test = info["test"]
        for name in ("wikitext2", "ptb"):
            est = test.get(f"{name}_word_ppl")
            if est:
                console.print(f"{name} test word perplexity {est['value']:.1f} "
                              f"[{est['low']:.1f}, {est['high']:.1f}]")
        console.print(f"{info['n_parameters']:,} parameters, {info['tokens_seen']:,} tokens, "
                      f"{info['train_seconds'] / 60:.1f} min of training")
        typer.echo(str(folder))
