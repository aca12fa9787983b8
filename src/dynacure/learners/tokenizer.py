"""Byte-level BPE tokenizer for the small GPT, trained with the ``tokenizers`` library on the given texts.

Byte-level means every string is encodable (no unknown tokens). Two special tokens: ``<|endoftext|>``
(id 0; document separator and start token) and ``<|pad|>`` (id 1; never scored, never sampled).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOT = "<|endoftext|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = (EOT, PAD)


class BPETokenizer:
    """Thin wrapper around a ``tokenizers.Tokenizer`` with the ids the learner needs."""

    def __init__(self, tok: Tokenizer) -> None:
        self.tok = tok
        eot, pad = tok.token_to_id(EOT), tok.token_to_id(PAD)
        if eot is None or pad is None:
            raise ValueError(f"tokenizer lacks the special tokens {EOT!r} and {PAD!r}")
        self.eot_id: int = eot
        self.pad_id: int = pad

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2) -> BPETokenizer:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(texts, trainer)
        return cls(tok)

    @classmethod
    def from_file(cls, path: str | Path) -> BPETokenizer:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{p}: tokenizer file not found")
        try:
            return cls(Tokenizer.from_file(str(p)))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
            raise ValueError(f"{p}: not a valid tokenizer.json: {exc}") from exc

    def to_json(self) -> str:
        return self.tok.to_str()

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        return [e.ids for e in self.tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return self.tok.decode_batch([list(x) for x in ids], skip_special_tokens=True)
