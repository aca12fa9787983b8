"""`dynacure train CURATED --out MODEL_DIR`: train a learner on a curated corpus.

With ``--manifest`` (the decision manifest written by ``dynacure curate``: id, decision, probability,
weight), only documents marked ``keep`` are used and each carries its manifest weight as loss weight;
without it, a document's ``meta["curate_weight"]`` (what ``dynacure curate`` writes for a weight other
than 1) is its loss weight. A fresh small GPT is the default (its tokenizer is trained on the curated
texts); ``--base`` fine-tunes a pre-trained base with the base's tokenizer, built the way an experiment
cell builds it (``experiments.runner.finetune_spec``: same seed use, lr, warm-up, token budget), so
``curate -> train --base -> evaluate`` gives the model a cell with ``learner.base = "pretrained"`` trains
(``--threads 1``, as cells train, for equal weights on a CPU); ``--hf-model`` trains a local Hugging Face
model. Progress is checkpointed under ``MODEL_DIR/checkpoint`` so an interrupted run resumes where it
stopped; the final model, ``run.json`` and ``train_log.json`` are written to ``MODEL_DIR``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer

from dynacure.cli.errors import cli_errors
from dynacure.cli.paths import OVERWRITE_HELP, check_out_path, claim_out_dir, make_request

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


def _training_docs(curated: Path, manifest: Path | None) -> tuple[list[str], Any]:
    """The texts to train on and their loss weights (None: all 1)."""
    import numpy as np

    from dynacure.io.readers import read_documents

    if not curated.exists():
        raise FileNotFoundError(f"{curated}: curated corpus not found")
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
    elif any("curate_weight" in d.meta for d in docs):  # curate's loss weights, as a cell trains with them
        weights = np.array([float(d.meta.get("curate_weight", 1.0)) for d in docs])
    if not docs:
        raise ValueError(
            f"{curated}: no documents to train on" + (f" after applying {manifest}" if manifest else "")
        )
    return [d.text for d in docs], weights


def base_folder(base: str, preset: str | None, data_dir: Path | None) -> Path:
    """The model folder ``--base`` names: a folder holding a saved TinyGPT, or ``pretrained``, the base that
    ``dynacure pretrain`` built in $DYNACURE_HOME (of ``--preset``, default ``base``)."""
    import json

    if base == "pretrained":
        from dynacure.learners.pretrain import BaseConfig, find_base

        return find_base(BaseConfig(preset=preset or "base"), data_dir)
    folder = Path(base)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: --base folder not found (a model folder, or 'pretrained' for the "
                                "base `dynacure pretrain` built)")
    meta = folder / "learner.json"
    if not folder.is_dir() or not meta.exists():
        building = (folder / "checkpoint").exists() and not (folder / "base.json").exists()
        raise ValueError(f"{folder}: not a model folder (no learner.json" + (
            "; a base still being built: finish it with `dynacure pretrain`)" if building else
            "; expected what `dynacure pretrain` or `dynacure train` writes)"))
    try:
        kind = json.loads(meta.read_text(encoding="utf-8")).get("kind")
    except json.JSONDecodeError as exc:
        raise ValueError(f"{meta}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if kind != "tiny_gpt":
        raise ValueError(f"{meta}: --base fine-tunes a small GPT, this is a {kind!r} learner"
                         + (" (use --hf-model for a Hugging Face model)" if kind == "hf" else ""))
    for name in ("model.safetensors", "tokenizer.json"):
        if not (folder / name).exists():
            raise ValueError(f"{folder}: not a whole model folder ({name} missing)")
    return folder


def _check_options(base: str | None, preset: str | None, hf_model: Path | None, lr: float | None,
                   warmup_steps: int | None) -> None:
    if base is not None and hf_model is not None:
        raise ValueError("--base and --hf-model both given: pass one (a Hugging Face model is already "
                         "pre-trained)")
    if base not in (None, "pretrained") and preset is not None:
        raise ValueError(f"--preset {preset} with --base {base}: the base's size is fixed by the base "
                         "(--preset picks a fresh learner's size, or which base --base pretrained means)")
    if hf_model is not None and (lr is not None or warmup_steps is not None):
        raise ValueError("--lr and --warmup-steps set the small GPT's optimiser, not --hf-model's")
    if lr is not None and lr <= 0:
        raise ValueError(f"--lr must be > 0, got {lr}")
    if warmup_steps is not None and warmup_steps < 0:
        raise ValueError(f"--warmup-steps must be >= 0, got {warmup_steps}")


def register(app: typer.Typer) -> None:
    @app.command("train")
    @cli_errors
    def train_cmd(
        curated: Path = typer.Argument(..., help="Curated corpus: a file or a corpus folder."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder for the trained model."),
        preset: str | None = typer.Option(
            None, help="Small-GPT size: nano, tiny (default) or small; with --base pretrained, the base's "
                       "preset (default base)."),
        base: str | None = typer.Option(
            None, "--base", help="Fine-tune a pre-trained base, with its tokenizer: a model folder (what "
                                 "`dynacure pretrain` writes) or 'pretrained' (the base in $DYNACURE_HOME)."),
        data_dir: Path | None = typer.Option(
            None, "--data-dir", help="With --base pretrained: the public data folder it was built from."),
        max_tokens: int | None = typer.Option(
            None, "--max-tokens", help="Token budget (learner tokens); overrides --epochs."
        ),
        epochs: int = typer.Option(1, help="Passes over the corpus when no --max-tokens is given."),
        seed: int = typer.Option(0, help="Seed for initialisation and batch order."),
        manifest: Path | None = typer.Option(
            None, help="Decision manifest (Parquet): train on kept docs, with their weights."
        ),
        batch_size: int | None = typer.Option(None, "--batch-size", help="Default: the preset's."),
        lr: float | None = typer.Option(None, "--lr", help="Peak learning rate (default: the preset's)."),
        warmup_steps: int | None = typer.Option(
            None, "--warmup-steps", help="LR warm-up steps (default: the preset's; 10 with --base, as cells)."
        ),
        hf_model: Path | None = typer.Option(
            None, "--hf-model", help="Train this local Hugging Face model instead of the small GPT."
        ),
        device: str | None = typer.Option(None, help="cpu or cuda (default: cuda when available)."),
        threads: int = typer.Option(
            0, "--threads", help="torch CPU threads (0: torch's default; experiment cells train with 1)."),
        checkpoint_every: int = typer.Option(200, "--checkpoint-every", help="Steps between checkpoints."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (stderr)."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    ) -> None:
        """Train a learner on a curated corpus, or fine-tune a pre-trained base on it (--base)."""
        import torch

        from dynacure.learners.training import train
        from dynacure.runinfo import seed_everything, write_run_info

        check_out_path(out, "dir")
        _check_options(base, preset, hf_model, lr, warmup_steps)
        if threads < 0:
            raise ValueError(f"--threads must be >= 0, got {threads}")
        folder = base_folder(base, preset, data_dir) if base is not None else None
        # another run's model in OUT is refused before any work; the same run resumes its checkpoint
        claim = claim_out_dir(out, "train", make_request(
            {"curated": curated, "manifest": manifest, "base": folder, "hf_model": hf_model},
            preset=preset, max_tokens=max_tokens, epochs=epochs, seed=seed, batch_size=batch_size, lr=lr,
            warmup_steps=warmup_steps), overwrite=overwrite)
        seed_everything(seed)
        texts, weights = _training_docs(curated, manifest)
        before = torch.get_num_threads()
        if threads:  # restored after: an in-process caller (a test, a notebook) keeps its own setting
            torch.set_num_threads(threads)
        try:
            learner = _make_learner(out / "checkpoint", texts, seed, preset, folder, hf_model, device,
                                    batch_size, lr, warmup_steps)
            tlog = train(learner, texts, weights=weights, max_tokens=max_tokens, epochs=epochs,
                         batch_size=batch_size, seed=seed, progress=progress,
                         checkpoint_dir=out / "checkpoint", checkpoint_every=checkpoint_every)
        finally:
            torch.set_num_threads(before)
        learner.save(out)
        tlog.save(out / "train_log.json")
        config = {
            "curated": str(curated),
            "preset": None if (hf_model or folder) else (preset or "tiny"),
            "base": str(folder) if folder else None,
            "hf_model": str(hf_model) if hf_model else None,
            "max_tokens": max_tokens,
            "epochs": epochs,
            "manifest": str(manifest) if manifest else None,
            "batch_size": batch_size,
            "lr": lr,
            "warmup_steps": warmup_steps,
            "threads": threads or before,
            "device": learner.device,
        }
        extra: dict[str, Any] = {
            "n_documents": len(texts),
            "steps": tlog.steps,
            "tokens_seen": tlog.tokens_seen,
            "seconds": tlog.seconds,
            "final_loss": tlog.losses[-1] if tlog.losses else None,
        }
        if folder is not None:
            from dynacure.experiments.runner import model_digest

            extra["base_digest"] = model_digest(folder)  # a rebuilt base gives another digest
        # input paths absolute and relative to OUT: the model folder reads from anywhere (runinfo)
        write_run_info(out, "train", config, seed, extra=extra,
                       paths=("curated", "base", "hf_model", "manifest"))
        claim.finish()
        done = tlog.resumed_from_step
        resumed = (f"resumed from step {done} of {tlog.planned_steps}; " if done else "")
        now = f" ({tlog.steps - done} in this run)" if done else ""
        typer.echo(
            f"{resumed}trained {tlog.steps} steps{now} on {tlog.tokens_seen:,} tokens in "
            f"{tlog.seconds:.0f}s; model in {out}"
        )


def _make_learner(ckpt: Path, texts: list[str], seed: int, preset: str | None, base: Path | None,
                  hf_model: Path | None, device: str | None, batch_size: int | None, lr: float | None,
                  warmup_steps: int | None) -> Any:
    """The learner to train: the checkpoint's when a small-GPT run resumes (it holds the tokenizer and
    settings the run started with), else a fresh one built as an experiment cell builds it."""
    from dynacure.experiments.runner import finetune_spec, learner_overrides
    from dynacure.learners.factory import LearnerSpec, build_learner

    resuming = (ckpt / "latest").exists() or (ckpt / ".old-latest").exists()
    if hf_model is None and resuming:
        from dynacure.learners.tiny_gpt import TinyGPT

        return TinyGPT.load(ckpt / "latest" if (ckpt / "latest").exists() else ckpt / ".old-latest",
                            device=device)
    if base is not None:
        return build_learner(finetune_spec(base, device, batch_size, lr, warmup_steps), seed)
    overrides = learner_overrides(None, lr, warmup_steps, fine_tune=False)
    step = max(1, len(texts) // _TOKENIZER_DOCS)
    spec = LearnerSpec(preset=preset or "tiny", hf_path=hf_model, device=device, overrides=overrides)
    return build_learner(spec, seed, texts=texts[::step])
