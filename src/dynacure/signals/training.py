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


def fit_soft_logistic(x: Any, p: np.ndarray, c: float, max_iter: int = 500) -> tuple[np.ndarray, float]:
    """L2 logistic regression on soft targets p in [0, 1] (distillation); returns (weights, bias).

    Minimises C * sum_i [log(1 + e^z_i) - p_i z_i] + |w|^2 / 2 with z = x w + b (bias not penalised): the
    objective of ``fit_logistic`` with each row entered as a positive of weight p and a negative of weight
    1 - p, solved directly by L-BFGS on the sparse matrix, which stays fast where liblinear's dual crawls on
    targets near 0.5.
    """
    from scipy.optimize import minimize

    target = np.asarray(p, dtype=np.float64)
    if target.ndim != 1 or target.shape[0] != x.shape[0]:
        raise ValueError(f"soft targets of shape {target.shape} do not match {x.shape[0]} rows")
    if not np.all(np.isfinite(target)) or target.min() < 0 or target.max() > 1:
        raise ValueError("soft targets must be finite and in [0, 1]")
    import scipy.sparse as sp

    # Columns no pool text activates get no data gradient, so their optimal weight is exactly 0: solve on
    # the active columns only (hashed n-gram spaces have 2^18+ columns, a small pool touches a fraction).
    full = sp.csr_matrix(x)
    active = np.unique(full.indices)
    x = full[:, active].tocsr()
    xt = x.T.tocsr()
    d = x.shape[1]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d], theta[d]
        z = np.asarray(x @ w).ravel() + b
        loss = c * float(np.sum(np.logaddexp(0.0, z) - target * z)) + 0.5 * float(w @ w)
        r = c * (1.0 / (1.0 + np.exp(-np.clip(z, -40, 40))) - target)
        grad = np.empty(d + 1)
        grad[:d] = np.asarray(xt @ r).ravel() + w
        grad[d] = float(r.sum())
        return loss, grad

    from threadpoolctl import threadpool_limits

    # One BLAS thread: L-BFGS's vector updates are small, and threaded BLAS on a busy machine made this
    # fit 100x slower (measured: 11 s vs 0.12 s on 300 texts with the other core loaded).
    with threadpool_limits(limits=1):
        res = minimize(objective, np.zeros(d + 1), jac=True, method="L-BFGS-B",
                       options={"maxiter": max_iter, "gtol": 1e-6})
    weights = np.zeros(full.shape[1], dtype=np.float32)
    weights[active] = res.x[:d]
    return weights, float(res.x[d])


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
    decided: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {}  # benchmark -> test texts, y, pred
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
        decided[name] = (texts, y, pred)
    if decided:
        parts = list(decided.values())
        results["identity_fpr"] = identity_fpr([t for texts, _, _ in parts for t in texts],
                                               np.concatenate([y for _, y, _ in parts]),
                                               np.concatenate([p for _, _, p in parts]))
        results["identity_fpr_by_benchmark"] = {name: identity_fpr(*part) for name, part in decided.items()}
    results["identity_fpr_neutral"] = neutral_identity_fpr(predict, data_dir)
    return results


NEUTRAL_THRESHOLD = 0.5


def neutral_identity_fpr(predict: Callable[[list[str]], np.ndarray], data_dir: str | Path | None = None,
                         threshold: float = NEUTRAL_THRESHOLD) -> dict[str, Any]:
    """Share of neutral texts that mention an identity group flagged toxic (score >= ``threshold``).

    The texts are the unique BBQ contexts (Parrish et al. 2022; never used to train a scorer): everyday
    scenes that name a group by category (age, disability, nationality, appearance, religion, sexual
    orientation) and are not toxic by construction. Unlike the labelled test sets, whose negatives include
    offensive tweets that are merely not *hate* (TweetEval hate), this isolates "flags the mention of a
    group". Missing BBQ files give a status line instead of figures.
    """
    try:
        bbq = pdata.bbq(data_dir)
    except FileNotFoundError as exc:
        return {"status": f"not measured: {exc}"}
    ctx = bbq.drop_duplicates("context")
    p = np.asarray(predict(list(ctx["context"])), dtype=float)
    flagged = p >= threshold
    out: dict[str, Any] = {"threshold": threshold, "source": "BBQ unique contexts",
                           "all": {"fpr": float(flagged.mean()), "n": int(len(p))}}
    for cat, idx in ctx.groupby("category").indices.items():
        out[str(cat)] = {"fpr": float(flagged[idx].mean()), "n": int(len(idx))}
    return out


