"""The small GPT: it learns, weights act on the loss as documented, cached generation and scoring agree
with plain forward passes, and a saved model resumes training exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dynacure.learners import load_learner
from dynacure.learners.tiny_gpt import TinyGPT, sort_descending

CORPUS = [
    "the red fox jumps over the sleeping dog near the river bank.",
    "seven silver ships sailed north across the cold grey sea.",
    "my grandmother bakes bread every sunday morning before church.",
    "a small robot counts the stars one by one until dawn.",
]


def make(seed: int = 0, **overrides) -> TinyGPT:
    return TinyGPT.create(CORPUS * 5, preset="nano", seed=seed, device="cpu", **overrides)


def params(m: TinyGPT) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.model.state_dict().items()}


def assert_same_params(a: dict, b: dict, atol: float = 1e-5) -> None:
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-4, msg=lambda m, k=k: f"{k}: {m}")


def max_param_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def trained() -> TinyGPT:
    torch.manual_seed(0)
    m = make(warmup_steps=5)
    m.set_schedule(80)
    for _ in range(80):
        m.train_step(CORPUS)
    return m


def test_overfits_and_greedy_generation_reproduces(trained: TinyGPT) -> None:
    losses = trained.example_losses(CORPUS)
    assert losses.shape == (4,)
    assert float(losses.max()) < 0.3, losses
    out = trained.generate(["the red fox jumps", "seven silver ships"], num_samples=2, temperature=0.0,
                           max_new_tokens=20)
    assert out[0] == [" over the sleeping dog near the river bank."] * 2
    assert out[1] == [" sailed north across the cold grey sea."] * 2
    cold = trained.generate(["my grandmother bakes"], num_samples=3, temperature=0.05, seed=3)
    assert cold == [[" bread every sunday morning before church."] * 3]


def test_untrained_model_is_near_uniform() -> None:
    m = make()
    loss = float(np.mean(m.example_losses(CORPUS)))
    assert abs(loss - np.log(m.tokenizer.vocab_size)) < 0.5


def test_zero_weight_example_has_no_influence() -> None:
    a, b, c = CORPUS[0], CORPUS[1], "completely different words that would change the gradient a lot"
    runs = {}
    for name, texts, w in [("ab_10", [a, b], [1.0, 0.0]), ("ac_10", [a, c], [1.0, 0.0]),
                           ("a_half", [a], [0.5]), ("ab_11", [a, b], [1.0, 1.0])]:
        m = make()
        runs[name] = [m.train_step(texts, w) for _ in range(3)], params(m)
    # The zero-weight text's content does not matter, and it counts only in the 1/n batch normalisation.
    assert_same_params(runs["ab_10"][1], runs["ac_10"][1])
    assert_same_params(runs["ab_10"][1], runs["a_half"][1])
    np.testing.assert_allclose(runs["ab_10"][0], runs["a_half"][0], rtol=1e-5)
    assert max_param_diff(runs["ab_10"][1], runs["ab_11"][1]) > 1e-3


def test_weights_scale_the_reported_loss() -> None:
    a, b = CORPUS[0], CORPUS[1]
    l_a = make().train_step([a])
    l_weighted = make().train_step([a, b], [3.0, 0.0])
    assert l_weighted == pytest.approx(1.5 * l_a, rel=1e-5)
    with pytest.raises(ValueError, match="weights"):
        make().train_step([a, b], [1.0])
    with pytest.raises(ValueError, match=">= 0"):
        make().train_step([a, b], [1.0, -1.0])


def full_logprobs(m: TinyGPT, ids: list[int]) -> torch.Tensor:
    """log p(ids[i] | ids[:i]) for i >= 1 from one plain forward pass."""
    x = torch.tensor([ids])
    with torch.no_grad():
        logp = F.log_softmax(m.model(x[:, :-1]).float(), -1)[0]
    return logp.gather(1, x[0, 1:, None])[:, 0]


def test_continuation_logprob_matches_full_forward(trained: TinyGPT) -> None:
    prefixes = ["seven silver ships sailed", "the red fox ", "a small robot"]
    conts = [" north across the cold", "jumps over", " dances"]
    lp, n = trained.continuation_logprob(prefixes, conts)
    for i, (p, c) in enumerate(zip(prefixes, conts, strict=True)):
        p2, c2 = (p.rstrip(), p[len(p.rstrip()):] + c)
        ctx = trained.encode([p2])[0]
        whole = trained.encode([p2 + c2])[0]
        assert whole[:len(ctx)] == ctx
        ref = full_logprobs(trained, [trained.bos_id, *whole])[len(ctx):]
        assert n[i] == len(whole) - len(ctx)
        assert lp[i] == pytest.approx(float(ref.sum()), abs=1e-4)
    # The learned continuation is far more likely than a foreign one.
    good, _ = trained.continuation_logprob(["the red fox"], [" jumps over the sleeping dog"])
    bad, _ = trained.continuation_logprob(["the red fox"], [" bakes bread every sunday"])
    assert good[0] > bad[0] + 5


def test_example_losses_context_and_sliding_window(trained: TinyGPT) -> None:
    ctx, text = "seven silver ships sailed", " north across the cold grey sea."
    got = trained.example_losses([text], contexts=[ctx])[0]
    c_ids, t_ids = trained.encode([ctx])[0], trained.encode([text])[0]
    ref = full_logprobs(trained, [trained.bos_id, *c_ids, *t_ids])[len(c_ids):]
    assert got == pytest.approx(-float(ref.mean()), abs=1e-4)
    # A text longer than the context is scored in full (sliding windows), not truncated.
    long_text = " ".join(CORPUS * 6)
    n_ids = len(trained.encode([long_text])[0])
    assert n_ids > 2 * trained.n_ctx
    total, count = trained._sum_nll([[]], [trained.encode([long_text])[0]])
    assert count[0] == n_ids and np.isfinite(total[0])
    assert np.isnan(trained.example_losses([""])[0])
    ppl = trained.perplexity(CORPUS)
    assert 1.0 < ppl < np.exp(0.3)


def greedy_no_cache(m: TinyGPT, prompt: str, max_new: int) -> list[int]:
    ids = [m.bos_id, *m.encode([prompt])[0]]
    new = []
    with torch.no_grad():
        for _ in range(max_new):
            logits = m.model(torch.tensor([ids]))[0, -1]
            logits[m.pad_id] = -float("inf")
            tok = int(logits.argmax())
            if tok == m.eos_id:
                break
            new.append(tok)
            ids.append(tok)
    return new


def test_kv_cache_generation_equals_no_cache() -> None:
    m = make(seed=1)
    for _ in range(15):  # part-trained: peaked enough that float noise cannot flip an argmax
        m.train_step(CORPUS)
    prompts = ["the", "seven silver ships sailed north", "a small robot counts the", "zebra quantum"]
    got = m.generate(prompts, num_samples=2, temperature=0.0, max_new_tokens=12)
    for p, samples in zip(prompts, got, strict=True):
        ref = m.tokenizer.decode([greedy_no_cache(m, p, 12)])[0]
        assert samples == [ref, ref]


def test_sampling_is_seeded_and_shaped() -> None:
    m = make()
    a = m.generate(["the red", "my"], num_samples=5, max_new_tokens=8, seed=7)
    b = m.generate(["the red", "my"], num_samples=5, max_new_tokens=8, seed=7)
    c = m.generate(["the red", "my"], num_samples=5, max_new_tokens=8, seed=8)
    assert a == b and a != c
    assert [len(x) for x in a] == [5, 5]
    assert len(set(a[0])) > 1  # an untrained model's samples differ
    with pytest.raises(ValueError, match="context"):
        m.generate(["x"], max_new_tokens=m.n_ctx)


def test_sort_descending_is_torchs_stable_sort_and_keeps_generations(monkeypatch) -> None:
    """The nucleus sampler's packed-key sort gives torch's stable descending sort, ties in id order (the
    rows below have ties and zeros), so generations equal those of a sampler that sorts with torch."""
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(6, 300, generator=gen), -1)
    probs[:, 40:60] = probs[:, 3:4]  # ties, inside and outside the nucleus
    probs[0, 100:] = 0.0
    values, ids = sort_descending(probs)
    ref_values, ref_ids = torch.sort(probs, dim=-1, descending=True, stable=True)
    assert torch.equal(ids, ref_ids) and torch.equal(values, ref_values)

    m = make(seed=2)
    for _ in range(5):
        m.train_step(CORPUS)
    prompts = ["the red", "my", "seven silver"]
    fast = m.generate(prompts, num_samples=4, max_new_tokens=10, top_p=0.9, seed=3)
    import dynacure.learners.tiny_gpt as tiny_gpt

    monkeypatch.setattr(tiny_gpt, "sort_descending",
                        lambda p: torch.sort(p, dim=-1, descending=True, stable=True))
    assert m.generate(prompts, num_samples=4, max_new_tokens=10, top_p=0.9, seed=3) == fast


def test_resume_from_save_equals_straight_training(tmp_path) -> None:
    batches = [CORPUS[i % 4:] + CORPUS[:i % 4] for i in range(8)]
    straight = make(seed=2)
    l_straight = [straight.train_step(b[:3]) for b in batches]
    first = make(seed=2)
    l_first = [first.train_step(b[:3]) for b in batches[:4]]
    first.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "learner.json").read_text())
    assert meta["format_version"] == 1 and meta["step"] == 4 and meta["dims"]["n_layer"] == 2
    resumed = load_learner(tmp_path / "m")
    assert isinstance(resumed, TinyGPT) and resumed.step == 4
    l_second = [resumed.train_step(b[:3]) for b in batches[4:]]
    np.testing.assert_allclose(l_first + l_second, l_straight, rtol=1e-5)
    assert_same_params(params(resumed), params(straight))


def test_long_documents_use_seeded_windows_and_resume(tmp_path) -> None:
    long_doc = " ".join(CORPUS * 4)
    a = make(seed=3)
    rows1 = a.training_rows([long_doc, long_doc])
    assert all(len(r) == a.n_ctx + 1 for r in rows1)
    a.save(tmp_path / "w")
    b = load_learner(tmp_path / "w")
    assert b.training_rows([long_doc] * 3) == a.training_rows([long_doc] * 3)


def test_load_refuses_other_format_version(tmp_path) -> None:
    m = make()
    m.save(tmp_path / "m")
    meta_path = tmp_path / "m" / "learner.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format_version 99"):
        load_learner(tmp_path / "m")
    with pytest.raises(FileNotFoundError):
        load_learner(tmp_path / "missing")
