"""The closed loop with any Learner: a small Hugging Face causal LM built here is the one trained and probed.

The model is a GPT-2 of one layer (32-wide) with a byte-level BPE tokenizer trained on the synthetic pool,
saved to a temporary folder and loaded with ``learners/hf.py``'s ``HFLearner`` (nothing is downloaded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dynacure.loop.selectors import PPOSelector
from dynacure.selectors.base import SelectionContext

pytest.importorskip("transformers")

STEPS = 8
LOOP = {
    "steps": STEPS,
    "candidates": 16,
    "train_batch": 4,
    "probe_every": 4,
    "refine_every": 8,
    "sample_size": 200,
    "probes": {"n_prompts": 4, "max_new_tokens": 6, "n_heldout": 8, "probe_set_size": 16, "al_seed_size": 8},
}


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory, pool) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    table, _ = pool
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(table["text"]), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    torch.manual_seed(0)
    eos = tok.token_to_id("<|endoftext|>")
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=64, n_embd=32, n_layer=1, n_head=2,
                   bos_token_id=eos, eos_token_id=eos)
    )
    out = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(str(out), safe_serialization=True)
    fast.save_pretrained(str(out))
    return out


def _hf(folder: Path):
    from dynacure.learners.hf import HFLearner

    return HFLearner.from_pretrained(folder, device="cpu", seed=0)


def _weights(learner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in learner.model.state_dict().items()}


def _check_selection(table, sel, budget):
    nt = table["n_tokens"].to_numpy()
    assert len(sel.keep) == len(table) and sel.keep.any()
    assert nt[sel.keep].sum() <= budget * nt.sum()
    assert np.all((sel.probability >= 0) & (sel.probability <= 1))


def test_loop_trains_and_probes_the_hf_learner_handed_in(pool, hf_folder):
    """curate --learner reaches the loop through SelectionContext.learner; the caller's model is untouched."""
    from dynacure.learners.hf import HFLearner

    table, _ = pool
    given = _hf(hf_folder)
    before = _weights(given)
    selector = PPOSelector(use_pairs=False, toxicity_signal="profanity", **LOOP)
    sel = selector.select(table, SelectionContext(budget=0.5, seed=0, learner=given))

    learner = selector.loop_learner
    assert isinstance(learner, HFLearner) and learner is not given
    assert learner.step == STEPS  # one optimiser step per env step
    after = _weights(learner)
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(moved) > len(before) // 2  # the loop trained the HF model...
    assert all(torch.equal(before[k], v) for k, v in _weights(given).items())  # ...on a copy
    assert given.step == 0

    hist = selector.history
    assert len(hist) == STEPS and all(np.isfinite(h["loss"]) for h in hist)
    probed = [h for h in hist if "probe_toxicity" in h]
    assert [h["step"] for h in probed] == [4, 8]  # the probes generated with and scored the HF model
    assert all(0 <= h["probe_toxicity"] <= 1 and np.isfinite(h["probe_heldout_loss"]) for h in probed)
    assert selector.cost is not None and selector.cost["train_positions"] > 0
    assert selector.cost["params"] == sum(p.numel() for p in learner.model.parameters())
    _check_selection(table, sel, 0.5)


def test_without_a_learner_the_loop_trains_its_own_small_gpt(pool):
    from dynacure.learners.tiny_gpt import TinyGPT

    table, _ = pool
    selector = PPOSelector(use_pairs=False, toxicity_signal="profanity", **{**LOOP, "steps": 2})
    sel = selector.select(table, SelectionContext(budget=0.5, seed=0))
    assert isinstance(selector.loop_learner, TinyGPT) and selector.loop_learner.step == 2
    _check_selection(table, sel, 0.5)


def test_own_ignores_the_learner_and_experiment_requires_one(pool, hf_folder):
    from dynacure.learners.tiny_gpt import TinyGPT

    table, _ = pool
    own = {**LOOP, "steps": 2}
    selector = PPOSelector(use_pairs=False, toxicity_signal="profanity", learner="own", **own)
    selector.select(table, SelectionContext(budget=0.5, seed=0, learner=_hf(hf_folder)))
    assert isinstance(selector.loop_learner, TinyGPT)
    with pytest.raises(ValueError, match="learner='experiment' needs a learner handed in"):
        PPOSelector(use_pairs=False, learner="experiment", **LOOP).select(table, SelectionContext(budget=0.5))
    with pytest.raises(ValueError, match="learner must be 'own' or 'experiment'"):
        PPOSelector(learner="mine")


def test_experiment_hands_the_loop_a_fresh_learner_of_its_kind(pool, hf_folder, tmp_path, monkeypatch):
    """select_stage with learner.hf_path and the strategy param learner = "experiment"."""
    from dynacure.experiments import runner
    from dynacure.experiments.cells import Cell
    from dynacure.experiments.config import load_experiment_config
    from dynacure.learners.hf import HFLearner

    (tmp_path / "x.toml").write_text(
        f"""
format_version = 1
name = "hf-loop"
seeds = [0]
budgets = [0.5]

[corpus]
kind = "demo"

[scoring]
signals = ["profanity", "alignment", "quality"]

[[strategies]]
name = "ppo"
params = {{ learner = "experiment", toxicity_signal = "profanity", use_pairs = false }}

[learner]
hf_path = "{hf_folder}"
train = false
"""
    )
    cfg = load_experiment_config(tmp_path / "x.toml")
    built: list = []
    real = runner.make_learner

    def recording(*args, **kwargs):  # the real factory; only records what it built
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(runner, "make_learner", recording)
    table, _ = pool
    params = {**cfg.strategies[0].params, **LOOP}
    cell = Cell("ppo", "ppo", params, seed=0, budget=0.5, weights={"safety": 0.5, "alignment": 0.3,
                                                                   "utility": 0.2})
    out = runner.select_stage(cfg, runner.Workspace(tmp_path / "runs"), cell, table, [])
    assert len(built) == 1 and isinstance(built[0], HFLearner)
    assert built[0].step == STEPS  # the fresh learner is the one the loop trained (no copy needed)
    manifest = out.selection_manifest
    assert len(manifest) == len(table) and (manifest["decision"] == "keep").any()
    assert len(out.policy_log["loss"]) == STEPS