# --- harm categories a curator can route by (Celadon-style) -----------------------------------------

HARM_CATEGORIES = ("race_origin", "gender_sex", "religion", "ability", "violence")
MIN_TEST_POSITIVES = 20  # below this a category's held-out AUROC is not reported (too noisy to mean much)

# Which identity groups make a hate label one of the group-mention harm categories: names in
# ``dynacure.audit.groups.GROUP_TERMS``, then names in ``IDENTITY_TERMS`` above (both lists are unioned).
# "men" is left out on purpose: "man"/"men" occur in hateful texts about anyone, so they say nothing about
# the target; sexual orientation goes with gender/sex as in Celadon.
HARM_GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "race_origin": (("asian", "black", "chinese", "latino", "mexican", "middle_east", "native_american",
                     "immigrants"), ("black", "immigrant")),
    "gender_sex": (("women", "lgbtq"), ("women", "lgbtq")),
    "religion": (("jewish", "muslim", "christian"), ("jewish", "muslim", "christian")),
    "ability": (("mental_disability", "physical_disability"), ("disability",)),
}


def harm_terms(category: str) -> tuple[str, ...]:
    """The group terms of one group-mention harm category (audit lists and ``IDENTITY_TERMS`` together)."""
    from dynacure.audit.groups import GROUP_TERMS

    audit_groups, local_groups = HARM_GROUPS[category]
    terms = {t for g in audit_groups for t in GROUP_TERMS[g]}
    terms |= {t for g in local_groups for t in IDENTITY_TERMS[g]}
    return tuple(sorted(terms))


def harm_labels(texts: Any, hate: Any) -> dict[str, np.ndarray]:
    """Group-mention harm labels derived from a hate label (1 / 0 / NaN) and the groups a text mentions.

    Per category: 1 = hate that mentions one of the category's groups; 0 = not hate, or hate that mentions
    only other categories' groups; NaN = no hate label, or hate that mentions no listed group (its target is
    unknown, e.g. a slur alone), so that row does not teach the category a false 0.
    """
    from dynacure.audit.groups import group_membership

    h = np.asarray(hate, dtype=float)
    masks = group_membership([str(t) for t in texts], {c: harm_terms(c) for c in HARM_GROUPS})
    any_group = np.logical_or.reduce(list(masks.values()))
    out: dict[str, np.ndarray] = {}
    for cat, m in masks.items():
        on_hate = np.where(m, 1.0, np.where(any_group, 0.0, np.nan))
        out[cat] = np.where(h == 1, on_hate, h)  # h == 0 stays 0, NaN stays NaN
    return out


def harm_frame(part: str, data_dir: str | Path | None = None) -> pd.DataFrame:
    """``toxicity_frame`` plus the harm categories as columns.

    The group-mention categories come from ``identity_hate`` via ``harm_labels``; ``violence`` is the
    Jigsaw ``threat`` label, the only threat/violence label among these sets (NaN elsewhere).
    """
    frame = toxicity_frame(part, data_dir)
    for cat, lab in harm_labels(frame["text"], frame["identity_hate"]).items():
        frame[cat] = lab
    frame["violence"] = frame["threat"]
    return frame


# --- identity-term counterfactual augmentation (debiasing) ------------------------------------------

