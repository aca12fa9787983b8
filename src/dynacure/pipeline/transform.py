"""Transform step: what a kept document's text becomes before it is written or trained on.

In this order: the selection's prefix (the classifier's re-route tag, ``Selection.prefix``), then PII
redaction of the whole text (``signals.pii.redact``) when asked. ``dynacure curate`` writes these texts and
an experiment cell trains on them, through this one step, so both see the same text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from dynacure.selectors.base import Selection


class TextTransform:
    """``apply(row, text)`` for a kept document at table row ``row``. ``stats``: ``rerouted`` (documents
    that got a prefix), ``redacted`` (documents with a redaction) and ``pii:<kind>`` (spans redacted)."""

    def __init__(self, prefix: np.ndarray | None = None, redact_pii: bool = False) -> None:
        self.prefix = prefix
        self.redact: Callable[[str], tuple[str, dict[str, int]]] | None = None
        if redact_pii:
            from dynacure.signals.pii import redact

            self.redact = redact
        self.stats: Counter[str] = Counter()

    @classmethod
    def of(cls, selection: Selection, redact_pii: bool = False) -> TextTransform:
        return cls(selection.prefix, redact_pii)

    def apply(self, row: int, text: str) -> str:
        if self.prefix is not None and self.prefix[row]:
            text = str(self.prefix[row]) + text
            self.stats["rerouted"] += 1
        if self.redact is not None:
            text, counts = self.redact(text)
            if any(counts.values()):
                self.stats["redacted"] += 1
            self.stats.update({f"pii:{k}": n for k, n in counts.items()})
        return text

    def apply_all(self, rows: Iterable[int], texts: Sequence[str]) -> list[str]:
        """The transformed texts of the kept documents at ``rows`` (``texts`` in the same order): the
        per-shard form an executor maps."""
        return [self.apply(int(r), t) for r, t in zip(rows, texts, strict=True)]

    @property
    def pii_redacted(self) -> dict[str, int]:
        """Spans redacted per PII kind (``summary.json``'s ``pii_redacted``)."""
        return {k.removeprefix("pii:"): n for k, n in self.stats.items() if k.startswith("pii:")}
