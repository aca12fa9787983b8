"""Adapter that makes any Hugging Face causal LM in a LOCAL folder a dynacure ``Learner`` (for GPU runs).

Nothing is downloaded: model and tokenizer are read with ``local_files_only=True`` and weights only from
safetensors. Training (packed blocks by default, or one row per document), weights and scoring follow
``causal_lm`` exactly as for the small GPT: packed rows of ``n_ctx + 1`` tokens joined by the tokenizer's EOS,
all-ones attention mask, default position ids (so attention and positions run across documents in a row,
as Hugging Face's ``group_texts`` does). The document start token is the tokenizer's BOS (else its EOS, as
GPT-2 does). ``save`` writes the model
with ``save_pretrained`` (safetensors), the tokenizer, ``optimizer.safetensors`` and ``learner.json``
(format_version, optimiser settings, step), so training resumes from a saved folder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from dynacure.io.atomic import atomic_path, write_json_atomic
from dynacure.io.jsonfile import read_versioned
from dynacure.learners.causal_lm import CausalLMLearner, pick_device
from dynacure.learners.presets import OptimConfig

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "hf"
_GEN_ROWS = 256


class HFLearner(CausalLMLearner):
    """A ``transformers`` causal LM behind the ``Learner`` interface."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        optim: OptimConfig | None = None,
        device: str | None = None,
        seed: int = 0,
        max_length: int = 1024,
    ) -> None:
        self.device = pick_device(device)
        self.model = model.to(self.device)
        self.tokenizer = tokenizer
        self.optim = optim or OptimConfig(
            batch_size=8, lr=5e-5, warmup_steps=20, decay_steps=5000, weight_decay=0.0, beta2=0.999
        )
        eos = tokenizer.eos_token_id
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
        if bos is None or eos is None:
            raise ValueError(
                "the tokenizer defines neither a BOS nor an EOS token; dynacure needs one to mark "
                "document starts and ends"
            )
        self.bos_id, self.eos_id = int(bos), int(eos)
        self.pad_id = int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else self.eos_id
        cfg = model.config
        positions = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None) or 1024
        self.n_ctx = int(min(positions, max_length))
        self.seed = seed
        self.step = 0
        self._rng = np.random.default_rng(seed)
        self.optimizer, self._param_order = self._make_optimizer()

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | None = None,
        seed: int = 0,
        optim: OptimConfig | None = None,
        max_length: int = 1024,
        dtype: torch.dtype | None = None,
    ) -> HFLearner:
        """Load model and tokenizer from a local folder; a folder saved by ``save`` also resumes training."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        p = Path(path)
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: model folder not found (HFLearner loads local folders only)")
        meta = _read_meta(p) if (p / "learner.json").exists() else None
        kwargs: dict[str, Any] = {"local_files_only": True, "use_safetensors": True}
        if dtype is not None:
            kwargs["dtype"] = dtype
        model = AutoModelForCausalLM.from_pretrained(str(p), **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
        if meta is not None:
            optim = optim or OptimConfig.model_validate(meta["optim"])
            max_length = int(meta.get("n_ctx", max_length))
            seed = int(meta.get("seed", seed))
        learner = cls(model, tokenizer, optim=optim, device=device, seed=seed, max_length=max_length)
        if meta is not None:
            learner._restore_state(p, meta)
        return learner

    def _make_optimizer(self) -> tuple[torch.optim.AdamW, list[str]]:
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (decay if p.dim() >= 2 else no_decay).append((name, p))
        groups = [
            {"params": [p for _, p in decay], "weight_decay": self.optim.weight_decay},
            {"params": [p for _, p in no_decay], "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(
            groups, lr=self.optim.lr, betas=(self.optim.beta1, self.optim.beta2), foreach=False
        )
        return opt, [n for n, _ in decay] + [n for n, _ in no_decay]

    # ---- CausalLMLearner hooks ----------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        return [list(x) for x in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def _logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask.long()).logits

    def _module(self) -> torch.nn.Module:
        return self.model

    # ---- generation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        num_samples: int = 1,
        max_new_tokens: int = 20,
        top_p: float = 0.9,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> list[list[str]]:
        from transformers import GenerationConfig

        self.check_generation(num_samples, max_new_tokens, top_p)
        greedy = temperature <= 0
        # Explicit config: a model's own generation defaults (top_k=50, penalties) must not leak in.
        gcfg = GenerationConfig(
            do_sample=not greedy,
            top_p=None if greedy else top_p,
            top_k=None,
            temperature=None if greedy else temperature,
            max_new_tokens=max_new_tokens,
            num_return_sequences=num_samples,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_id,
            bos_token_id=self.bos_id,
        )
        room = self.n_ctx - max_new_tokens
        encoded = [([self.bos_id, *ids])[-room:] for ids in self.encode(prompts)]
        out: list[list[str]] = [[] for _ in prompts]
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
        per_chunk = max(1, _GEN_ROWS // num_samples)
        was_training = self.model.training
        self.model.eval()
        devices = [torch.device(self.device).index or 0] if self.device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for c in range(0, len(order), per_chunk):
                chunk = order[c : c + per_chunk]
                rows = [encoded[i] for i in chunk]
                width = max(len(r) for r in rows)
                idx = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for j, r in enumerate(rows):
                    idx[j, width - len(r) :] = torch.tensor(r)
                    mask[j, width - len(r) :] = 1
                seqs = self.model.generate(
                    input_ids=idx.to(self.device), attention_mask=mask.to(self.device), generation_config=gcfg
                )
                new = seqs[:, width:].tolist()
                cut = [row[: row.index(self.eos_id)] if self.eos_id in row else row for row in new]
                texts = self.tokenizer.batch_decode(cut, skip_special_tokens=True)
                for j, i in enumerate(chunk):
                    out[i] = texts[j * num_samples : (j + 1) * num_samples]
        self.model.train(was_training)
        return out

    # ---- persistence --------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(out))
        self.tokenizer.save_pretrained(str(out))
        flat: dict[str, torch.Tensor] = {}
        state = self.optimizer.state_dict()["state"]
        for i, name in enumerate(self._param_order):
            for key, value in state.get(i, {}).items():
                t = value if torch.is_tensor(value) else torch.tensor(float(value))
                flat[f"{name}/{key}"] = t.detach().cpu().contiguous()
        with atomic_path(out / "optimizer.safetensors") as tmp:
            save_file(flat, str(tmp))
        write_json_atomic(
            out / "learner.json",
            {
                "format_version": FORMAT_VERSION,
                "kind": KIND,
                "optim": self.optim.model_dump(),
                "n_ctx": self.n_ctx,
                "step": self.step,
                "seed": self.seed,
                "rng_state": self._rng.bit_generator.state,
                "model_type": getattr(self.model.config, "model_type", None),
            },
        )

    def restore(self, path: str | Path) -> None:
        from transformers import AutoModelForCausalLM

        p = Path(path)
        meta = _read_meta(p)
        dtype = next(self.model.parameters()).dtype
        model = AutoModelForCausalLM.from_pretrained(
            str(p), local_files_only=True, use_safetensors=True, dtype=dtype
        )
        self.model = model.to(self.device)
        self.optimizer, self._param_order = self._make_optimizer()
        self._restore_state(p, meta)

    def _restore_state(self, p: Path, meta: dict[str, Any]) -> None:
        opt_file = p / "optimizer.safetensors"
        if opt_file.exists():
            flat = load_file(str(opt_file), device="cpu")
            by_name: dict[str, dict[str, torch.Tensor]] = {}
            for key, value in flat.items():
                name, field = key.rsplit("/", 1)
                by_name.setdefault(name, {})[field] = value
            sd = self.optimizer.state_dict()
            sd["state"] = {i: by_name[n] for i, n in enumerate(self._param_order) if n in by_name}
            self.optimizer.load_state_dict(sd)
        self.optim.decay_steps = int(meta["optim"]["decay_steps"])
        self.optim.warmup_steps = int(meta["optim"]["warmup_steps"])
        self.step = int(meta["step"])
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = meta["rng_state"]


def _read_meta(p: Path) -> dict[str, Any]:
    meta_path = p / "learner.json"
    return read_versioned(meta_path, FORMAT_VERSION, kind=KIND)
