"""Engine-test helpers: demo documents as JSONL with broken lines injected; an ATTRS folder's files."""

from __future__ import annotations

import json
from pathlib import Path

from dynacure.io.demo_corpus import generate_demo_corpus

# Lines the reader must quarantine, each with its reason code.
BAD_LINES = [
    ("{not json", "bad_json"),
    ("[1, 2, 3]", "not_object"),
    (json.dumps({"id": "x-empty", "text": ""}), "empty_text"),
    (json.dumps({"id": "x-notext"}), "missing_text"),
]


def write_jsonl_with_bad_lines(path: Path, n_docs: int, seed: int = 0, every: int = 37) -> list[str]:
    """Demo documents as JSONL with a bad line injected every ``every`` lines; returns the good ids."""
    docs = generate_demo_corpus(n_docs, seed=seed)
    ids: list[str] = []
    k = 0
    with path.open("w", encoding="utf-8") as fh:
        for i, d in enumerate(docs):
            if i % every == every - 1:
                fh.write(BAD_LINES[k % len(BAD_LINES)][0] + "\n")
                k += 1
            fh.write(json.dumps({"id": d.id, "text": d.text, "source": d.source}) + "\n")
            ids.append(d.id)
    return ids


def attr_tables(attrs: Path) -> dict[str, bytes]:
    """Every attribute table of an ATTRS folder, by relative path, as bytes."""
    return {p.relative_to(attrs).as_posix(): p.read_bytes() for p in sorted(attrs.glob("*/*.parquet"))}


def done_markers(attrs: Path) -> dict[str, dict]:
    """Every done-marker of an ATTRS folder, by relative path, without its ``seconds`` (wall time)."""
    out = {}
    for p in sorted(attrs.glob("*/_done/*.json")):
        m = json.loads(p.read_text())
        m.pop("seconds")
        out[p.relative_to(attrs).as_posix()] = m
    return out
