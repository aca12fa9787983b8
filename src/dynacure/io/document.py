"""The unit of data: a document with a stable id, its text, where it came from and free metadata."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Document:
    """One training document.

    ``meta`` is free-form; gold labels kept for analysis (e.g. ``meta["toxic"]``) must never be read by a
    selector or a reward, only by reports and audits.
    """

    id: str
    text: str
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "source": self.source, "meta": self.meta}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Document:
        return cls(id=str(rec["id"]), text=rec["text"], source=str(rec.get("source", "")),
                   meta=rec.get("meta") or {})


def derive_id(source: str, position: int | str) -> str:
    """A stable id from where a document was read: same file and position give the same id on every run."""
    digest = hashlib.sha1(f"{source}\x00{position}".encode()).hexdigest()[:16]
    return f"{digest}"


def count_tokens(text: str) -> int:
    """Whitespace tokens: the budget unit every selector shares, independent of any learner's tokenizer."""
    return len(text.split())
