"""Per-document state features for the loop's policies, fitted on the loop sample and reused corpus-wide.

A ``FeatureEncoder`` turns a candidate table (attribute columns ``<signal>__<column>``, ``n_tokens``,
``source``, optionally ``embedding__vector``) into a fixed-width float matrix: standardised scores, log
length, a source one-hot and (state ``scores+embedding``) a PCA projection of the embedding. Everything
it learned (columns, means, sources, projection) is stored as JSON with the policy, so applying the policy
to another shard gives the same columns in the same order.

Missing values: a column with no value at all in the sample (a signal that could not compute, e.g.
``quality`` without a reference LM in older attribute tables) carries nothing, so it is dropped by name
with a warning and recorded in ``dropped`` (stored with the policy) instead of entering as a constant;
the policy then never reads it. A partly missing column is imputed with its sample mean (0 after
standardising), logged with the count. Neither ever reaches the composite reward, which refuses NaN.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from dynacure.io.jsonfile import check_version

log = logging.getLogger(__name__)

EMBEDDING_COLUMN = "embedding__vector"
ENCODER_FORMAT_VERSION = 1
# Preference order for the two bucket axes of the bandit (first present wins).
SAFETY_COLUMNS = (
    "hf_classifier__toxicity",  # the user's own classifier, scored on purpose: first
    "toxicity_transformer__toxicity",
    "toxicity_ngram__toxicity",
    "toxicity_minilm__toxicity",
    "profanity__toxicity",
    "profanity__score",
    "profanity__probability",
)
UTILITY_COLUMNS = ("quality__score", "utility__score", "quality__quality")
ALIGNMENT_COLUMNS = ("alignment__score",)


def score_columns(table: pd.DataFrame) -> list[str]:
    """Numeric attribute columns (``signal__column``), the embedding excluded, in a stable order."""
    cols = []
    for c in table.columns:
        if "__" not in c or c == EMBEDDING_COLUMN:
            continue
        if (
            pd.api.types.is_numeric_dtype(table[c])
            and not pd.api.types.is_bool_dtype(table[c])
            or pd.api.types.is_bool_dtype(table[c])
        ):
            cols.append(c)
    return sorted(cols)


def first_present(table_columns: Any, names: tuple[str, ...]) -> str | None:
    cols = set(table_columns)
    return next((n for n in names if n in cols), None)


def safety_column(table_columns: Any) -> str | None:
    """The toxicity column the bucket axis uses: a known one, else any ``tox*__*`` column."""
    found = first_present(table_columns, SAFETY_COLUMNS)
    if found is None:
        toxic_like = sorted(c for c in table_columns if "__" in c and "tox" in c.split("__")[0])
        found = toxic_like[0] if toxic_like else None
    return found


def usable_columns(table: pd.DataFrame, columns: list[str]) -> tuple[list[str], list[str]]:
    """(columns with at least one value, all-NaN columns dropped by name); logs both kinds of gaps."""
    if not len(table) or not columns:
        return list(columns), []
    missing = table[columns].isna().sum(axis=0)
    dropped = [c for c in columns if missing[c] == len(table)]
    if dropped:
        log.warning(
            "policy features: column(s) %s have no value in any of %d sampled documents (the signal could "
            "not compute them); dropped from the policy's features. Re-score with the signal working to use "
            "them", ", ".join(dropped), len(table))
    partial = {c: int(missing[c]) for c in columns if 0 < missing[c] < len(table)}
    if partial:
        log.info("policy features: missing values imputed with the sample mean: %s", partial)
    return [c for c in columns if c not in dropped], dropped


def token_counts(table: pd.DataFrame) -> np.ndarray:
    if "n_tokens" in table.columns:
        return table["n_tokens"].to_numpy(dtype=np.float64)
    if "text" in table.columns:
        return np.array([len(str(t).split()) for t in table["text"]], dtype=np.float64)
    raise ValueError("candidate table needs an 'n_tokens' or a 'text' column")


class FeatureEncoder:
    """Fitted mapping from a candidate table to policy features (see module docstring)."""

    def __init__(
        self,
        columns: list[str],
        mean: np.ndarray,
        std: np.ndarray,
        sources: list[str],
        len_mean: float,
        len_std: float,
        use_embedding: bool = False,
        emb_mean: np.ndarray | None = None,
        emb_proj: np.ndarray | None = None,
        dropped: list[str] | None = None,
    ) -> None:
        self.columns = list(columns)
        self.dropped = list(dropped or [])  # all-NaN columns left out at fit time (see module docstring)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        self.sources = list(sources)
        self.len_mean = float(len_mean)
        self.len_std = float(len_std)
        self.use_embedding = use_embedding
        self.emb_mean = None if emb_mean is None else np.asarray(emb_mean, dtype=np.float64)
        self.emb_proj = None if emb_proj is None else np.asarray(emb_proj, dtype=np.float64)

    @classmethod
    def fit(
        cls, table: pd.DataFrame, state: str = "scores", max_sources: int = 16, embed_dim: int = 16
    ) -> FeatureEncoder:
        cols, dropped = usable_columns(table, score_columns(table))
        if not cols:
            log.warning("no attribute columns in the candidate table: the policy sees only length and source")
        x = table[cols].to_numpy(dtype=np.float64) if cols else np.zeros((len(table), 0))
        # every kept column has at least one value, so nanmean/nanstd never see an empty slice
        mean = np.nanmean(x, axis=0) if len(x) else np.zeros(len(cols))
        std = np.nanstd(x, axis=0) if len(x) else np.ones(len(cols))
        std = np.where(std < 1e-8, 1.0, std)
        ll = np.log1p(token_counts(table))
        sources: list[str] = []
        if "source" in table.columns:
            vc = table["source"].astype(str).value_counts()
            sources = sorted(vc.index[:max_sources].tolist())
        use_emb = state == "scores+embedding"
        emb_mean = emb_proj = None
        if use_emb:
            if EMBEDDING_COLUMN not in table.columns:
                raise ValueError(
                    f"state 'scores+embedding' needs the column {EMBEDDING_COLUMN!r} "
                    f"(run the 'embedding' signal first)"
                )
            e = _stack_embeddings(table[EMBEDDING_COLUMN])
            emb_mean = e.mean(axis=0)
            k = min(embed_dim, e.shape[1], max(1, e.shape[0] - 1))
            _, s, vt = np.linalg.svd(e - emb_mean, full_matrices=False)
            # scale each component to unit variance so it sits on the same scale as the scores
            scale = s[:k] / np.sqrt(max(1, e.shape[0] - 1))
            emb_proj = (vt[:k].T / np.where(scale < 1e-8, 1.0, scale)).astype(np.float64)
        return cls(
            cols,
            mean,
            std,
            sources,
            float(ll.mean()) if len(ll) else 0.0,
            float(ll.std()) if len(ll) and ll.std() > 1e-8 else 1.0,
            use_emb,
            emb_mean,
            emb_proj,
            dropped,
        )

    @property
    def dim(self) -> int:
        d = len(self.columns) + 1 + len(self.sources) + 1
        if self.use_embedding and self.emb_proj is not None:
            d += self.emb_proj.shape[1]
        return d

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        n = len(table)
        parts = []
        if self.columns:
            missing = [c for c in self.columns if c not in table.columns]
            if missing:
                raise ValueError(
                    f"candidate table lacks attribute columns the policy was trained on: {missing}"
                )
            x = table[self.columns].to_numpy(dtype=np.float64)
            x = (x - self.mean) / self.std
            parts.append(np.clip(np.nan_to_num(x), -5, 5))
        ll = (np.log1p(token_counts(table)) - self.len_mean) / self.len_std
        parts.append(np.clip(ll, -5, 5)[:, None])
        onehot = np.zeros((n, len(self.sources) + 1))
        if "source" in table.columns and self.sources:
            index = {s: i for i, s in enumerate(self.sources)}
            idx = np.array([index.get(str(s), len(self.sources)) for s in table["source"]])
            onehot[np.arange(n), idx] = 1.0
        else:
            onehot[:, -1] = 1.0
        parts.append(onehot)
        if self.use_embedding and self.emb_proj is not None:
            if EMBEDDING_COLUMN not in table.columns:
                raise ValueError(f"candidate table lacks {EMBEDDING_COLUMN!r} (the policy uses embeddings)")
            e = _stack_embeddings(table[EMBEDDING_COLUMN])
            parts.append(np.clip((e - self.emb_mean) @ self.emb_proj, -5, 5))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": ENCODER_FORMAT_VERSION,
            "columns": self.columns,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "sources": self.sources,
            "len_mean": self.len_mean,
            "len_std": self.len_std,
            "use_embedding": self.use_embedding,
            "emb_mean": None if self.emb_mean is None else self.emb_mean.tolist(),
            "emb_proj": None if self.emb_proj is None else self.emb_proj.tolist(),
            "dropped": self.dropped,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FeatureEncoder:
        check_version(d, "feature encoder", ENCODER_FORMAT_VERSION)
        return cls(
            d["columns"],
            np.array(d["mean"]),
            np.array(d["std"]),
            d["sources"],
            d["len_mean"],
            d["len_std"],
            d["use_embedding"],
            None if d["emb_mean"] is None else np.array(d["emb_mean"]),
            None if d["emb_proj"] is None else np.array(d["emb_proj"]),
            d.get("dropped", []),  # policies saved before the field existed dropped nothing
        )


def _stack_embeddings(col: pd.Series) -> np.ndarray:
    rows = [np.asarray(v, dtype=np.float64) for v in col]
    if not rows:
        return np.zeros((0, 1))
    dims = {r.shape for r in rows}
    if len(dims) != 1:
        raise ValueError(f"{EMBEDDING_COLUMN} rows have different shapes: {sorted(dims)[:3]}")
    return np.stack(rows)
