"""The base learner: a TinyGPT pre-trained once on clean general text, cached by its config, and fine-tuned
by every experiment cell (``learner.base = "pretrained"``), as the seeds' setting has it: an existing
foundation model fine-tuned on curated data.

Pre-training text is ``io.pool.pretraining_documents``: the halves of WikiText-2 and PTB *train* that the
pool does not contain (whole WikiText articles and PTB line blocks, split by a stable hash), cut into
pieces of at most ``piece_words`` words. Pre-training packs the pieces into full context blocks
(``BaseConfig.pack``, the same path as every other training run, ``learners.training``). The BPE tokenizer is
trained on the same text; every cell of an experiment on the base uses it, so token figures compare.

Choices are made on WikiText-2 *valid* only: the curve in ``base.json`` is its word perplexity (the first
``eval_words`` words) against tokens and seconds of training. WikiText-2 and PTB *test* word perplexity are
measured once at the end and reported, never used to choose anything.

Cache: ``$DYNACURE_HOME/base/<key>/`` (default ``~/.cache/dynacure/base``), where ``key`` is a digest of the
config and of the data files read. The folder holds the saved learner (``learner.json``,
``model.safetensors``, ``tokenizer.json``, ...), ``base.json`` (config, data digests, curve, test figures,
versions) written last, and while training ``checkpoint/``, from which an interrupted build resumes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from dynacure.config import StrictModel, dynacure_home
from dynacure.io.atomic import write_json_atomic, write_text_atomic
from dynacure.io.jsonfile import read_versioned
from dynacure.runinfo import command_line

log = logging.getLogger(__name__)

BASE_FORMAT_VERSION = 1
BASE_FILE = "base.json"


class BaseConfig(StrictModel):
    """What the base learner is: its size, how long it pre-trains, on what, with which seed."""

    preset: str = "base"  # a TinyGPT preset (learners/presets.py)
    overrides: dict[str, Any] = Field(default_factory=dict)  # preset fields changed (d_model, lr, ...)
    # 5M: the 8M-token build's WikiText-2 valid word perplexity was lowest at 5M tokens (738) and rose to 929
    # by 8M while the training loss kept falling (docs/results/README.md, "The pre-trained base")
    max_tokens: int = Field(5_000_000, ge=1_000)  # pre-training tokens
    # the saved base is the curve point of lowest valid word perplexity, not the last step (early stopping
    # chosen on WikiText-2 valid, never on test)
    keep_best: bool = True
    seed: int = 0
    piece_words: int = Field(80, ge=8)  # pre-training texts are cut into pieces of at most this many words
    tokenizer_docs: int = Field(20_000, ge=100)  # pieces the tokenizer is trained on
    eval_words: int = Field(20_000, ge=100)  # WikiText-2 valid words of the curve
    eval_every: int = Field(250, ge=1)  # steps between curve points (and checkpoints)
    test_words: int | None = Field(None, ge=100)  # words of each test set in the final figures (None: all)
    # pieces packed into full context blocks (learners.training.PackedPlan): one padded row per piece, 70% of
    # the positions run were real tokens (benchmarks/packing.py). Part of the cache key: a packed base is
    # another base.
    pack: bool = True


def base_root() -> Path:
    """``$DYNACURE_HOME/base`` (default ``~/.cache/dynacure/base``)."""
    return dynacure_home() / "base"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_files(data_dir: str | Path | None) -> dict[str, Path]:
    """The public files the base is pre-trained on and evaluated with."""
    from dynacure.io.public_data import default_data_dir

    root = Path(data_dir) if data_dir is not None else default_data_dir()
    files = {
        "wikitext2_train": root / "wikitext-2" / "wiki.train.tokens.gz",
        "wikitext2_valid": root / "wikitext-2" / "wiki.valid.tokens.gz",
        "ptb_train": root / "ptb" / "ptb.train.txt.gz",
    }
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"pre-training data not found: {', '.join(missing)} (set --data-dir or DYNACURE_DATA to the "
            f"public data folder; `{command_line('data', 'check', root)}` lists what is there)"
        )
    return files


def base_key(cfg: BaseConfig, digests: dict[str, str]) -> str:
    """The cache key: config + data digests + format version (a change in any gives another base)."""
    blob = json.dumps({"config": cfg.model_dump(), "data": digests, "format": BASE_FORMAT_VERSION},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _locate(cfg: BaseConfig, data_dir: str | Path | None,
            root: str | Path | None) -> tuple[dict[str, Path], dict[str, str], Path]:
    """The data files read, their digests, and the folder of the base they and ``cfg`` make."""
    files = data_files(data_dir)
    digests = {k: _file_digest(p) for k, p in files.items()}
    return files, digests, (Path(root) if root is not None else base_root()) / base_key(cfg, digests)


def base_dir(cfg: BaseConfig, data_dir: str | Path | None = None, root: str | Path | None = None) -> Path:
    return _locate(cfg, data_dir, root)[2]


def pretraining_texts(data_dir: str | Path | None, piece_words: int) -> list[str]:
    """The pre-training documents cut into consecutive pieces of at most ``piece_words`` words, in a
    fixed order (training shuffles them with its seed)."""
    return list(_pieces(str(data_dir) if data_dir is not None else None, piece_words))


@functools.lru_cache(maxsize=2)
def _pieces(data_dir: str | None, piece_words: int) -> tuple[str, ...]:
    from dynacure.io.pool import pretraining_documents

    pieces: list[str] = []
    for doc in pretraining_documents(data_dir):
        words = doc.text.split()
        pieces.extend(" ".join(words[i:i + piece_words]) for i in range(0, len(words), piece_words))
    return tuple(pieces)


def word_perplexity(learner: Any, words: list[str]) -> float:
    """Word perplexity of consecutive ``words`` (windows of the learner's context, each after the
    previous one as context), the way the perplexity suite measures it."""
    from dynacure.evaluation.perplexity import learner_context, make_windows, score_windows, token_counter

    ctx = learner_context(learner) or 64
    lp, _ = score_windows(learner, make_windows(words, token_counter(learner)(words), ctx - 1))
    return float(math.exp(-lp.sum() / max(len(words), 1)))


def read_base(folder: str | Path) -> dict[str, Any]:
    """``base.json`` of a built base, checked; a folder without it is not (yet) a base."""
    path = Path(folder) / BASE_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no pre-trained base here (build it with `dynacure pretrain`)")
    return read_versioned(path, BASE_FORMAT_VERSION, hint="rebuild with `dynacure pretrain`")


def find_base(cfg: BaseConfig, data_dir: str | Path | None = None, root: str | Path | None = None) -> Path:
    """The folder of the built base for ``cfg``; a clear error saying how to build it when absent."""
    folder = base_dir(cfg, data_dir, root)
    if not (folder / BASE_FILE).exists():
        from dynacure.io.public_data import default_data_dir

        # absolute paths: the command works pasted in any folder (issue 28, item 4)
        data = Path(data_dir) if data_dir is not None else default_data_dir()
        cmd = command_line("pretrain", "--data-dir", data, "--preset", cfg.preset, "--tokens",
                           str(cfg.max_tokens), "--seed", str(cfg.seed), "--out", folder.parent)
        plain = BaseConfig(preset=cfg.preset, max_tokens=cfg.max_tokens, seed=cfg.seed)
        how = (f"run `{cmd}`" if plain == cfg else "run the experiment that names it (its base settings "
               f"{cfg.model_dump()} are more than `dynacure pretrain` takes)")
        raise FileNotFoundError(f"{folder}: the pre-trained base for this config is not built; {how}, or "
                                "set learner.base = \"scratch\"")
    read_base(folder)
    return folder


def _choose_best(learner: Any, curve: list[dict[str, Any]], folder: Path) -> int | None:
    """Load the weights of the curve point of lowest valid word perplexity; returns its step."""
    marked = [p for p in curve if p.get("best")]
    if not marked or not (folder / "best" / "learner.json").exists():
        return None
    best = min(marked, key=lambda p: p["valid_word_ppl"])
    last = curve[-1]
    if best["step"] == last["step"]:
        return int(last["step"])
    learner.restore(folder / "best")
    log.info("base: keeping step %d (valid word ppl %.1f) over the last step %d (%.1f)", best["step"],
             best["valid_word_ppl"], last["step"], last["valid_word_ppl"])
    return int(best["step"])


def build_base(
    cfg: BaseConfig,
    data_dir: str | Path | None = None,
    root: str | Path | None = None,
    progress: bool = True,
    device: str | None = None,
    on_point: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Pre-train the base (or resume an interrupted build); returns its folder. A built base is reused."""
    import torch

    from dynacure.io import public_data
    from dynacure.learners.presets import get_preset
    from dynacure.learners.tiny_gpt import TinyGPT
    from dynacure.learners.tokenizer import BPETokenizer
    from dynacure.learners.training import train
    from dynacure.runinfo import versions

    files, digests, folder = _locate(cfg, data_dir, root)
    if (folder / BASE_FILE).exists():
        read_base(folder)
        log.info("base already built: %s", folder)
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "config.json", {"format_version": BASE_FORMAT_VERSION,
                                               "config": cfg.model_dump(), "data": digests})
    texts = pretraining_texts(data_dir, cfg.piece_words)
    config = get_preset(cfg.preset, **cfg.overrides)
    tok_path = folder / "tokenizer.json"
    if tok_path.exists():
        tokenizer = BPETokenizer.from_file(tok_path)
    else:
        rng = np.random.default_rng(cfg.seed)
        pick = rng.choice(len(texts), size=min(cfg.tokenizer_docs, len(texts)), replace=False)
        tokenizer = BPETokenizer.train([texts[i] for i in np.sort(pick)], vocab_size=config.vocab_size)
        write_text_atomic(tok_path, tokenizer.to_json())
    learner = TinyGPT(config, tokenizer, seed=cfg.seed, device=device)
    valid = [w for line in public_data.wikitext2("valid", data_dir) if line.strip() for w in line.split()]
    valid = valid[: cfg.eval_words]

    curve_path = folder / "curve.json"
    curve: list[dict[str, Any]] = (json.loads(curve_path.read_text())["points"]
                                   if curve_path.exists() else [])

    def point(steps: int, tlog: Any) -> None:
        with torch.no_grad():
            ppl = word_perplexity(learner, valid)
        row = {"step": steps, "tokens": int(tlog.tokens_seen), "seconds": round(float(tlog.seconds), 1),
               "train_loss": float(np.mean(tlog.losses[-50:])) if tlog.losses else math.nan,
               "valid_word_ppl": ppl}
        best = min((p["valid_word_ppl"] for p in curve if p["step"] < steps), default=math.inf)
        curve[:] = [p for p in curve if p["step"] < steps] + [row]  # idempotent when a step is redone
        if cfg.keep_best and ppl < best:
            learner.save(folder / "best")  # before the curve names it: a crash leaves an older best in force
            row["best"] = True
        write_json_atomic(curve_path, {"points": curve})
        log.info("base step %d: %d tokens, %.0fs, valid word ppl %.1f", steps, row["tokens"], row["seconds"],
                 ppl)
        if on_point is not None:
            on_point(row)

    t0 = time.perf_counter()
    tlog = train(learner, texts, max_tokens=cfg.max_tokens, seed=cfg.seed, pack=cfg.pack, progress=progress,
                 checkpoint_dir=folder / "checkpoint", checkpoint_every=cfg.eval_every,
                 callback=point, callback_every=cfg.eval_every)
    chosen = _choose_best(learner, curve, folder) if cfg.keep_best else None
    learner.save(folder)
    shutil.rmtree(folder / "best", ignore_errors=True)
    from dynacure.evaluation.perplexity import PerplexitySuite

    test = PerplexitySuite(corpora=["wikitext2", "ptb"], data_dir=str(data_dir) if data_dir else None,
                           max_tokens=cfg.test_words)
    res = test.run(learner, seed=cfg.seed)
    figures = {k: v.to_dict() for k, v in res.metrics.items()}
    info = {
        "format_version": BASE_FORMAT_VERSION,
        "config": cfg.model_dump(),
        "learner_config": config.model_dump(),
        "data": {k: {"path": str(p), "sha256": digests[k]} for k, p in files.items()},
        "n_texts": len(texts),
        "n_words": int(sum(len(t.split()) for t in texts)),
        "n_parameters": learner.num_parameters(),
        "tokens_seen": int(tlog.tokens_seen),
        "train_seconds": float(tlog.seconds),
        "wall_seconds_this_run": time.perf_counter() - t0,
        "curve": curve,
        "chosen_step": chosen,  # the curve step whose weights the base holds (keep_best), None: the last
        "test": figures,
        "versions": versions(),
        "seed": cfg.seed,
    }
    write_json_atomic(folder / BASE_FILE, info)  # last: a folder with base.json is a whole base
    shutil.rmtree(folder / "checkpoint", ignore_errors=True)
    return folder
