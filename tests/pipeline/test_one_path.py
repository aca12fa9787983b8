"""ONE PATH: an experiment cell trains on exactly the text ``dynacure curate`` writes for the same strategy,
seed and budget: the classifier's re-route tags and PII redaction included, in the same order, with the
same loss weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dynacure.learners.training as training
from dynacure.experiments.config import experiment_config_from_dict
from dynacure.experiments.runner import run_experiment
from dynacure.io.demo_corpus import generate_demo_corpus
from dynacure.io.document import Document
from dynacure.io.readers import read_documents
from dynacure.io.writers import write_corpus
from dynacure.pipeline.curate import curate

SEED, BUDGET = 3, 0.8
PARAMS = {"signal": "profanity"}  # buckets from the profanity score: some documents land in 3-4 (re-route)


class _Captured(Exception):
    """Stops the cell once the learner has been handed its training data."""


def _corpus(path: Path) -> Path:
    docs = generate_demo_corpus(n_docs=240, toxic_share=0.5, low_quality_share=0.1, seed=0)
    # PII in every fifth document, so the redaction shows in both paths
    docs = [Document(d.id, d.text + (f" mail me at user{i}@example.com or call 555-867-{5309 + i:04d}"
                                     if i % 5 == 0 else ""), d.source, d.meta) for i, d in enumerate(docs)]
    write_corpus(docs, path, shard_size=100)
    return path


def test_a_cell_trains_on_the_text_curate_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = _corpus(tmp_path / "corpus")
    cfg = experiment_config_from_dict({
        "format_version": 1, "name": "one-path", "seeds": [SEED], "budgets": [BUDGET], "target_size": 10,
        "workers": 1,
        "corpus": {"kind": "path", "path": str(corpus)},
        "scoring": {"signals": ["profanity"]},
        "strategies": [{"name": "classifier", "params": PARAMS, "redact_pii": True}],
        "learner": {"preset": "nano", "max_tokens": 100},
        "evaluation": {"suites": ["perplexity"]},
    })
    handed: dict[str, object] = {}

    def capture(learner, texts, weights=None, **kwargs):
        handed["texts"], handed["weights"] = list(texts), np.asarray(weights, dtype=float)
        raise _Captured

    monkeypatch.setattr(training, "train", capture)
    with pytest.raises(_Captured):
        run_experiment(cfg, tmp_path / "runs")

    res = curate(corpus, tmp_path / "curated", "classifier", BUDGET,
                 attributes=tmp_path / "runs" / "attributes", seed=SEED, redact_pii=True, params=PARAMS)
    written = list(read_documents(tmp_path / "curated"))
    texts = handed["texts"]
    assert texts == [d.text for d in written]
    np.testing.assert_array_equal(handed["weights"], [d.meta.get("curate_weight", 1.0) for d in written])
    # both transforms happened, so the comparison covers them
    assert res.summary["kept_by_reason"].get("reroute", 0) > 0
    assert sum(t.startswith("<|harmful|> ") for t in texts) == res.summary["kept_by_reason"]["reroute"]
    assert res.summary["pii_redacted"]["email"] > 0
    assert any("[EMAIL]" in t for t in texts) and not any("@example.com" in t for t in texts)
