"""Safety signals: the shipped profanity classifier and our own toxicity classifiers, plus the judge.

- ``profanity``: alt-profanity-check's shipped linear SVM (``predict_prob``), column ``toxicity``.
- ``toxicity_ngram``: hashed word 1-2 / char 3-5 gram logistic models, one per category
  (toxicity, insult, identity_hate, threat), trained only on ``reward`` rows.
- ``toxicity_minilm``: a logistic head on MiniLM sentence embeddings, same categories, ``reward`` rows.
- ``load_judge``: P(toxic) from a model trained only on ``judge`` rows, for evaluating generated text;
  no reward ever uses it.

Models are folders of safetensors weights + JSON metadata (``dynacure.signals.models``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dynacure.signals.base import Resources, Signal, register_signal
from dynacure.signals.hashing import HashingParams, NgramFeaturizer
from dynacure.signals.models import (
    JUDGE,
    TOXICITY_MINILM,
    TOXICITY_NGRAM,
    ModelMissingError,
    SavedModel,
    load_model,
    resolve,
    save_model,
)
from dynacure.signals.training import CATEGORIES

log = logging.getLogger(__name__)

NGRAM_KIND = "ngram_linear"
MINILM_KIND = "minilm_head"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


# --- model classes ---------------------------------------------------------------------------------

class NgramModel:
    """Per-category logistic models over hashed n-gram features."""

    def __init__(self, featurizer: NgramFeaturizer, weights: np.ndarray, bias: np.ndarray,
                 categories: list[str], meta: dict[str, Any] | None = None) -> None:
        if weights.shape != (len(categories), featurizer.n_features):
            raise ValueError(f"weights of shape {weights.shape} do not match {len(categories)} categories x "
                             f"{featurizer.n_features} features")
        self.featurizer = featurizer
        self.weights = weights.astype(np.float32)
        self.bias = bias.astype(np.float32)
        self.categories = list(categories)
        self.meta = dict(meta or {})

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """[n, k] probabilities, one column per category."""
        if not texts:
            return np.zeros((0, len(self.categories)), dtype=np.float32)
        x = self.featurizer.transform(texts)
        return _sigmoid(np.asarray(x @ self.weights.T) + self.bias).astype(np.float32)

    def save(self, folder: str | Path) -> Path:
        meta = dict(self.meta)
        meta.update(categories=self.categories, hashing=self.featurizer.to_meta())
        return save_model(folder, SavedModel(NGRAM_KIND, {"weights": self.weights, "bias": self.bias}, meta))

    @classmethod
    def load(cls, folder: str | Path, which: str = TOXICITY_NGRAM) -> NgramModel:
        saved = load_model(folder, NGRAM_KIND, which=which)
        feat = NgramFeaturizer.from_meta(saved.meta["hashing"])
        return cls(feat, saved.arrays["weights"], saved.arrays["bias"], saved.meta["categories"], saved.meta)


class MiniLMHead:
    """Per-category logistic heads on 384-d MiniLM embeddings (standardised with saved mean/scale)."""

    def __init__(self, weights: np.ndarray, bias: np.ndarray, mean: np.ndarray, scale: np.ndarray,
                 categories: list[str], meta: dict[str, Any] | None = None,
                 cache_dir: str | Path | None = None) -> None:
        self.weights, self.bias = weights.astype(np.float32), bias.astype(np.float32)
        self.mean, self.scale = mean.astype(np.float32), scale.astype(np.float32)
        self.categories = list(categories)
        self.meta = dict(meta or {})
        self.cache_dir = cache_dir
        self._embedder: Any = None

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._embedder is None:
            from dynacure.signals.embedding import Embedder

            self._embedder = Embedder(cache_dir=self.cache_dir)
        return self._embedder.embed(texts)

    def predict_from_embeddings(self, emb: np.ndarray) -> np.ndarray:
        z = ((emb - self.mean) / self.scale) @ self.weights.T + self.bias
        return _sigmoid(z).astype(np.float32)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(self.categories)), dtype=np.float32)
        return self.predict_from_embeddings(self.embed(texts))

    def save(self, folder: str | Path) -> Path:
        meta = dict(self.meta)
        meta.update(categories=self.categories, embedding_model="all-MiniLM-L6-v2")
        arrays = {"weights": self.weights, "bias": self.bias, "mean": self.mean, "scale": self.scale}
        return save_model(folder, SavedModel(MINILM_KIND, arrays, meta))

    @classmethod
    def load(cls, folder: str | Path, which: str = TOXICITY_MINILM) -> MiniLMHead:
        folder = Path(folder)
        saved = load_model(folder, MINILM_KIND, which=which)
        a = saved.arrays
        return cls(a["weights"], a["bias"], a["mean"], a["scale"], saved.meta["categories"], saved.meta,
                   cache_dir=folder.parent / "embed_cache")


# --- training --------------------------------------------------------------------------------------

def train_ngram(part: str, data_dir: str | Path | None = None, seed: int = 0, c: float = 8.0,
                params: HashingParams | None = None, evaluate: bool = True,
                categories: tuple[str, ...] = CATEGORIES) -> NgramModel:
    """Train the n-gram model on one ``part`` of the public toxicity sets (reward or judge)."""
    from dynacure.signals import training

    frame = training.toxicity_frame(part, data_dir)
    feat = NgramFeaturizer(params)
    x = feat.transform(list(frame["text"]))
    w, b, cats, counts = training.fit_categories(x, frame, c=c, seed=seed, categories=categories)
    meta: dict[str, Any] = {
        "seed": seed, "C": c, "part": part, "label_counts": counts,
        "training_data": (f"dynacure.io.public_data rows with part=={part!r}: TweetEval offensive+hate "
                          "train, Davidson, Jigsaw train pools; each source weighted to equal total mass"),
        "datasets": frame.groupby("dataset").size().to_dict(),
    }
    model = NgramModel(feat, w, b, cats, meta)
    if evaluate:
        model.meta["heldout"] = training.evaluate_toxicity(lambda t: model.predict_proba(t)[:, 0], data_dir)
    return model


def minilm_rows(part: str, data_dir: str | Path | None, per_dataset: int, seed: int) -> Any:
    """A modest, seeded sample of one part (at most ``per_dataset`` rows per source): MiniLM is slow."""
    import pandas as pd

    from dynacure.signals import training

    frame = training.toxicity_frame(part, data_dir)
    groups = [g.sample(min(len(g), per_dataset), random_state=seed)
              for _, g in frame.groupby("dataset", sort=True)]
    return pd.concat(groups, ignore_index=True)


def train_minilm(part: str, data_dir: str | Path | None = None, seed: int = 0, c: float = 1.0,
                 per_dataset: int = 1000, cache_dir: str | Path | None = None,
                 evaluate: bool = True) -> MiniLMHead:
    """Train logistic heads on MiniLM embeddings of a sample of one part."""
    from dynacure.signals import training

    frame = minilm_rows(part, data_dir, per_dataset, seed)
    head = MiniLMHead(np.zeros((0, 384)), np.zeros(0), np.zeros(384), np.ones(384), [], cache_dir=cache_dir)
    emb = head.embed(list(frame["text"]))
    mean, scale = emb.mean(axis=0), emb.std(axis=0) + 1e-6
    w, b, cats, counts = training.fit_categories((emb - mean) / scale, frame, c=c, seed=seed)
    meta = {
        "seed": seed, "C": c, "part": part, "label_counts": counts, "per_dataset": per_dataset,
        "training_data": (f"seeded sample (<= {per_dataset} per source) of public_data rows with "
                          f"part=={part!r}: TweetEval offensive+hate train, Davidson, Jigsaw train pools"),
        "datasets": frame.groupby("dataset").size().to_dict(),
    }
    model = MiniLMHead(w, b, mean, scale, cats, meta, cache_dir=cache_dir)
    if evaluate:
        model.meta["heldout"] = training.evaluate_toxicity(lambda t: model.predict_proba(t)[:, 0], data_dir)
    return model


def _data_available(data_dir: str | Path | None) -> bool:
    from dynacure.io.public_data import default_data_dir

    base = Path(data_dir) if data_dir is not None else default_data_dir()
    return (base / "tweeteval-offensive-hate").exists() and (base / "davidson-hate-offensive").exists()


def load_or_train_ngram(model_dir: str | Path | None = None, data_dir: str | Path | None = None,
                        seed: int = 0) -> NgramModel:
    """The reward n-gram model; trained on the fly (seconds) and saved when missing and data is there."""
    folder = resolve(TOXICITY_NGRAM, model_dir)
    try:
        return NgramModel.load(folder)
    except ModelMissingError:
        if not _data_available(data_dir):
            raise
    log.warning("%s missing: training the reward n-gram model on the fly (no held-out evaluation)", folder)
    model = train_ngram("reward", data_dir, seed=seed, evaluate=False)
    model.save(folder)
    return model


# --- signals ---------------------------------------------------------------------------------------

@register_signal("profanity")
class ProfanitySignal(Signal):
    """alt-profanity-check's shipped model: P(profane/offensive) per text."""

    name = "profanity"
    columns = ("toxicity",)
    resources = Resources(cpus=1.0, batch_size=1024)

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        if not texts:
            return {"toxicity": np.zeros(0, dtype=np.float32)}
        from profanity_check import predict_prob

        return {"toxicity": np.asarray(predict_prob([t or "" for t in texts]), dtype=np.float32)}

    def params(self) -> dict[str, Any]:
        import importlib.metadata as md

        return {"model": "alt-profanity-check", "version": md.version("alt-profanity-check")}


