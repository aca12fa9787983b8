"""Sizes and optimiser settings of the small GPT: named presets plus the config model that stores them.

``nano`` is for tests, ``tiny`` trains in minutes on 2 CPU cores (~1.3M parameters) and ``small`` is the
largest that is still practical on CPU (~5.3M parameters). ``base`` is ``small`` with dropout, the size of
the pre-trained base learner (``dynacure pretrain``) that experiment cells fine-tune.
"""

from __future__ import annotations

import math

from pydantic import Field, model_validator

from dynacure.config import StrictModel


class OptimConfig(StrictModel):
    """AdamW with linear warmup, cosine decay to ``min_lr_ratio * lr`` and gradient-norm clipping."""

    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0, description="final LR as a share of lr")
    warmup_steps: int = Field(50, ge=0)
    decay_steps: int = Field(5000, ge=1, description="cosine horizon; train() sets it to the planned steps")
    weight_decay: float = Field(0.1, ge=0.0)
    beta1: float = Field(0.9, ge=0.0, lt=1.0)
    beta2: float = Field(0.95, ge=0.0, lt=1.0)
    grad_clip: float = Field(1.0, gt=0)

    def lr_at(self, step: int) -> float:
        """Learning rate for optimiser step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, self.decay_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.lr * (
            self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        )


class GPTConfig(OptimConfig):
    """Model dimensions and training hyper-parameters of a ``TinyGPT``."""

    preset: str = "custom"
    vocab_size: int = Field(4096, ge=260, description="BPE vocabulary target (256 bytes + specials + merges)")
    n_ctx: int = Field(64, ge=8, description="context length in tokens")
    d_model: int = Field(128, ge=8)
    n_layer: int = Field(4, ge=1)
    n_head: int = Field(4, ge=1)
    mlp_ratio: int = Field(4, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> GPTConfig:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_head={self.n_head}")
        return self


PRESETS: dict[str, GPTConfig] = {
    "nano": GPTConfig(
        preset="nano",
        vocab_size=2048,
        n_ctx=64,
        d_model=64,
        n_layer=2,
        n_head=2,
        batch_size=16,
        lr=3e-3,
        warmup_steps=5,
        decay_steps=1000,
    ),
    "tiny": GPTConfig(
        preset="tiny",
        vocab_size=4096,
        n_ctx=64,
        d_model=128,
        n_layer=4,
        n_head=4,
        batch_size=64,
        lr=3e-3,
        warmup_steps=50,
        decay_steps=5000,
    ),
    "small": GPTConfig(
        preset="small",
        vocab_size=8192,
        n_ctx=128,
        d_model=256,
        n_layer=4,
        n_head=4,
        batch_size=32,
        lr=1.5e-3,
        warmup_steps=100,
        decay_steps=5000,
    ),
    "base": GPTConfig(
        preset="base",
        vocab_size=8192,
        n_ctx=128,
        d_model=256,
        n_layer=4,
        n_head=4,
        dropout=0.1,
        batch_size=32,
        lr=2e-3,
        warmup_steps=100,
        decay_steps=5000,
    ),
}


def get_preset(name: str, **overrides: object) -> GPTConfig:
    """A copy of preset ``name`` with ``overrides`` applied (validated)."""
    if name not in PRESETS:
        raise ValueError(f"unknown learner preset {name!r}; choose one of {sorted(PRESETS)}")
    data = PRESETS[name].model_dump()
    data.update(overrides)
    return GPTConfig.model_validate(data)
