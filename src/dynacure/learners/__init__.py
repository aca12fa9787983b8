"""Learners: the language models trained on curated data (a small GPT written here, and an HF adapter).

``load_learner(path)`` opens any saved learner folder: one written by ``TinyGPT.save`` or
``HFLearner.save`` (told apart by ``learner.json``), or a plain Hugging Face model folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from dynacure.learners.base import Learner


def load_learner(path: str | Path, device: str | None = None) -> Learner:
    """Open the learner saved in ``path`` (ready to evaluate or to resume training)."""
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no saved learner here (expected a folder)")
    meta_path = p / "learner.json"
    if meta_path.exists():
        try:
            kind = json.loads(meta_path.read_text(encoding="utf-8")).get("kind")
        except json.JSONDecodeError as exc:
            raise ValueError(f"{meta_path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
        if kind == "tiny_gpt":
            from dynacure.learners.tiny_gpt import TinyGPT

            return TinyGPT.load(p, device=device)
        if kind == "hf":
            from dynacure.learners.hf import HFLearner

            return HFLearner.from_pretrained(p, device=device)
        raise ValueError(f"{meta_path}: unknown learner kind {kind!r} (expected 'tiny_gpt' or 'hf')")
    if (p / "config.json").exists():
        from dynacure.learners.hf import HFLearner

        return HFLearner.from_pretrained(p, device=device)
    raise FileNotFoundError(f"{p}: neither learner.json nor a Hugging Face config.json found")


__all__ = ["Learner", "load_learner"]
