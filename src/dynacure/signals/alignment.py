"""Alignment proxy: a pairwise (Bradley-Terry) linear scorer of assistant replies, plus style markers.

Trained on HH-RLHF chosen vs rejected final replies of the ``pool`` half only (the ``eval`` half stays for
evaluation): features are hashed word/char n-grams of the reply plus three small style scores; the loss is
logistic on the feature difference chosen - rejected, so only the ranking is learned. A document's raw
score w·f(text) is centred and scaled by the training replies' scores and squashed to [0, 1] (``score``).
For a dialogue document (``Human:`` / ``Assistant:`` turns) only the assistant turns are scored.

Style columns (each in [0, 1], a saturating rate per 50 words of regex/lexicon hits):
``instructional`` (steps, numbered lists, imperatives), ``explanatory`` (because, for example, ...),
``respectful`` (please, thank you, sorry, I understand, ...).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from dynacure.signals.base import Resources, Signal, register_signal
from dynacure.signals.hashing import HashingParams, NgramFeaturizer
from dynacure.signals.models import ALIGNMENT, ModelMissingError, SavedModel, load_model, resolve, save_model

log = logging.getLogger(__name__)

KIND = "alignment_pairwise"
STYLE = ("instructional", "explanatory", "respectful")
ALIGN_PARAMS = HashingParams(word_bits=17, char_bits=17)

_STYLE_PATTERNS: dict[str, re.Pattern[str]] = {
    "instructional": re.compile(
        r"(?im)^\s*(?:\d+[.)]|[-*\u2022])\s+|"
        r"\b(?:step \d+|first(?:ly)?,|second(?:ly)?,|then,?|next,|finally,|"
        r"make sure|you (?:can|could|should|need to|might want to)|try (?:to|using)|here(?: is|'s) how|"
        r"follow these|to do this|i(?:'d| would) (?:recommend|suggest))\b"),
    "explanatory": re.compile(
        r"(?i)\b(?:because|since|therefore|thus|this means|which means|for example|for instance|e\.g\.|"
        r"in other words|the reason|so that|due to|as a result|that is why|in general|typically|"
        r"depends on|is defined as|refers to)\b"),
    "respectful": re.compile(
        r"(?i)\b(?:please|thank you|thanks|sorry|i understand|i appreciate|happy to help|glad to|"
        r"i hope this helps|that sounds|good question|of course|respect|i'm not sure|i am not sure|"
        r"i don't think i can|i can't help with|i'd rather not)\b"),
}

_TURN = re.compile(r"(?s)(?:^|\n)\s*Assistant:\s*(.*?)(?=\n\s*Human:|\Z)")


def assistant_text(text: str) -> list[str]:
    """The assistant turns of a dialogue document, or ``[text]`` if it has no ``Assistant:`` turns."""
    if "Assistant:" not in text:
        return [text]
    turns = [t.strip() for t in _TURN.findall(text)]
    turns = [t for t in turns if t]
    return turns or [text]


def style_scores(texts: list[str]) -> np.ndarray:
    """[n, 3] style scores in [0, 1]: 1 - exp(-hits per 50 words)."""
    out = np.zeros((len(texts), len(STYLE)), dtype=np.float32)
    for i, t in enumerate(texts):
        words = max(len(t.split()), 1)
        per = 50.0 / max(words, 50)
        for j, name in enumerate(STYLE):
            hits = len(_STYLE_PATTERNS[name].findall(t))
            out[i, j] = 1.0 - np.exp(-hits * per)
    return out


class AlignmentModel:
    """w·[hashed n-grams | style | log words] -> raw score; ``score`` = sigmoid((raw - center) / scale)."""

    def __init__(self, featurizer: NgramFeaturizer, weights: np.ndarray, center: float, scale: float,
                 meta: dict[str, Any] | None = None) -> None:
        if weights.shape != (featurizer.n_features + len(STYLE) + 1,):
            raise ValueError(f"alignment weights of shape {weights.shape} do not match the feature space")
        self.featurizer = featurizer
        self.weights = weights.astype(np.float32)
        self.center, self.scale = float(center), float(scale)
        self.meta = dict(meta or {})

    @staticmethod
    def features(featurizer: NgramFeaturizer, texts: list[str]) -> sp.csr_matrix:
        # log length: in HH-RLHF the preferred reply is often the fuller one.
        length = np.log1p([len(t.split()) for t in texts]).astype(np.float32)[:, None]
        blocks = [featurizer.transform(texts), sp.csr_matrix(style_scores(texts)), sp.csr_matrix(length)]
        return sp.hstack(blocks, format="csr")

    def raw(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        return np.asarray(self.features(self.featurizer, texts) @ self.weights, dtype=float)

    def score_replies(self, texts: list[str]) -> np.ndarray:
        return (1.0 / (1.0 + np.exp(-(self.raw(texts) - self.center) / self.scale))).astype(np.float32)

    def score_documents(self, texts: list[str]) -> np.ndarray:
        """Mean score over each document's assistant turns (the whole text if it is not a dialogue)."""
        turns = [assistant_text(t or "") for t in texts]
        flat = [x for ts in turns for x in ts]
        s = self.score_replies(flat)
        out, i = np.zeros(len(texts), dtype=np.float32), 0
        for k, ts in enumerate(turns):
            out[k] = s[i:i + len(ts)].mean()
            i += len(ts)
        return out

    def save(self, folder: str | Path) -> Path:
        meta = dict(self.meta, hashing=self.featurizer.to_meta(), style=list(STYLE))
        arrays = {"weights": self.weights, "center": np.array([self.center]), "scale": np.array([self.scale])}
        return save_model(folder, SavedModel(KIND, arrays, meta))

    @classmethod
    def load(cls, folder: str | Path) -> AlignmentModel:
        saved = load_model(folder, KIND, which="alignment")
        a = saved.arrays
        return cls(NgramFeaturizer.from_meta(saved.meta["hashing"]), a["weights"], float(a["center"][0]),
                   float(a["scale"][0]), saved.meta)