# Parallel forms of the groups on one axis: position k of every group is the same grammatical slot, so
# a counterfactual swaps "women" <-> "men" and "girls" <-> "boys" at once, in both directions. The groups
# are those of IDENTITY_TERMS / audit GROUP_TERMS plus a counterpart where a swap needs one ("men",
# "straight", "citizens", "able-bodied"); forms that would also match ordinary words ("hearing" for deaf)
# are left out, since the swap runs both ways.
COUNTERFACTUAL_AXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "gender": (("woman", "women", "female", "females", "girl", "girls", "lady", "ladies"),
               ("man", "men", "male", "males", "boy", "boys", "gentleman", "gentlemen")),
    "orientation": (("gay", "gays", "homosexual", "homosexuals", "lesbian", "lesbians", "transgender"),
                    ("straight", "straights", "heterosexual", "heterosexuals", "straight woman",
                     "straight women", "cisgender")),
    "religion": (("muslim", "muslims", "islam", "islamic", "mosque"),
                 ("christian", "christians", "christianity", "christian", "church"),
                 ("jew", "jews", "judaism", "jewish", "synagogue")),
    "origin": (("immigrant", "immigrants", "refugee", "refugees", "migrant", "migrants"),
               ("citizen", "citizens", "resident", "residents", "local", "locals")),
    "race": (("black", "blacks", "african", "africans"),
             ("white", "whites", "european", "europeans"),
             ("asian", "asians", "asian", "asians"),
             ("latino", "latinos", "hispanic", "hispanics")),
    "ability": (("disabled", "disability", "autistic", "blind"),
                ("able-bodied", "ability", "neurotypical", "sighted")),
}


def _axis_pattern(groups: tuple[tuple[str, ...], ...]) -> re.Pattern[str]:
    terms = sorted({t for g in groups for t in g}, key=len, reverse=True)
    return re.compile(r"(?<![\w'-])(?:" + "|".join(map(re.escape, terms)) + r")(?![\w'-])", re.IGNORECASE)


_AXIS_PATTERNS = {axis: _axis_pattern(groups) for axis, groups in COUNTERFACTUAL_AXES.items()}


def _same_case(src: str, dst: str) -> str:
    if src.isupper() and len(src) > 1:
        return dst.upper()
    if src[:1].isupper():
        return dst[:1].upper() + dst[1:]
    return dst


def swap_map(axis: str, a: int, b: int) -> dict[str, str]:
    """Lower-case term -> replacement swapping groups ``a`` and ``b`` of ``axis`` both ways (first form
    wins where a group lists one word twice, e.g. "christian" as noun and adjective)."""
    groups = COUNTERFACTUAL_AXES[axis]
    if len(groups[a]) != len(groups[b]):
        raise ValueError(f"COUNTERFACTUAL_AXES[{axis!r}]: groups {a} and {b} list different numbers of forms")
    out: dict[str, str] = {}
    for x, y in zip(groups[a], groups[b], strict=True):
        out.setdefault(x, y)
        out.setdefault(y, x)
    return out


def counterfactual_text(text: str, seed: int = 0) -> str | None:
    """``text`` with the first-mentioned group of each axis swapped with a partner group, or None.

    The partner is fixed by (seed, axis, text), so augmentation is reproducible. Every mention of the two
    groups is swapped at once ("men and women" -> "women and men"); other groups are left alone.
    """
    out, changed = text, False
    for axis, pat in _AXIS_PATTERNS.items():
        groups = COUNTERFACTUAL_AXES[axis]
        first = pat.search(out)
        if first is None:
            continue
        word = first.group(0).lower()
        a = next(i for i, g in enumerate(groups) if word in g)
        others = [i for i in range(len(groups)) if i != a]
        b = others[int(pdata.stable_fraction(f"cf:{seed}:{axis}:{text}") * len(others))]
        mapping = swap_map(axis, a, b)
        out = pat.sub(lambda m, mp=mapping: _same_case(m.group(0), mp.get(m.group(0).lower(), m.group(0))),
                      out)
        changed = True
    return out if changed and out != text else None


