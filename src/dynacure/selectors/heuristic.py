"""B1 ``heuristic``: a toxicity threshold plus a keyword blocklist, then random fill to the token budget.

A document is dropped with reason ``toxicity>=T`` when its max toxicity score over the categories present is
at least ``T``, or ``blocklist:<word>`` when its text contains a blocklisted word (whole word, any case);
the passing documents are sampled uniformly at random (seeded) until the budget is used; the rest get
reason ``budget``.

The blocklist match is a per-document text feature (``text_features``): ``curate`` computes it shard by
shard as column ``heuristic__blocklist`` (index of the matched entry, -1 for none), so the texts of a large
corpus are never held; given a table with a ``text`` column instead, ``select`` computes it itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from dynacure.selectors import register_selector
from dynacure.selectors.base import Selection, SelectionContext, Selector, SelectorKind
from dynacure.selectors.budget import (
    check_budget,
    keep_reasons,
    sample_to_budget,
    unit_weights,
)
from dynacure.selectors.common import check_table, max_toxicity, table_ids, token_counts, toxicity_columns
from dynacure.selectors.shard_scores import ShardScores


def load_blocklist(path: str | Path | None = None) -> list[str]:
    """Words/phrases from ``path`` (default: packaged ``blocklist.txt``), lower-cased, comments skipped."""
    if path is None:
        text = resources.files("dynacure.selectors").joinpath("blocklist.txt").read_text(encoding="utf-8")
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: blocklist file not found")
        text = p.read_text(encoding="utf-8")
    words = []
    for line in text.splitlines():
        w = line.split("#", 1)[0].strip().lower()
        if w:
            words.append(w)
    return words


def blocklist_pattern(words: Iterable[str]) -> re.Pattern[str] | None:
    # Longest first so a phrase wins over a word it contains; \b on both sides = whole words only.
    ws = sorted({w for w in words if w}, key=len, reverse=True)
    if not ws:
        return None
    return re.compile(
        r"\b(" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in ws) + r")\b", re.IGNORECASE
    )


@register_selector("heuristic")
class HeuristicSelector(Selector):
    name: ClassVar[str] = "heuristic"
    kind: ClassVar[SelectorKind] = "rule"
    needs_text: ClassVar[bool] = False  # the blocklist feature is computed per shard (text_features)
    signals: tuple[str, ...] = ("profanity",)
    streaming: ClassVar[bool] = True

    def __init__(
        self,
        threshold: float = 0.5,
        blocklist: str | Path | list[str] | None = None,
        toxicity_columns: list[str] | None = None,
        calibrator: object = None,
        n_draws: int = 32,
    ) -> None:
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"heuristic threshold must be in [0, 1], got {threshold}")
        self.threshold = float(threshold)
        self.words = list(blocklist) if isinstance(blocklist, list) else load_blocklist(blocklist)
        self.pattern = blocklist_pattern(self.words)
        # Feature codes index this list of normalised entries (one space between the words of a phrase).
        self.entries = sorted({re.sub(r"\s+", " ", w) for w in self.words})
        self._code = {w: i for i, w in enumerate(self.entries)}
        self.columns = toxicity_columns
        self.calibrator = calibrator
        self.n_draws = int(n_draws)

    def text_features(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``blocklist``: index into ``self.entries`` of the first blocklisted entry in each text, or -1."""
        codes = np.full(len(texts), -1, dtype=np.int32)
        if self.pattern is not None:
            for i, text in enumerate(texts):
                m = self.pattern.search(text)
                if m:
                    codes[i] = self._code[re.sub(r"\s+", " ", m.group(1).lower())]
        return {"blocklist": codes}

    def _blocklist_codes(self, table: pd.DataFrame, candidates: np.ndarray) -> np.ndarray:
        """Feature codes per document; computed here from text (for the ``candidates`` mask only) when the
        table has no feature column."""
        col = self.feature_column("blocklist")
        if col in table.columns:
            return table[col].to_numpy()
        if "text" not in table.columns:
            raise ValueError(f"heuristic needs a 'text' column or the {col!r} feature column")
        codes = np.full(len(table), -1, dtype=np.int32)
        where = np.flatnonzero(candidates)  # only the documents the threshold kept need the slow regex
        texts = table["text"].iloc[where].astype(str).tolist()
        codes[where] = self.text_features(texts)["blocklist"]
        return codes

    def _rules(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(toxic, blocked, blocklist codes) per document: boolean masks, one byte a document."""
        cols = self.columns if self.columns is not None else toxicity_columns(table)
        toxic = max_toxicity(table, cols, self.calibrator) >= self.threshold
        codes = self._blocklist_codes(table, ~toxic)
        return toxic, ~toxic & (codes >= 0), codes

    def _reasons(self, kept: np.ndarray, toxic: np.ndarray, blocked: np.ndarray,
                 codes: np.ndarray) -> np.ndarray:
        """Reason per document: ``kept`` where kept, the rule that dropped it, else the budget's."""
        reason = keep_reasons(kept, "kept")
        reason[toxic] = f"toxicity>={self.threshold:g}"
        if blocked.any():
            labels = np.array(["blocklist:" + w for w in self.entries], dtype=object)
            reason[blocked] = labels[codes[blocked]]
        return reason

    def select(self, table: pd.DataFrame, ctx: SelectionContext) -> Selection:
        check_budget(ctx.budget)
        check_table(table, ("id", "n_tokens"))
        toxic, blocked, codes = self._rules(table)
        passing = ~(toxic | blocked)
        res = sample_to_budget(
            None, token_counts(table), ctx.budget, ctx.seed, eligible=passing, n_draws=self.n_draws
        )
        reason = self._reasons(passing & res.keep, toxic, blocked, codes)
        return Selection(table_ids(table), res.probability, unit_weights(len(table)), res.keep, reason)

    def shard_scores(self, table: pd.DataFrame, ctx: SelectionContext) -> ShardScores:
        toxic, blocked, codes = self._rules(table)
        dropped = self._reasons(np.zeros(len(table), dtype=bool), toxic, blocked, codes)
        return ShardScores(None, "sample", self.n_draws, eligible=~(toxic | blocked), dropped_reason=dropped)

    def params(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "n_blocklist_words": len(self.words), "columns": self.columns}
