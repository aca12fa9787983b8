"""``source_filter``: drop every document of the listed sources, then random fill to the token budget.

The cheap rule every corpus builder tries first: a blocklist of whole domains, no model at all. By default
it drops the pool sources of the toxicity datasets (``tweeteval_offensive``, ``tweeteval_hate``,
``davidson``, ``jigsaw``; see ``dynacure.io.pool.POOL_SOURCES``), so it shows what a safety gain costs when
it is bought by throwing a domain away (``domain_perplexity`` charges for it). A dropped document gets
reason ``source:<name>``; the other documents are sampled uniformly at random (seeded, as ``random``) until
the budget is used (reason ``kept``), the rest get reason ``budget``. Only the ``source`` column is read.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from dynacure.selectors import register_selector
from dynacure.selectors.base import Selection, SelectionContext, Selector, SelectorKind
from dynacure.selectors.budget import check_budget, keep_reasons, sample_to_budget, unit_weights
from dynacure.selectors.common import check_table, table_ids, token_counts

log = logging.getLogger(__name__)

# The pool sources built from the toxicity-labelled datasets (dynacure.io.pool).
TOXICITY_SOURCES = ("tweeteval_offensive", "tweeteval_hate", "davidson", "jigsaw")


@register_selector("source_filter")
class SourceFilterSelector(Selector):
    name: ClassVar[str] = "source_filter"
    kind: ClassVar[SelectorKind] = "rule"
    signals: tuple[str, ...] = ()

    def __init__(self, sources: list[str] | tuple[str, ...] | None = None, n_draws: int = 32) -> None:
        if sources is None:
            sources = TOXICITY_SOURCES
        if isinstance(sources, str) or not all(isinstance(s, str) and s for s in sources):
            raise ValueError(f"source_filter: 'sources' must be a list of source names, got {sources!r}")
        self.sources = list(dict.fromkeys(sources))
        self.n_draws = int(n_draws)

    def select(self, table: pd.DataFrame, ctx: SelectionContext) -> Selection:
        check_budget(ctx.budget)
        check_table(table, ("id", "n_tokens", "source"))
        n = len(table)
        # Category codes, when the table has them (curate's): one comparison per source, no string per doc.
        src = table["source"].astype("category")
        codes = src.cat.codes.to_numpy()
        cats = [str(c) for c in src.cat.categories]
        listed = [i for i, c in enumerate(cats) if c in self.sources]
        absent = [s for s in self.sources if s not in cats]
        if absent:  # a typo would silently drop nothing: say so
            log.warning("source_filter: no document has source %s (sources present: %s)",
                        ", ".join(absent), ", ".join(cats[:20]))
        dropped = np.isin(codes, listed)
        res = sample_to_budget(None, token_counts(table), ctx.budget, ctx.seed, eligible=~dropped,
                               n_draws=self.n_draws)
        reason = keep_reasons(res.keep, "kept")
        for i in listed:
            reason[codes == i] = f"source:{cats[i]}"
        return Selection(table_ids(table), res.probability, unit_weights(n), res.keep, reason)

    def params(self) -> dict[str, Any]:
        return {"sources": list(self.sources), "n_draws": self.n_draws}
