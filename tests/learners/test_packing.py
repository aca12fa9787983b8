"""Packed training (learners.training.PackedPlan, CausalLMLearner.train_packed_step): full blocks joined by
EOS with no padding, per-token document weights, the max_tokens accounting, exact resume, the Hugging Face
learner on the same path, and the warm-up cap of CausalLMLearner.set_schedule."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dynacure.learners.tiny_gpt import TinyGPT
from dynacure.learners.training import PackedPlan, train

CORPUS = [
    "the red fox jumps over the sleeping dog near the river bank.",
    "seven silver ships sailed north across the cold grey sea.",
    "my grandmother bakes bread every sunday morning before church.",
    "a small robot counts the stars one by one until dawn.",
    "ok",
    "rain again today, the bus was late and my coffee went cold while i waited at the stop for ages.",
]


def make(seed: int = 0, **overrides) -> TinyGPT:
    return TinyGPT.create(CORPUS * 5, preset="nano", seed=seed, device="cpu", **overrides)


def params(m) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.model.state_dict().items()}


def the_stream(ids: list[list[int]], order: np.ndarray, weights: np.ndarray, eos: int) -> tuple[list, list]:
    """``[EOS] d1 [EOS] d2 [EOS] ...`` of the planned visits and the weight of each position (None at 0)."""
    toks, wts = [eos], [None]
    for j in order:
        toks += [*ids[j], eos]
        wts += [float(weights[j])] * (len(ids[j]) + 1)
    return toks, wts


def test_blocks_are_full_eos_separated_and_carry_their_documents_weights() -> None:
    m = make()
    ids = m.encode(CORPUS)
    w = np.array([1.0, 2.0, 0.0, 0.5, 3.0, 1.5])
    block = 16
    plan = PackedPlan(ids, w, None, 500, 1, 4, seed=1, eos_id=m.eos_id, block=block)
    assert plan.n_blocks == 32 and plan.steps == 8  # ceil(500 / 16) blocks, 4 per step
    rows, tw = plan.blocks(0, plan.n_blocks)
    assert rows.shape == (32, block + 1) and tw.shape == (32, block)
    assert not (rows == m.pad_id).any()  # no padding anywhere
    toks, wts = the_stream(ids, plan.order, w, m.eos_id)
    for k in range(plan.n_blocks):
        # consecutive blocks share one token, so every stream token after the first is one target
        assert rows[k].tolist() == toks[k * block: k * block + block + 1]
        assert tw[k].tolist() == wts[k * block + 1: k * block + block + 1]
    assert (rows[:, 1:] == m.eos_id).sum() == sum(1 for t in toks[1:block * 32 + 1] if t == m.eos_id)
    assert set(np.unique(tw)) == {0.0, 0.5, 1.0, 1.5, 2.0, 3.0}
    # a step's blocks, assembled alone, are the same as cut from the whole stream
    part, part_w = plan.blocks(9, 13)
    np.testing.assert_array_equal(part, rows[9:13])
    np.testing.assert_array_equal(part_w, tw[9:13])
    with pytest.raises(IndexError):
        plan.blocks(30, 33)
    # epochs: every planned visit in full, the last block filled from the order's start (no short block)
    once = PackedPlan(ids, w, None, None, 2, 4, seed=1, eos_id=m.eos_id, block=block)
    total = 2 * sum(len(x) + 1 for x in ids)
    assert once.n_blocks == -(-total // block)
    rows, _ = once.blocks(0, once.n_blocks)
    toks, _ = the_stream(ids, once.order, w, m.eos_id)
    assert rows[-1].tolist() == toks[(once.n_blocks - 1) * block: once.n_blocks * block + 1]
    assert sorted(once.order[: 2 * len(ids)].tolist()) == sorted(list(range(len(ids))) * 2)


def test_tokens_seen_follow_the_max_tokens_accounting() -> None:
    m = make()
    tlog = train(m, CORPUS * 4, max_tokens=2000, seed=3, progress=False)
    assert tlog.packed
    # ceil(2000 / 64) full blocks of 64 targets: the budget is overshot by less than one block
    assert tlog.tokens_seen == 32 * 64 and 2000 <= tlog.tokens_seen < 2000 + m.n_ctx
    assert tlog.tokens == [16 * 64, 16 * 64] and tlog.planned_steps == 2
    assert m.positions_trained == tlog.tokens_seen  # every position trained is a real token
    unpacked = make()
    ulog = train(unpacked, CORPUS * 4, max_tokens=2000, seed=3, pack=False, progress=False)
    assert not ulog.packed and ulog.tokens_seen >= 2000 and ulog.steps > tlog.steps
    # epochs: all the stream's targets (each text's tokens and its EOS), rounded up to a block
    m2 = make()
    total = sum(len(x) + 1 for x in m2.encode(CORPUS * 4))
    elog = train(m2, CORPUS * 4, epochs=1, progress=False)
    assert elog.tokens_seen == -(-total // 64) * 64


def test_zero_weight_document_adds_nothing_and_weights_scale_the_loss() -> None:
    m = make()
    ids = m.encode(CORPUS)
    w = np.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    plan = PackedPlan(ids, w, None, 256, 1, 4, seed=0, eos_id=m.eos_id, block=m.n_ctx)
    rows, tw = plan.blocks(0, plan.n_blocks)
    _, wts = the_stream(ids, plan.order, w, m.eos_id)
    n_zero = sum(1 for x in wts[1: plan.n_blocks * m.n_ctx + 1] if x == 0)
    assert (tw == 0).sum() == n_zero > 0

    # reference: plain forward, the loss summed over the other documents' targets only, same 1/n
    ref = make()
    x = torch.tensor(rows)
    nll = F.cross_entropy(ref.model(x[:, :-1]).transpose(1, 2), x[:, 1:], reduction="none")
    keep = torch.tensor(tw) > 0
    expected = nll[keep].sum() / nll.numel()
    ref.model.zero_grad()
    expected.backward()
    torch.nn.utils.clip_grad_norm_(ref.model.parameters(), ref.optim.grad_clip)  # as train_packed_step does
    ref_grad = {k: p.grad.clone() for k, p in ref.model.named_parameters()}

    got = make()
    loss = got.train_packed_step(rows, tw)
    assert loss == pytest.approx(float(expected.detach()), rel=1e-5)
    for k, p in got.model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grad[k], atol=1e-6, rtol=1e-4, msg=lambda s, k=k: f"{k}: {s}")
    # weights scale the loss, not renormalised: all 0.5 is half of all 1
    ones = make().train_packed_step(rows, np.ones_like(tw))
    assert make().train_packed_step(rows, 0.5 * np.ones_like(tw)) == pytest.approx(0.5 * ones, rel=1e-5)
    with pytest.raises(ValueError, match="token_weights"):
        make().train_packed_step(rows, tw[:, 1:])
    with pytest.raises(ValueError, match=">= 0"):
        make().train_packed_step(rows, -tw)

    # through train(): all-zero weights leave the weights alone (no weight decay), so weights reach the loss
    still = make(weight_decay=0.0)
    before = params(still)
    tlog = train(still, CORPUS, weights=[0.0] * len(CORPUS), max_tokens=300, progress=False)
    assert tlog.losses == [0.0] * tlog.steps
    for k, v in params(still).items():
        assert torch.equal(v, before[k]), k


class Crash(RuntimeError):
    pass


def test_packed_training_resumes_to_identical_weights(tmp_path) -> None:
    texts, weights = CORPUS * 6, np.linspace(0.2, 2.0, len(CORPUS) * 6)
    kw = {"weights": weights, "max_tokens": 4000, "seed": 5, "batch_size": 4, "progress": False}
    straight = make(seed=1, dropout=0.1)
    slog = train(straight, texts, **kw)
    assert slog.steps == 16

    def crash(step: int, _log) -> None:
        if step == 10:
            raise Crash

    first = make(seed=1, dropout=0.1)
    with pytest.raises(Crash):
        train(first, texts, checkpoint_dir=tmp_path / "ck", checkpoint_every=4, callback=crash,
              callback_every=5, **kw)
    resumed = make(seed=1, dropout=0.1)
    rlog = train(resumed, texts, checkpoint_dir=tmp_path / "ck", checkpoint_every=4, **kw)
    assert rlog.resumed_from_step == 8 and rlog.packed
    np.testing.assert_allclose(rlog.losses, slog.losses, rtol=1e-5)
    assert rlog.tokens_seen == slog.tokens_seen
    for k, v in params(resumed).items():
        torch.testing.assert_close(v, params(straight)[k], atol=1e-6, rtol=1e-5)
    # the checkpoint of a packed run is not resumed by an unpacked one
    with pytest.raises(ValueError, match="packing"):
        train(make(seed=1, dropout=0.1), texts, checkpoint_dir=tmp_path / "ck", pack=False, **kw)


def test_the_hf_learner_trains_on_packed_blocks(tmp_path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from dynacure.learners.hf import HFLearner
    from dynacure.learners.presets import OptimConfig

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS * 3, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    eos = tok.token_to_id("<|endoftext|>")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=32, n_embd=32, n_layer=1, n_head=2,
                     bos_token_id=eos, eos_token_id=eos)
    GPT2LMHeadModel(cfg).save_pretrained(str(tmp_path / "m"))
    fast.save_pretrained(str(tmp_path / "m"))
    optim = OptimConfig(batch_size=8, lr=3e-3, warmup_steps=1, weight_decay=0.0)
    hf = HFLearner.from_pretrained(tmp_path / "m", device="cpu", seed=0, optim=optim)
    before = hf.example_losses(CORPUS).mean()
    tlog = train(hf, CORPUS * 10, max_tokens=3000, progress=False)
    assert tlog.packed and tlog.tokens_seen == -(-3000 // 32) * 32 == hf.positions_trained
    assert hf.example_losses(CORPUS).mean() < before - 0.5


def test_warmup_is_cut_to_a_tenth_of_the_planned_steps(caplog) -> None:
    m = make(warmup_steps=50)
    with caplog.at_level(logging.WARNING, logger="dynacure.learners.causal_lm"):
        tlog = train(m, CORPUS * 20, max_tokens=14 * 16 * 64, progress=False)
    assert tlog.steps == 14 and m.optim.warmup_steps == 1
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "warmup_steps 50" in msg and "14 planned steps" in msg and "over 1 steps" in msg
    assert m.optim.lr_at(1) == pytest.approx(m.optim.lr)  # the peak is reached after the warm-up
    caplog.clear()
    ok = make(warmup_steps=5)
    with caplog.at_level(logging.WARNING, logger="dynacure.learners.causal_lm"):
        ok.set_schedule(80)
    assert ok.optim.warmup_steps == 5 and not caplog.records