@register_signal("toxicity_ngram")
class NgramToxicitySignal(Signal):
    """Our hashed n-gram classifiers (reward part): one column per category."""

    name = "toxicity_ngram"
    columns = CATEGORIES
    resources = Resources(cpus=1.0, batch_size=1024)

    def __init__(self, model_dir: str | Path | None = None, data_dir: str | Path | None = None) -> None:
        self.model = load_or_train_ngram(model_dir, data_dir)
        self.columns = tuple(self.model.categories)  # type: ignore[misc]

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        p = self.model.predict_proba(texts)
        return {c: p[:, i] for i, c in enumerate(self.model.categories)}

    def params(self) -> dict[str, Any]:
        return {"kind": NGRAM_KIND, "seed": self.model.meta.get("seed"), "part": self.model.meta.get("part")}


@register_signal("toxicity_minilm")
class MiniLMToxicitySignal(Signal):
    """Logistic heads on MiniLM embeddings (reward part): one column per category."""

    name = "toxicity_minilm"
    columns = CATEGORIES
    resources = Resources(cpus=1.0, batch_size=64)

    def __init__(self, model_dir: str | Path | None = None) -> None:
        self.model = MiniLMHead.load(resolve(TOXICITY_MINILM, model_dir))
        self.columns = tuple(self.model.categories)  # type: ignore[misc]

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        p = self.model.predict_proba(texts)
        return {c: p[:, i] for i, c in enumerate(self.model.categories)}

    def params(self) -> dict[str, Any]:
        return {"kind": MINILM_KIND, "seed": self.model.meta.get("seed"), "part": self.model.meta.get("part")}


