"""`dynacure curate --strategy bandit|ppo` end to end: manifest, budget, save the policy and re-apply it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dynacure.cli.main import app
from dynacure.io.demo_corpus import generate_demo_corpus
from dynacure.io.writers import write_documents

# cheap loop settings: no learner, few steps; profanity is the shipped scorer (no trained model needed)
CHEAP = ["steps=24", "use_learner=false", "candidates=16", "train_batch=8", "sample_size=200",
         'signals=["profanity"]']
LOOP = ["w_s=1", "w_a=0", "w_u=0", *CHEAP]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    docs = generate_demo_corpus(n_docs=300, toxic_share=0.2, low_quality_share=0.1, seed=3)
    path = tmp_path_factory.mktemp("demo") / "corpus.jsonl"
    write_documents(docs, path)
    return path, docs


def _curate(corpus_path, out, strategy, budget, params, extra=()):
    args = ["curate", str(corpus_path), "--strategy", strategy, "--budget", str(budget), "--out", str(out),
            *extra]
    for p in params:
        args += ["--param", p]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    return pd.read_parquet(out / "manifest.parquet"), json.loads((out / "summary.json").read_text())


def test_curate_bandit_then_reapply_saved_policy(corpus, tmp_path):
    path, docs = corpus
    pol = tmp_path / "policy"
    man, summary = _curate(path, tmp_path / "learn", "bandit", 0.5, [*LOOP, f"save_policy_to={pol}"])
    ids = [d.id for d in docs]
    assert sorted(man["id"]) == sorted(ids) and not man["id"].duplicated().any()  # every input once
    ntok = {d.id: len(d.text.split()) for d in docs}
    kept = man.loc[man["decision"] == "keep", "id"]
    total = sum(ntok.values())
    assert sum(ntok[i] for i in kept) <= int(np.floor(0.5 * total)) == summary["tokens_budget"]
    assert summary["tokens_kept"] > 0.9 * summary["tokens_budget"]  # the budget is used, not starved
    assert summary["params"]["signals"] == ["profanity"] and (pol / "policy.json").exists()
    # the learned bandit prefers clean docs: kept docs are less often toxic than the corpus
    toxic = {d.id: int(d.meta["toxic"]) for d in docs}
    assert np.mean([toxic[i] for i in kept]) < 0.2

    again = [f"policy_path={pol}", 'signals=["profanity"]']
    man2, _ = _curate(path, tmp_path / "reapply", "bandit", 0.5, again)
    assert man2.equals(man)  # same decisions, probabilities and reasons, row for row


def test_curate_ppo_refuses_bad_params(corpus, tmp_path):
    path, _ = corpus
    res = CliRunner().invoke(app, ["curate", str(path), "--strategy", "ppo", "--budget", "0.5",
                                   "--out", str(tmp_path / "o"), "--param", "engine=spark"])
    assert res.exit_code == 2 and "engine must be 'local' or 'ray'" in res.output
    res = CliRunner().invoke(app, ["curate", str(path), "--strategy", "ppo", "--budget", "0.5",
                                   "--out", str(tmp_path / "o"), "--param", "steps=0"])
    assert res.exit_code == 2 and "steps" in res.output


@pytest.mark.ray
def test_curate_ppo_on_ray_equals_local(corpus, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'dynacure[ray]')")
    path, docs = corpus
    w = ["--weights", "1,0,0"]  # the composite reward's weights reach the loop as w_s/w_a/w_u
    local, s1 = _curate(path, tmp_path / "local", "ppo", 0.4, CHEAP, w)
    on_ray, s2 = _curate(path, tmp_path / "ray", "ppo", 0.4, [*CHEAP, 'engine="ray"'], w)
    assert s1["params"]["config"]["w_s"] == 1.0 and s2["params"]["engine"] == "ray"
    assert len(local) == len(docs) and local.equals(on_ray)
    assert s1["tokens_kept"] == s2["tokens_kept"] <= s1["tokens_budget"]
