"""`dynacure train CURATED --out MODEL_DIR`: train a learner on a curated corpus.

With ``--manifest`` (the decision manifest written by ``dynacure curate``: id, decision, probability,
weight), only documents marked ``keep`` are used and each carries its manifest weight as loss weight.
The small GPT is the default (its tokenizer is trained on the curated texts); ``--hf-model`` trains a
local Hugging Face model instead. Progress is checkpointed under ``MODEL_DIR/checkpoint`` so an
interrupted run resumes where it stopped; the final model, ``run.json`` and ``train_log.json`` are
written to ``MODEL_DIR``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from dynacure.cli.errors import cli_errors
from dynacure.cli.paths import check_out_path

log = logging.getLogger(__name__)

# The tokenizer is trained on at most this many documents (spread over the corpus): enough for a
# 4-8k vocabulary, and bounded time on large corpora.
_TOKENIZER_DOCS = 20000


def _read_manifest(path: Path) -> dict[str, float]:
    """id -> weight of the kept documents of a decision manifest."""
    import pandas as pd

    if not path.exists():
        raise FileNotFoundError(f"{path}: manifest not found")
    try:
        table = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise ValueError(f"{path}: cannot read as Parquet: {exc}") from None
    missing = [c for c in ("id", "decision", "weight") if c not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: manifest lacks column(s) {missing} (needs id, decision, probability, weight)"
        )
    bad = ~table["decision"].isin(["keep", "drop"])
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise ValueError(
            f"{path}: row {row}: decision {table['decision'].iloc[row]!r} is not 'keep' or 'drop'"
        )
    kept = table[table["decision"] == "keep"]
    weights = kept["weight"].astype(float)
    if weights.isna().any() or (weights < 0).any():
        row = int(((weights < 0) | weights.isna()).to_numpy().nonzero()[0][0])
        raise ValueError(f"{path}: kept row {row}: weight must be a number >= 0")
    return dict(zip(kept["id"].astype(str), weights, strict=True))


def register(app: typer.Typer) -> None:
    @app.command("train")
    @cli_errors
    def train_cmd(
        curated: Path = typer.Argument(..., help="Curated corpus: a file or a corpus folder."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder for the trained model."),
        preset: str = typer.Option("tiny", help="Small-GPT size: nano, tiny or small."),
        max_tokens: int | None = typer.Option(
            None, "--max-tokens", help="Token budget (learner tokens); overrides --epochs."
        ),
        epochs: int = typer.Option(1, help="Passes over the corpus when no --max-tokens is given."),
        seed: int = typer.Option(0, help="Seed for initialisation and batch order."),
        manifest: Path | None = typer.Option(
            None, help="Decision manifest (Parquet): train on kept docs, with their weights."
        ),
        batch_size: int | None = typer.Option(None, "--batch-size", help="Default: the preset's."),
        hf_model: Path | None = typer.Option(
            None, "--hf-model", help="Train this local Hugging Face model instead of the small GPT."
        ),
        device: str | None = typer.Option(None, help="cpu or cuda (default: cuda when available)."),
        checkpoint_every: int = typer.Option(200, "--checkpoint-every", help="Steps between checkpoints."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (stderr)."),
    ) -> None:
        """Train a learner on a curated corpus."""
        import numpy as np

        from dynacure.io.readers import read_documents
        from dynacure.learners.training import train
        from dynacure.runinfo import seed_everything, write_run_info

        check_out_path(out, "dir")
        if not curated.exists():
            raise FileNotFoundError(f"{curated}: curated corpus not found")
        seed_everything(seed)
        docs = list(read_documents(curated))
        weights = None
        if manifest is not None:
            keep = _read_manifest(manifest)
            n_before = len(docs)
            docs = [d for d in docs if d.id in keep]
            unmatched = len(keep) - len({d.id for d in docs})
            if unmatched:
                log.warning("%d kept ids of %s are not in %s", unmatched, manifest, curated)
            weights = np.array([keep[d.id] for d in docs])
            log.info("manifest keeps %d of %d documents", len(docs), n_before)
        if not docs:
            raise ValueError(
                f"{curated}: no documents to train on" + (f" after applying {manifest}" if manifest else "")
            )
        texts = [d.text for d in docs]

        ckpt = out / "checkpoint"
        resuming = (ckpt / "latest").exists() or (ckpt / ".old-latest").exists()
        if hf_model is None and resuming:  # the checkpoint holds the tokenizer the run started with
            from dynacure.learners.tiny_gpt import TinyGPT

            latest = ckpt / "latest" if (ckpt / "latest").exists() else ckpt / ".old-latest"
            learner = TinyGPT.load(latest, device=device)
        else:
            from dynacure.learners.factory import LearnerSpec, build_learner

            step = max(1, len(texts) // _TOKENIZER_DOCS)
            learner = build_learner(LearnerSpec(preset=preset, hf_path=hf_model, device=device), seed,
                                    texts=texts[::step])
        tlog = train(
            learner,
            texts,
            weights=weights,
            max_tokens=max_tokens,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            progress=progress,
            checkpoint_dir=ckpt,
            checkpoint_every=checkpoint_every,
        )
        learner.save(out)
        tlog.save(out / "train_log.json")
        config = {
            "curated": str(curated),
            "preset": None if hf_model else preset,
            "hf_model": str(hf_model) if hf_model else None,
            "max_tokens": max_tokens,
            "epochs": epochs,
            "manifest": str(manifest) if manifest else None,
            "batch_size": batch_size,
            "device": learner.device,
        }
        write_run_info(
            out,
            "train",
            config,
            seed,
            extra={
                "n_documents": len(texts),
                "steps": tlog.steps,
                "tokens_seen": tlog.tokens_seen,
                "seconds": tlog.seconds,
                "final_loss": tlog.losses[-1] if tlog.losses else None,
            },
        )
        typer.echo(
            f"trained {tlog.steps} steps on {tlog.tokens_seen:,} tokens in {tlog.seconds:.0f}s; "
            f"model in {out}"
        )
