"""build_learner: the same spec and seed give the same initial weights whichever way the tokenizer comes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dynacure.learners.factory import LearnerSpec, build_learner

TEXTS = [f"the cat {i} sat on the mat and the dog {i % 7} ran home" for i in range(60)]


def _weights(learner) -> list[torch.Tensor]:
    return [p.detach().clone() for p in learner.model.parameters()]


def test_same_spec_and_seed_same_weights_and_a_stored_tokenizer_is_reused(tmp_path: Path) -> None:
    a = build_learner(LearnerSpec(preset="nano"), seed=3, texts=TEXTS)
    b = build_learner(LearnerSpec(preset="nano"), seed=3, texts=TEXTS)
    c = build_learner(LearnerSpec(preset="nano"), seed=4, texts=TEXTS)
    assert all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(b), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(c), strict=True))
    tok = tmp_path / "tokenizer.json"
    tok.write_text(a.tokenizer.to_json())
    d = build_learner(LearnerSpec(preset="nano", tokenizer=tok, overrides={"lr": 1e-3}), seed=3)
    assert d.tokenizer.encode(TEXTS[0]) == a.tokenizer.encode(TEXTS[0])
    assert d.config.lr == 1e-3
    assert all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(d), strict=True))


def test_without_tokenizer_or_texts_it_refuses() -> None:
    with pytest.raises(ValueError, match="needs texts"):
        build_learner(LearnerSpec(preset="nano"), seed=0)
