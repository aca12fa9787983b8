"""Hashed n-gram features (word 1-2 grams + char 3-5 grams) rebuilt from plain JSON parameters.

The hashing trick keeps the feature map stateless: nothing but these few numbers must be saved next to the
weights, so models load without pickle and score any text without a vocabulary.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from dynacure.config import StrictModel


class HashingParams(StrictModel):
    """What defines the feature space; saved in each model's ``meta.json``."""

    word_bits: int = 18
    char_bits: int = 18
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (3, 5)
    lowercase: bool = True
    sublinear_tf: bool = True

    @property
    def n_features(self) -> int:
        return 2**self.word_bits + 2**self.char_bits


class NgramFeaturizer:
    """Texts -> sparse CSR matrix: [word block | char block], each block L2-normalised."""

    def __init__(self, params: HashingParams | None = None) -> None:
        self.params = params or HashingParams()
        p = self.params
        # alternate_sign=False keeps counts non-negative so sublinear scaling (log1p) is well defined.
        self._word = HashingVectorizer(
            analyzer="word", ngram_range=tuple(p.word_ngrams), n_features=2**p.word_bits,
            lowercase=p.lowercase, alternate_sign=False, norm=None, token_pattern=r"(?u)\b\w+\b|[^\w\s]",
        )
        self._char = HashingVectorizer(
            analyzer="char_wb", ngram_range=tuple(p.char_ngrams), n_features=2**p.char_bits,
            lowercase=p.lowercase, alternate_sign=False, norm=None,
        )

    @property
    def n_features(self) -> int:
        return self.params.n_features

    def _block(self, vec: HashingVectorizer, texts: list[str]) -> sp.csr_matrix:
        m = vec.transform(texts).astype(np.float32)
        if self.params.sublinear_tf:
            m.data = np.log1p(m.data)
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sp.csr_matrix(sp.diags(1.0 / norms).dot(m), dtype=np.float32)

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        texts = [t if isinstance(t, str) else "" for t in texts]
        return sp.hstack([self._block(self._word, texts), self._block(self._char, texts)], format="csr")

    def to_meta(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json")

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> NgramFeaturizer:
        return cls(HashingParams.model_validate(meta))
