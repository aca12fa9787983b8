"""Small helpers shared by the strategies: checking the candidate table and finding toxicity columns."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from dynacure.io.attributes import SEP
from dynacure.io.idset import find_duplicates, string_chunks
from dynacure.signals.hf_classifier import HFClassifierSignal

# Signals whose columns are toxicity categories (probability-like, in [0, 1]); the safety side of every
# strategy takes the max over the categories present, so a document toxic in any one category counts.
# Every signal whose columns are P(toxic) per category: the composite reward's safety term is 1 - their max.
TOXICITY_SIGNALS: tuple[str, ...] = ("toxicity_transformer", "toxicity_ngram", "toxicity_minilm", "profanity",
                                     "hf_classifier")
UNIQUE_IDS = "dynacure_unique_ids"


def check_table(table: pd.DataFrame, need: Iterable[str] = ("id", "n_tokens")) -> None:
    """Refuse a candidate table without the columns a selector needs, or with bad token counts."""
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"candidate table lacks column(s) {missing}; has {list(table.columns)[:20]}")
    if "n_tokens" in table.columns:
        nt = pd.to_numeric(table["n_tokens"], errors="coerce")
        if nt.isna().any() or (nt < 0).any():
            bad = table.loc[nt.isna() | (nt < 0), "id"].head(3).tolist()
            raise ValueError(f"n_tokens must be a non-negative integer for every document (bad ids: {bad})")
    # UNIQUE_IDS in table.attrs: the table's builder guaranteed unique ids (curate's reader checks every id).
    if "id" in table.columns and not table.attrs.get(UNIQUE_IDS):
        # On 8-byte digests, a chunk of ids at a time: pandas' duplicated() would turn every Arrow id into
        # a Python string and hash table entry (~100 B per document) in the middle of a selection.
        dup = find_duplicates(lambda: string_chunks(table["id"]))
        if dup:
            raise ValueError(f"candidate table has duplicate ids, e.g. {dup[:3]}")


def table_ids(table: pd.DataFrame) -> Any:
    """The ``id`` column as an Arrow-backed string array: no Python string object per document (a
    million ids as NumPy objects cost ~70 MB; as Arrow, the bytes plus an offset each). Integer ids
    (row positions) are returned as they are."""
    if pd.api.types.is_integer_dtype(table["id"].dtype):  # positions (curate's tables): passed as they are
        return table["id"].to_numpy()
    return table["id"].astype("str").array


# Signal classes that declare which of their columns play the toxicity role (``toxicity_role``): the
# other columns of hf_classifier are per-label probabilities, safe labels included.
_DECLARED_ROLES: dict[str, tuple[str, ...]] = {HFClassifierSignal.name: HFClassifierSignal.toxicity_role}


def toxicity_role(signal: str) -> tuple[str, ...] | None:
    """The columns of ``signal`` that are P(toxic), as its class declares them; None: every column is (the
    trained toxicity signals and profanity, whose columns are all toxicity categories)."""
    return _DECLARED_ROLES.get(signal)


def toxicity_columns(table: pd.DataFrame, signals: Iterable[str] = TOXICITY_SIGNALS) -> list[str]:
    """Attribute columns of the toxicity signals present in ``table`` (``<signal>__<category>``), only the
    columns a signal declares as its toxicity role when it declares one (``toxicity_role``)."""
    roles = {s: toxicity_role(s) for s in signals}
    out = []
    for c in table.columns:
        if not isinstance(c, str):
            continue
        sig, sep, col = c.partition(SEP)
        if sep and sig in roles:
            role = roles[sig]
            if role is None or col in role:
                out.append(c)
    return out


def apply_calibrator(calibrator: object, column: str, values: np.ndarray) -> np.ndarray:
    """Map raw scores through a calibrator (a mapping column -> calibrator, or one for every column).

    A calibrator is anything with ``predict(x)``, ``transform(x)`` or ``__call__(x)`` returning calibrated
    probabilities (``dynacure.signals.calibration.IsotonicCalibrator`` has ``predict``).
    """
    if calibrator is None:
        return values
    cal = calibrator.get(column) if isinstance(calibrator, dict) else calibrator
    if cal is None:
        return values
    for meth in ("predict", "transform"):
        fn = getattr(cal, meth, None)
        if callable(fn):
            return np.asarray(fn(values), dtype=np.float64)
    if callable(cal):
        return np.asarray(cal(values), dtype=np.float64)
    raise TypeError(f"calibrator for {column!r} has no predict/transform/__call__: {type(cal).__name__}")


def max_toxicity(
    table: pd.DataFrame, columns: Iterable[str] | None = None, calibrator: object = None
) -> np.ndarray:
    """Per document, the max (calibrated) score over the toxicity categories; error if none is present."""
    cols = list(columns) if columns is not None else toxicity_columns(table)
    present = [c for c in cols if c in table.columns]
    if not present:
        raise ValueError(
            f"no toxicity column in the candidate table (looked for {cols or list(TOXICITY_SIGNALS)}"
            f"); score the corpus with a toxicity signal first (e.g. `dynacure score --signals "
            f"toxicity_ngram`)"
        )
    mats = []
    for c in present:
        v = pd.to_numeric(table[c], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(v).any():
            raise ValueError(f"column {c!r} has {int(np.isnan(v).sum())} missing scores")
        mats.append(apply_calibrator(calibrator, c, v))
    if len(mats) == 1:  # may be a view of the table's column: clip into a new array
        return np.clip(mats[0], 0.0, 1.0)
    out = np.max(np.vstack(mats), axis=0)
    return np.clip(out, 0.0, 1.0, out=out)


def token_counts(table: pd.DataFrame) -> np.ndarray:
    return pd.to_numeric(table["n_tokens"]).to_numpy(dtype=np.int64)
