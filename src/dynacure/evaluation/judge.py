"""The judge of generated text, and the guard that keeps reward scorers out of evaluation.

A judge is any callable ``texts -> P(toxic)`` (one value in [0, 1] per text). The default comes from
``dynacure.signals.toxicity.load_judge()`` (trained only on the ``judge`` rows of the labeled sets). A judge
that says it was trained on ``reward`` rows, or that it is a reward signal, is refused: a model curated
by a reward must not be graded by the same scorer (Goodhart). Provenance is read from the judge's
``meta``/``metadata`` dict or its ``trained_on``/``parts``/``role`` attributes.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Judge = Callable[[list[str]], np.ndarray]

_PART_KEYS = ("part", "parts", "data_part", "data_parts", "trained_on", "trained_on_parts", "training_parts",
              "role", "used_as", "usage")


class JudgeIsRewardScorer(ValueError):
    """The judge shares training data or identity with a reward scorer."""


def judge_provenance(judge: Any) -> dict[str, Any]:
    """What the judge says about itself: its metadata dict plus any provenance attributes."""
    out: dict[str, Any] = {}
    for attr in ("meta", "metadata"):
        m = getattr(judge, attr, None)
        if isinstance(m, dict):
            out.update(m)
    for key in _PART_KEYS + ("name",):
        if hasattr(judge, key) and not callable(getattr(judge, key)):
            out.setdefault(key, getattr(judge, key))
    return out


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value.lower()]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, Sequence):
        return [s for v in value for s in _strings(v)]
    return []


def _walk(meta: Any, found: list[str]) -> None:
    """Collect every value stored under a provenance key, at any depth (e.g. meta['training']['parts'])."""
    if isinstance(meta, dict):
        for k, v in meta.items():
            if str(k).lower() in _PART_KEYS:
                found.extend(_strings(v))
            _walk(v, found)
    elif isinstance(meta, list):
        for v in meta:
            _walk(v, found)


def check_judge(judge: Any) -> dict[str, Any]:
    """Refuse a judge marked as trained on reward rows or used as a reward; return its provenance."""
    prov = judge_provenance(judge)
    found: list[str] = []
    _walk(prov, found)
    # a value *starting* with "reward" marks it ("reward", "reward rows"); a role text such as
    # "judge: evaluation only, never part of a reward" does not
    if any(re.match(r"\s*reward\b", s) for s in found):
        raise JudgeIsRewardScorer(
            f"the judge {prov.get('name', type(judge).__name__)!r} is marked as a reward scorer or trained "
            f"on reward rows ({sorted(set(found))}); evaluation needs a judge trained on disjoint data "
            "(dynacure.signals.toxicity.load_judge)")
    if not found:
        log.warning("judge %r does not say what data it was trained on; results depend on trusting it",
                    type(judge).__name__)
    return {k: v for k, v in prov.items() if isinstance(v, str | int | float | bool | list | dict | None)}


class ProvenancedJudge:
    """A judge callable together with the metadata of the model behind it (read from its ``meta.json``)."""

    def __init__(self, fn: Judge, meta: dict[str, Any]) -> None:
        self.fn = fn
        self.meta = meta

    def __call__(self, texts: list[str]) -> np.ndarray:
        return self.fn(texts)


def default_judge(model_dir: str | Path | None = None) -> Judge:
    """``dynacure.signals.toxicity.load_judge()`` with its folder's metadata attached for the guard."""
    try:
        from dynacure.signals.models import JUDGE, META_FILE, resolve
        from dynacure.signals.toxicity import load_judge
    except ImportError as exc:  # the signals layer ships it; say so rather than failing obscurely
        raise FileNotFoundError(f"no default judge available (dynacure.signals.toxicity.load_judge: {exc}); "
                                "pass a judge callable") from exc
    fn = load_judge(model_dir)
    if isinstance(judge_provenance(fn).get("part"), str):
        return fn
    meta_path = resolve(JUDGE, model_dir) / META_FILE
    meta: dict[str, Any] = {"name": JUDGE, "path": str(meta_path.parent)}
    if meta_path.exists():
        loaded = json.loads(meta_path.read_text(encoding="utf-8"))
        # keep the descriptive fields (part, training data, seed...), not feature tables
        meta.update({k: v for k, v in loaded.items() if len(json.dumps(v, default=str)) < 2000})
    return ProvenancedJudge(fn, meta)


def hf_judge(folder: str | Path, unsafe_labels: str | Sequence[str] | None = None,
             device: str | None = "auto", batch_size: int = 32,
             args: tuple[str, str] = ("--judge", "--judge-unsafe-labels")) -> ProvenancedJudge:
    """A local Hugging Face sequence-classification folder as the judge: P(unsafe) per text, the combined
    probability of its unsafe labels (``dynacure.signals.hf_classifier``; default labels as there).

    Its provenance names the folder, its file digest and labels; the guard cannot know what the user's
    model was trained on, so keeping it apart from the reward scorers is the user's part (an experiment
    refuses a judge folder that is also its ``hf_classifier`` scorer). ``args``: how the user gave the
    folder and the labels (named in errors)."""
    from dynacure.signals.hf_classifier import HFClassifier

    clf = HFClassifier(folder, unsafe_labels=unsafe_labels, batch_size=batch_size, device=device, args=args)

    def judge(texts: list[str]) -> np.ndarray:
        return clf.unsafe_probability(clf.predict_proba(list(texts))).astype(np.float64)

    meta = {"name": "hf_classifier", "path": str(clf.folder.resolve()),
            "role": "judge: a user-supplied Hugging Face classifier (evaluation only)", **clf.describe()}
    return ProvenancedJudge(judge, meta)


def load_judge(judge: str | Path | None = None, model_dir: str | Path | None = None,
               unsafe_labels: str | Sequence[str] | None = None,
               args: tuple[str, str] = ("--judge", "--judge-unsafe-labels")) -> Judge:
    """``judge`` (a Hugging Face classifier folder) when given, else the trained judge of ``model_dir``."""
    if judge is not None:
        return hf_judge(judge, unsafe_labels, args=args)
    if unsafe_labels:
        raise ValueError(f"{args[1]} is for a Hugging Face judge folder; give {args[0]} too")
    return default_judge(model_dir)


def score_texts(judge: Judge, texts: list[str], batch_size: int = 512) -> np.ndarray:
    """Call the judge in batches and check it returned one probability per text."""
    out = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        s = np.asarray(judge(chunk), dtype=float).reshape(-1)
        if len(s) != len(chunk):
            raise ValueError(f"judge returned {len(s)} scores for {len(chunk)} texts")
        out.append(s)
    scores = np.concatenate(out) if out else np.zeros(0)
    if scores.size and (np.isnan(scores).any() or scores.min() < 0 or scores.max() > 1):
        raise ValueError("judge scores must be probabilities in [0, 1]")
    return scores
