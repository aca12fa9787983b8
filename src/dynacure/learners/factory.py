"""``build_learner``: the one way a fresh learner is made (experiment cells, the loop, adaptivity, ``dynacure
train``), so a learner of the same spec and seed starts from the same weights wherever it is built.

A ``LearnerSpec`` says which kind: a local Hugging Face causal LM (``hf_path``), a pre-trained TinyGPT base
to fine-tune (``base``), a TinyGPT of ``preset`` over a stored tokenizer (``tokenizer``), or else a TinyGPT
of ``preset`` with a BPE tokenizer trained on the texts handed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynacure.learners.base import Learner


@dataclass(frozen=True)
class LearnerSpec:
    preset: str = "tiny"  # TinyGPT size (learners.presets)
    hf_path: str | Path | None = None  # a local Hugging Face causal LM folder: wins over the rest
    base: Path | None = None  # a built pre-trained base (learners.pretrain) fine-tuned with a fresh optimizer
    tokenizer: Path | None = None  # a stored BPE tokenizer (tokenizer.json) shared by every learner built
    device: str | None = None  # None: the best device available (learners.causal_lm.pick_device)
    overrides: Mapping[str, Any] = field(default_factory=dict)  # preset fields (batch_size, lr, warmup_steps)


def build_learner(spec: LearnerSpec, seed: int, texts: Sequence[str] | None = None) -> Learner:
    """A fresh learner of ``spec`` initialised with ``seed``; ``texts`` train its tokenizer when the spec
    names none (a TinyGPT of ``spec.preset``; ValueError without texts)."""
    if spec.hf_path is not None:
        from dynacure.learners.hf import HFLearner

        return HFLearner.from_pretrained(str(spec.hf_path), device=spec.device, seed=seed)
    from dynacure.learners.tiny_gpt import TinyGPT

    overrides = dict(spec.overrides)
    if spec.base is not None:
        return TinyGPT.from_base(spec.base, seed=seed, device=spec.device, **overrides)
    if spec.tokenizer is not None:
        from dynacure.learners.presets import get_preset
        from dynacure.learners.tokenizer import BPETokenizer

        config = get_preset(spec.preset, **overrides)
        return TinyGPT(config, BPETokenizer.from_file(spec.tokenizer), seed=seed, device=spec.device)
    if texts is None:
        raise ValueError("build_learner: a TinyGPT without a stored tokenizer needs texts to train one on")
    return TinyGPT.create([str(t) for t in texts], preset=spec.preset, seed=seed, device=spec.device,
                          **overrides)
