"""The pre-trained base: built once per config, reused, resumed after a crash to the same weights, and
fine-tuned by experiment cells with its own tokenizer."""

from __future__ import annotations

import json

import pytest
from safetensors.numpy import load_file

from dynacure.learners.pretrain import BaseConfig, build_base, find_base, read_base
from dynacure.learners.tiny_gpt import TinyGPT

# 12 packed steps of 16 x 64 tokens; a curve point every 3 steps (the first still before most learning)
SMALL = {"preset": "nano", "max_tokens": 12_000, "eval_every": 3, "eval_words": 1000, "tokenizer_docs": 300,
         "test_words": 1000}


class Crash(RuntimeError):
    pass


def test_base_builds_reuses_and_resumes_to_the_same_weights(shared_data, tmp_path):
    cfg = BaseConfig(**SMALL)
    whole = build_base(cfg, shared_data, root=tmp_path / "a", progress=False)
    info = read_base(whole)
    assert info["tokens_seen"] >= cfg.max_tokens
    steps = [p["step"] for p in info["curve"]]
    assert steps == sorted(set(steps)) and len(steps) >= 3
    # the curve goes down: a learner that learns nothing would not pass
    assert info["curve"][-1]["valid_word_ppl"] < 0.5 * info["curve"][0]["valid_word_ppl"]
    assert info["test"]["wikitext2_word_ppl"]["value"] > 1
    # early stopping on valid: the base holds the weights of the curve's lowest valid word perplexity
    best = min(info["curve"], key=lambda p: p["valid_word_ppl"])
    assert info["chosen_step"] == best["step"] and not (whole / "best").exists()
    mtime = (whole / "base.json").stat().st_mtime
    assert build_base(cfg, shared_data, root=tmp_path / "a", progress=False) == whole
    assert (whole / "base.json").stat().st_mtime == mtime  # reused, not rebuilt

    points = []

    def crash_at_third(row):
        points.append(row)
        if len(points) == 3:
            raise Crash("simulated crash")

    with pytest.raises(Crash):
        build_base(cfg, shared_data, root=tmp_path / "b", progress=False, on_point=crash_at_third)
    folder = next((tmp_path / "b").iterdir())
    assert not (folder / "base.json").exists() and (folder / "checkpoint").exists()
    resumed = build_base(cfg, shared_data, root=tmp_path / "b", progress=False)
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] == b[k]).all(), k
    assert [p["step"] for p in read_base(resumed)["curve"]] == steps


def test_find_base_says_how_to_build_and_fine_tuning_starts_fresh(shared_data, tmp_path):
    cfg = BaseConfig(**SMALL)
    with pytest.raises(FileNotFoundError, match="dynacure pretrain"):
        find_base(cfg, shared_data, root=tmp_path)
    folder = build_base(cfg, shared_data, root=tmp_path, progress=False)
    assert find_base(cfg, shared_data, root=tmp_path) == folder
    ft = TinyGPT.from_base(folder, seed=3, lr=1e-4, warmup_steps=2)
    base = TinyGPT.load(folder)
    assert ft.step == 0 and base.step > 0 and ft.config.lr == 1e-4
    assert json.loads(ft.tokenizer.to_json()) == json.loads(base.tokenizer.to_json())
    text = ["the game was released in japan in 2011 ."]
    assert ft.perplexity(text) == pytest.approx(base.perplexity(text))
    with pytest.raises(ValueError, match="fine-tuning can change only"):
        TinyGPT.from_base(folder, n_layer=3)


def test_the_base_keeps_the_weights_of_its_best_valid_point(shared_data, tmp_path):
    from dynacure.learners.pretrain import _choose_best

    cfg = BaseConfig(**SMALL)
    folder = build_base(cfg, shared_data, root=tmp_path, progress=False)
    learner = TinyGPT.load(folder)
    learner.save(tmp_path / "f" / "best")
    good = {k: v.clone() for k, v in learner.model.state_dict().items()}
    curve = [{"step": 4, "valid_word_ppl": 90.0, "best": True}, {"step": 8, "valid_word_ppl": 120.0}]
    learner.train_step(["a later step that the valid curve says overfits ."] * 4)
    assert any((learner.model.state_dict()[k] != v).any() for k, v in good.items())
    assert _choose_best(learner, curve, tmp_path / "f") == 4
    assert all((learner.model.state_dict()[k] == v).all() for k, v in good.items())
    # the last point best: nothing to restore
    assert _choose_best(learner, [{"step": 4, "valid_word_ppl": 9.0, "best": True}], tmp_path / "f") == 4
