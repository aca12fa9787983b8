"""Training and held-out evaluation of our scorers (behind ``dynacure train-scorer``).

Which rows train what is fixed by ``dynacure.io.public_data``'s ``part`` column: the reward scorers
(``toxicity_ngram``, ``toxicity_minilm``) see only ``part == "reward"`` rows, the evaluation judge only
``part == "judge"`` rows. Clean negatives (pieces of WikiText-2 and PTB validation text) are split the
same way. Decision thresholds are chosen on validation data (TweetEval val splits, Jigsaw
train rows of the ``pool`` part, which neither scorer trains on), never on the official test splits.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score

from dynacure.io import public_data as pdata

log = logging.getLogger(__name__)

CATEGORIES = ("toxicity", "insult", "identity_hate", "threat")
MIN_POSITIVES = 20  # below this a category is not trained (too few examples to learn anything real)

# Small, hand-written term lists per identity group, for false-positive rates on non-toxic test texts.
IDENTITY_TERMS: dict[str, tuple[str, ...]] = {
    "lgbtq": ("gay", "gays", "lesbian", "lesbians", "homosexual", "homosexuals", "queer", "transgender",
              "bisexual", "lgbt", "lgbtq"),
    "muslim": ("muslim", "muslims", "islam", "islamic"),
    "jewish": ("jew", "jews", "jewish", "judaism"),
    "christian": ("christian", "christians", "christianity"),
    "black": ("black", "blacks", "african"),
    "women": ("women", "woman", "female", "females", "girl", "girls"),
    "immigrant": ("immigrant", "immigrants", "refugee", "refugees", "migrant", "migrants"),
    "disability": ("disabled", "disability", "deaf", "blind", "autistic"),
}


# --- data ------------------------------------------------------------------------------------------

def toxicity_frame(part: str, data_dir: str | Path | None = None) -> pd.DataFrame:
    """Labeled training rows of one ``part``: text, dataset and one 0/1/NaN column per category.

    NaN means "this source says nothing about that category" (e.g. TweetEval offensive has no threat
    labels), so the category's model does not train on that row rather than learning a false 0.
    """
    frames: list[pd.DataFrame] = []
    nan = np.nan

    def add(df: pd.DataFrame, **cols: Any) -> None:
        df = df[df["part"] == part]
        out = pd.DataFrame({"text": df["text"].astype(str).values, "dataset": df["dataset"].values})
        for cat in CATEGORIES:
            val = cols.get(cat, nan)
            out[cat] = val(df) if callable(val) else val
        frames.append(out)

    add(pdata.tweeteval("offensive", "train", data_dir), toxicity=lambda d: d["label"].values.astype(float))
    # A non-hate HatEval tweet may still be offensive, so only its positives say "toxic".
    add(pdata.tweeteval("hate", "train", data_dir),
        toxicity=lambda d: np.where(d["label"].values == 1, 1.0, nan),
        identity_hate=lambda d: d["label"].values.astype(float))
    add(pdata.davidson(data_dir),
        toxicity=lambda d: d["label"].values.astype(float),
        insult=lambda d: (d["cls"].values != 2).astype(float),
        identity_hate=lambda d: (d["cls"].values == 0).astype(float))
    add(pdata.jigsaw("train", data_dir),
        toxicity=lambda d: d["label"].values.astype(float),
        insult=lambda d: ((d["obscene"].values + d["insult"].values) > 0).astype(float),
        identity_hate=lambda d: d["identity_hate"].values.astype(float),
        threat=lambda d: d["threat"].values.astype(float))
    for name, lines in (("wikitext2_valid", pdata.wikitext2("valid", data_dir)),
                        ("ptb_valid", pdata.ptb("valid", data_dir))):
        chunks = clean_chunks(lines)
        part_rows = [i for i in range(len(chunks)) if pdata.part_of(f"clean_{name}", i) == part]
        clean = {"text": [chunks[i] for i in part_rows], "dataset": f"clean_{name}"}
        frames.append(pd.DataFrame({**clean, **{cat: 0.0 for cat in CATEGORIES}}))
    return pd.concat(frames, ignore_index=True)


def clean_chunks(lines: list[str], min_words: int = 4, max_words: int = 30) -> list[str]:
    """Encyclopedic/news text cut into short pieces of varied length, as clean negatives.

    Every toxicity set here is social-media text, so a scorer trained on them alone learns "short and
    informal" rather than "toxic" and scores ordinary prose (and a small LM's continuations) as toxic:
    the judge gave "The history of the city goes back to the Roman era." 0.62 before these rows were added.
    Validation splits only: the pool holds the train splits and perplexity is measured on the test splits.
    """
    out: list[str] = []
    for k, line in enumerate(lines):
        words = line.split()
        if len(words) < min_words or line.lstrip().startswith("="):
            continue
        i = 0
        while i + min_words <= len(words):
            n = min_words + int(pdata.stable_fraction(f"chunk:{k}:{i}") * (max_words - min_words + 1))
            out.append(" ".join(words[i:i + n]))
            i += n
    return out


def dataset_weights(datasets: pd.Series | np.ndarray) -> np.ndarray:
    """Weights giving each source dataset the same total mass (Davidson would otherwise dominate)."""
    ds = pd.Series(np.asarray(datasets))
    counts = ds.map(ds.value_counts())
    w = 1.0 / counts.values.astype(float)
    return w * len(w) / w.sum()


# --- fitting ---------------------------------------------------------------------------------------

def fit_logistic(x: Any, y: np.ndarray, sample_weight: np.ndarray | None, c: float,
                 seed: int) -> tuple[np.ndarray, float]:
    """L2 logistic regression; returns (weights, bias) as plain numpy for safetensors."""
    clf = LogisticRegression(C=c, solver="liblinear", max_iter=200, random_state=seed)
    clf.fit(x, y, sample_weight=sample_weight)
    return clf.coef_.ravel().astype(np.float32), float(clf.intercept_[0])


def fit_categories(x: Any, frame: pd.DataFrame, c: float, seed: int, balance_datasets: bool = True,
                   categories: tuple[str, ...] = CATEGORIES,
                   ) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any]]:
    """One logistic model per category on the rows that label it; (W [k, d], b [k], categories, counts)."""
    rows_w, rows_b, cats = [], [], []
    counts: dict[str, Any] = {}
    for cat in categories:
        mask = frame[cat].notna().values
        y = frame.loc[mask, cat].values.astype(int)
        pos = int(y.sum())
        counts[cat] = {"rows": int(mask.sum()), "positives": pos}
        if pos < MIN_POSITIVES or pos == len(y):
            log.warning("category %s skipped: %d positives in %d rows", cat, pos, len(y))
            continue
        sw = dataset_weights(frame.loc[mask, "dataset"]) if balance_datasets else None
        w, b = fit_logistic(x[np.flatnonzero(mask)], y, sw, c, seed)
        rows_w.append(w)
        rows_b.append(b)
        cats.append(cat)
    return np.vstack(rows_w), np.asarray(rows_b, dtype=np.float32), cats, counts


# --- held-out evaluation ---------------------------------------------------------------------------

def best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """Threshold maximising macro-F1 on validation data."""
    grid = np.unique(np.quantile(p, np.linspace(0.01, 0.99, 99)))
    scores = [f1_score(y, (p >= t).astype(int), average="macro") for t in grid]
    return float(grid[int(np.argmax(scores))])


def _mentions(texts: list[str], terms: tuple[str, ...]) -> np.ndarray:
    pat = re.compile(r"\b(" + "|".join(map(re.escape, terms)) + r")\b", re.IGNORECASE)
    return np.array([bool(pat.search(t)) for t in texts])


def identity_fpr(texts: list[str], y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """False-positive rate on non-toxic texts overall and per identity group mentioned."""
    neg = y == 0
    out: dict[str, Any] = {"all": {"fpr": float(pred[neg].mean()) if neg.any() else None,
                                   "n": int(neg.sum())}}
    for group, terms in IDENTITY_TERMS.items():
        m = neg & _mentions(texts, terms)
        out[group] = {"fpr": float(pred[m].mean()) if m.any() else None, "n": int(m.sum())}
    return out


def benchmarks(data_dir: str | Path | None = None,
               max_rows: int | None = None) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """name -> (validation frame, test frame), each with text + label. ``max_rows`` samples (seeded)."""
    jig_train = pdata.jigsaw("train", data_dir)
    jig_val = jig_train[jig_train["part"] == "pool"]
    out = {
        "tweeteval_offensive": (pdata.tweeteval("offensive", "val", data_dir),
                                pdata.tweeteval("offensive", "test", data_dir)),
        "tweeteval_hate": (pdata.tweeteval("hate", "val", data_dir),
                           pdata.tweeteval("hate", "test", data_dir)),
        "jigsaw": (jig_val, pdata.jigsaw("test", data_dir)),
    }
    if max_rows is not None:
        out = {k: (v.sample(min(len(v), max_rows), random_state=0), t.sample(min(len(t), max_rows),
                                                                              random_state=0))
               for k, (v, t) in out.items()}
    return out


def evaluate_toxicity(predict: Callable[[list[str]], np.ndarray], data_dir: str | Path | None = None,
                      max_rows: int | None = None,
                      only: tuple[str, ...] | None = None) -> dict[str, Any]:
    """AUROC and macro-F1 (threshold from validation) per benchmark + identity-group FPR on all tests."""
    results: dict[str, Any] = {}
    pooled_texts: list[str] = []
    pooled_y, pooled_pred = [], []
    for name, (val, test) in benchmarks(data_dir, max_rows).items():
        if only is not None and name not in only:
            continue
        pv = predict(list(val["text"]))
        thr = best_threshold(val["label"].values, pv)
        texts = list(test["text"])
        pt = predict(texts)
        y = test["label"].values.astype(int)
        pred = (pt >= thr).astype(int)
        results[name] = {
            "auroc": float(roc_auc_score(y, pt)),
            "macro_f1": float(f1_score(y, pred, average="macro")),
            "threshold": thr,
            "threshold_from": "validation",
            "n_test": len(y),
            "n_val": len(val),
        }
        pooled_texts += texts
        pooled_y.append(y)
        pooled_pred.append(pred)
    if pooled_texts:
        results["identity_fpr"] = identity_fpr(pooled_texts, np.concatenate(pooled_y),
                                               np.concatenate(pooled_pred))
    return results
