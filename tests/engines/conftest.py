"""Fixtures for the engine tests: a small JSONL corpus with broken lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from engines_corpus import write_jsonl_with_bad_lines


@pytest.fixture
def bad_corpus(tmp_path: Path) -> tuple[Path, list[str]]:
    path = tmp_path / "corpus.jsonl"
    return path, write_jsonl_with_bad_lines(path, 300)