def counterfactual_augment(frame: pd.DataFrame, seed: int = 0,
                           label_columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """``frame`` plus one counterfactual copy of each non-toxic row that mentions an identity group.

    A row is non-toxic when none of its label columns is 1 and at least one is 0 (a row whose labels are
    all unknown is not known to be clean); toxic rows are never copied or changed. A copy keeps the row's
    labels and dataset (so augmentation does not shift the balance between sources) and has
    ``augmented == True``; originals get ``augmented == False``.
    """
    cols = label_columns or tuple(c for c in (*CATEGORIES, *HARM_CATEGORIES) if c in frame.columns)
    labels = frame[list(cols)].to_numpy(dtype=float)
    clean = ~(labels == 1).any(axis=1) & (labels == 0).any(axis=1)
    base = frame.assign(augmented=False)
    rows, texts = [], []
    for i in np.flatnonzero(clean):
        new = counterfactual_text(str(frame["text"].iat[i]), seed)
        if new is not None:
            rows.append(i)
            texts.append(new)
    copies = frame.iloc[rows].assign(text=texts, augmented=True)
    return pd.concat([base, copies], ignore_index=True)


# --- reliability and per-category held-out figures --------------------------------------------------

def reliability_bins(y: Any, p: Any, n_bins: int = 10) -> dict[str, Any]:
    """Reliability-diagram data: equal-width bins of predicted probability with their mean prediction and
    observed positive rate, plus the expected calibration error (count-weighted |gap|)."""
    yy, pp = np.asarray(y, dtype=float), np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.minimum((pp * n_bins).astype(int), n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        m = idx == b
        n = int(m.sum())
        mean_p = float(pp[m].mean()) if n else None
        frac = float(yy[m].mean()) if n else None
        if n:
            ece += n * abs(mean_p - frac)  # type: ignore[operator]
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": n, "mean_pred": mean_p,
                     "frac_pos": frac})
    return {"bins": bins, "ece": float(ece / max(len(yy), 1)), "n": int(len(yy))}


def category_benchmarks(data_dir: str | Path | None = None,
                        max_rows: int | None = None) -> dict[str, pd.DataFrame]:
    """Held-out rows (text, label, dataset) per category other than ``toxicity``: official test splits only.

    ``insult`` and ``violence`` from Jigsaw test (obscene|insult, threat); ``identity_hate`` and the
    group-mention harm categories from TweetEval hate test + Jigsaw test identity_hate, labelled by the
    same ``harm_labels`` rule as training (rows it leaves NaN are dropped).
    """
    hate_test = pdata.tweeteval("hate", "test", data_dir)
    jig = pdata.jigsaw("test", data_dir)
    if max_rows is not None:
        hate_test = hate_test.sample(min(len(hate_test), max_rows), random_state=0)
        jig = jig.sample(min(len(jig), max_rows), random_state=0)

    def rows(texts: Any, labels: Any, datasets: Any) -> pd.DataFrame:
        df = pd.DataFrame({"text": list(texts), "label": np.asarray(labels, dtype=float),
                           "dataset": list(datasets)})
        return df[df["label"].notna()].assign(label=lambda d: d["label"].astype(int)).reset_index(drop=True)

    texts = list(hate_test["text"]) + list(jig["text"])
    hate = np.concatenate([hate_test["label"].to_numpy(float), jig["identity_hate"].to_numpy(float)])
    sets = ["tweeteval_hate_test"] * len(hate_test) + ["jigsaw_test"] * len(jig)
    out = {
        "insult": rows(jig["text"], (jig["obscene"] + jig["insult"]) > 0, ["jigsaw_test"] * len(jig)),
        "identity_hate": rows(texts, hate, sets),
    }
    for cat, lab in harm_labels(texts, hate).items():
        out[cat] = rows(texts, lab, sets)
    out["violence"] = rows(jig["text"], jig["threat"], ["jigsaw_test"] * len(jig))
    return out


def evaluate_categories(predict: Callable[[list[str]], np.ndarray], categories: list[str],
                        data_dir: str | Path | None = None, max_rows: int | None = None,
                        skipped: dict[str, str] | None = None) -> dict[str, Any]:
    """Held-out AUROC per category that the model emits; ``predict`` gives [n, len(categories)].

    A category with fewer than ``MIN_TEST_POSITIVES`` test positives, or that the model does not emit
    (``skipped``: category -> reason), is reported with its counts and the reason instead of a figure.
    """
    skipped = skipped or {}
    out: dict[str, Any] = {}
    for cat, df in category_benchmarks(data_dir, max_rows).items():
        y = df["label"].to_numpy(int)
        info: dict[str, Any] = {"n_test": int(len(y)), "positives": int(y.sum()),
                                "datasets": sorted(df["dataset"].unique().tolist())}
        if cat not in categories:
            info["status"] = skipped.get(cat, "not emitted by this model")
        elif y.sum() < MIN_TEST_POSITIVES or y.sum() == len(y):
            info["status"] = f"too little test data: {int(y.sum())} positives (need >= {MIN_TEST_POSITIVES})"
        else:
            p = predict(list(df["text"]))[:, categories.index(cat)]
            info["auroc"] = float(roc_auc_score(y, p))
            info["status"] = "ok"
        out[cat] = info
    return out