# --- training --------------------------------------------------------------------------------------

def _pairs(data_dir: str | Path | None, half: str) -> Any:
    import pandas as pd

    from dynacure.io import public_data as pdata

    frames = [pdata.hh_rlhf(s, half=half, data_dir=data_dir) for s in pdata.HH_SUBSETS]  # type: ignore[arg-type]
    df = pd.concat(frames, ignore_index=True)
    df["heldout"] = [pdata.stable_fraction(f"align:{s}:{r}") < 0.2 for s, r in zip(df["subset"], df["row"],
                                                                                   strict=True)]
    # Identical replies carry no preference signal.
    return df[df["chosen_reply"].str.strip() != df["rejected_reply"].str.strip()].reset_index(drop=True)


def pairwise_accuracy(model: AlignmentModel, chosen: list[str], rejected: list[str]) -> float:
    a, b = model.raw(chosen), model.raw(rejected)
    return float(np.mean((a > b) + 0.5 * (a == b)))


def train_alignment(data_dir: str | Path | None = None, seed: int = 0, c: float = 0.2,
                    evaluate: bool = True) -> AlignmentModel:
    """Pairwise logistic model on the pool half's train split; held-out figures in ``meta['heldout']``."""
    from sklearn.linear_model import LogisticRegression

    pool = _pairs(data_dir, "pool")
    train = pool[~pool["heldout"]]
    feat = NgramFeaturizer(ALIGN_PARAMS)
    fc = AlignmentModel.features(feat, list(train["chosen_reply"]))
    fr = AlignmentModel.features(feat, list(train["rejected_reply"]))
    diff = fc - fr
    # Both orientations, no intercept: the model only learns which reply of a pair ranks higher.
    x = sp.vstack([diff, -diff], format="csr")
    y = np.r_[np.ones(diff.shape[0]), np.zeros(diff.shape[0])]
    clf = LogisticRegression(C=c, solver="liblinear", fit_intercept=False, max_iter=300, random_state=seed)
    clf.fit(x, y)
    w = clf.coef_.ravel().astype(np.float32)
    raw = np.asarray(sp.vstack([fc, fr]) @ w, dtype=float)
    center, scale = float(np.median(raw)), float(raw.std() + 1e-9)
    meta: dict[str, Any] = {
        "seed": seed, "C": c, "n_train_pairs": int(len(train)),
        "training_data": ("HH-RLHF test files (harmless-base, helpful-base), half=='pool', rows with "
                          "stable_fraction('align:subset:row') >= 0.2; chosen vs rejected final replies"),
    }
    model = AlignmentModel(feat, w, center, scale, meta)
    if evaluate:
        model.meta["heldout"] = evaluate_alignment(model, data_dir, pool)
    return model


def evaluate_alignment(model: AlignmentModel, data_dir: str | Path | None = None,
                       pool: Any = None) -> dict[str, Any]:
    """Pairwise accuracy on held-out pool pairs and on the eval half, overall and per subset."""
    pool = _pairs(data_dir, "pool") if pool is None else pool
    sets = {"pool_heldout": pool[pool["heldout"]], "eval_half": _pairs(data_dir, "eval")}
    out: dict[str, Any] = {}
    for name, df in sets.items():
        out[name] = {"pairwise_accuracy": pairwise_accuracy(model, list(df["chosen_reply"]),
                                                            list(df["rejected_reply"])), "n": int(len(df))}
        for sub, g in df.groupby("subset"):
            out[name][str(sub)] = {"pairwise_accuracy": pairwise_accuracy(
                model, list(g["chosen_reply"]), list(g["rejected_reply"])), "n": int(len(g))}
    return out


def load_or_train_alignment(model_dir: str | Path | None = None,
                            data_dir: str | Path | None = None) -> AlignmentModel:
    """The alignment model; like the n-gram toxicity model it trains in seconds, so train it if missing."""
    folder = resolve(ALIGNMENT, model_dir)
    try:
        return AlignmentModel.load(folder)
    except ModelMissingError:
        from dynacure.io.public_data import default_data_dir

        base = Path(data_dir) if data_dir is not None else default_data_dir()
        if not (base / "hh-rlhf").exists():
            raise
    log.warning("%s missing: training the alignment model on the fly (no held-out evaluation)", folder)
    model = train_alignment(data_dir, evaluate=False)
    model.save(folder)
    return model


@register_signal("alignment")
class AlignmentSignal(Signal):
    """Columns: ``score`` (alignment proxy in [0, 1]) and the three style scores."""

    name = "alignment"
    columns = ("score",) + STYLE
    resources = Resources(cpus=1.0, batch_size=512)

    def __init__(self, model_dir: str | Path | None = None, data_dir: str | Path | None = None) -> None:
        self.model = load_or_train_alignment(model_dir, data_dir)

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        texts = [t or "" for t in texts]
        out = {"score": self.model.score_documents(texts)}
        st = style_scores([" ".join(assistant_text(t)) for t in texts])
        for j, name in enumerate(STYLE):
            out[name] = st[:, j]
        return out

    def params(self) -> dict[str, Any]:
        return {"kind": KIND, "seed": self.model.meta.get("seed")}