# --- judge -----------------------------------------------------------------------------------------

JUDGE_PARAMS = HashingParams(word_bits=18, char_bits=19)


def train_judge(data_dir: str | Path | None = None, seed: int = 0, evaluate: bool = True) -> NgramModel:
    """The evaluation judge: an n-gram model trained only on ``judge`` rows (disjoint from the reward's)."""
    model = train_ngram("judge", data_dir, seed=seed, params=JUDGE_PARAMS, evaluate=evaluate,
                        categories=("toxicity",))
    model.meta["role"] = "judge: evaluation only, never part of a reward"
    return model


def load_judge(model_dir: str | Path | None = None) -> Callable[[list[str]], np.ndarray]:
    """P(toxic) per text from the judge model; a clear error if ``train-scorer --which judge`` never ran."""
    folder = resolve(JUDGE, model_dir)
    model = NgramModel.load(folder, which="judge")
    if model.meta.get("part") not in ("judge", "demo_judge"):
        raise ValueError(f"{folder}: field part is {model.meta.get('part')!r}; the judge must be trained on "
                         "judge rows only")
    col = model.categories.index("toxicity")

    def judge(texts: list[str]) -> np.ndarray:
        return model.predict_proba(list(texts))[:, col].astype(np.float64)

    return judge


# --- demo models (no public data needed) -----------------------------------------------------------

DEMO_PARAMS = HashingParams(word_bits=16, char_bits=16)


def _fit_demo(texts: list[str], labels: np.ndarray, seed: int, part: str, desc: str) -> NgramModel:
    from dynacure.signals.training import fit_logistic

    feat = NgramFeaturizer(DEMO_PARAMS)
    w, b = fit_logistic(feat.transform(texts), labels, None, 4.0, seed)
    meta = {"seed": seed, "C": 4.0, "part": part, "training_data": desc,
            "label_counts": {"toxicity": {"rows": len(labels), "positives": int(labels.sum())}}}
    return NgramModel(feat, w[None, :], np.asarray([b], dtype=np.float32), ["toxicity"], meta)


def train_demo_models(out_dir: str | Path, seed: int = 0, n_docs: int = 1500) -> dict[str, Path]:
    """Reward n-gram scorer and judge from two disjoint generated demo corpora (different seeds).

    Writes ``out_dir/toxicity_ngram`` and ``out_dir/judge``; returns their paths.
    """
    from dynacure.io.demo_corpus import generate_demo_corpus

    out = Path(out_dir)
    reward_docs = generate_demo_corpus(n_docs=n_docs, toxic_share=0.3, low_quality_share=0.1, seed=seed)
    judge_docs = generate_demo_corpus(n_docs=n_docs, toxic_share=0.3, low_quality_share=0.1,
                                      seed=seed + 7919)
    seen = {d.text for d in reward_docs}
    judge_docs = [d for d in judge_docs if d.text not in seen]  # disjoint by text, not only by seed
    paths: dict[str, Path] = {}
    for name, docs, part, s in ((TOXICITY_NGRAM, reward_docs, "demo_reward", seed),
                                (JUDGE, judge_docs, "demo_judge", seed + 7919)):
        labels = np.array([int(bool(d.meta.get("toxic"))) for d in docs])
        if labels.min() == labels.max():
            raise ValueError(f"demo corpus (seed {s}) has one class only; cannot train the {name} model")
        desc = f"generate_demo_corpus(n_docs={n_docs}, toxic_share=0.3, seed={s}), meta['toxic'] labels"
        model = _fit_demo([d.text for d in docs], labels, s, part, desc)
        paths[name] = model.save(out / name)
    return paths
