"""The chain is a user's command too: ``dynacure curate -> dynacure train --base`` gives, weight for weight,
the model an experiment cell on the pre-trained base trains (kept with ``dynacure experiment
--keep-models`` and opened with ``load_learner``), and ``--base`` refuses what is not a model folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dynacure.cli.main import app
from dynacure.experiments.cells import MODEL_DIR
from dynacure.io.demo_corpus import generate_demo_corpus
from dynacure.io.readers import read_documents
from dynacure.io.writers import write_corpus
from dynacure.learners import load_learner
from dynacure.learners.pretrain import BaseConfig, build_base

# The smallest base that is still a base: nano, pre-trained on 2k tokens, one curve point.
BASE = {"max_tokens": 2000, "eval_every": 1000, "eval_words": 200, "tokenizer_docs": 200, "test_words": 200}
SEED, BUDGET, TOKENS, LR = 3, 0.8, 6000, 1e-3  # 6000 tokens: ~30 of the 81 kept docs, re-routed ones too
PARAMS = {"signal": "profanity"}  # the classifier re-routes some documents: the texts carry its prefix


def _config(path: Path, corpus: Path) -> Path:
    """The experiment as a user writes it (TOML): one classifier cell fine-tuning the base."""
    base_options = ", ".join(f"{k} = {v}" for k, v in BASE.items())
    path.write_text(f"""
format_version = 1
name = "train-base"
seeds = [{SEED}]
budgets = [{BUDGET}]
target_size = 10
workers = 1

[corpus]
kind = "path"
path = "{corpus.as_posix()}"

[scoring]
signals = ["profanity"]

[[strategies]]
name = "classifier"
params = {{ signal = "{PARAMS['signal']}" }}

[learner]
preset = "nano"
base = "pretrained"
base_options = {{ {base_options} }}
max_tokens = {TOKENS}
lr = {LR}

[evaluation]
suites = ["perplexity"]
options = {{ perplexity = {{ max_tokens = 200 }} }}
""")
    return path


def _invoke(*args: str | Path) -> str:
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, f"{args[0]} failed ({res.exit_code}): {res.output}"
    return res.output


def _refused(*args: str | Path) -> str:
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 2, res.output
    return " ".join(res.output.split())  # the console may wrap a long message


def test_train_base_gives_the_cell_model(shared_data: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNACURE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DYNACURE_DATA", str(shared_data))
    base = build_base(BaseConfig(preset="nano", **BASE), shared_data, progress=False)
    corpus = tmp_path / "corpus"
    write_corpus(generate_demo_corpus(n_docs=120, toxic_share=0.5, low_quality_share=0.1, seed=0), corpus,
                 shard_size=100)
    runs = tmp_path / "runs"
    _invoke("experiment", _config(tmp_path / "exp.toml", corpus), "--out", runs, "-j", "1", "--no-report",
            "--keep-models")
    (cell,) = (runs / "cells").iterdir()
    assert (cell / "DONE").exists() and (cell / MODEL_DIR / "model.safetensors").exists()

    curated = tmp_path / "curated"
    _invoke("curate", corpus, "--strategy", "classifier", "--budget", BUDGET, "--seed", SEED, "--attributes",
            runs / "attributes", "--param", f"signal={PARAMS['signal']}", "--out", curated)
    # re-routed documents carry a loss weight below 1, which train reads as the cell does
    assert any(d.meta.get("curate_weight", 1.0) < 1.0 for d in read_documents(curated))
    model = tmp_path / "model"
    _invoke("train", curated, "--base", base, "--max-tokens", TOKENS, "--seed", SEED, "--lr", LR,
            "--threads", 1, "--device", "cpu", "--no-progress", "--out", model)

    kept, trained, pre = load_learner(cell / MODEL_DIR), load_learner(model), load_learner(base)
    a, b = kept.model.state_dict(), trained.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # both fine-tuned the base (with its tokenizer), not a fresh learner and not the base unchanged
    assert kept.tokenizer.to_json() == pre.tokenizer.to_json()
    assert any(not torch.equal(a[k], v) for k, v in pre.model.state_dict().items())
    cell_log = json.loads((cell / "train_log.json").read_text())["learner"]
    own_log = json.loads((model / "train_log.json").read_text())
    assert own_log["losses"] == cell_log["loss"]
    # the run record names the base by the digest the experiment recorded for it
    record = json.loads((model / "run.json").read_text())
    env = json.loads((runs / "experiment.json").read_text())["environment"]
    assert record["base_digest"] == env["models"]["base learner"]["digest"]
    assert record["config"]["base"] == str(base)

    # --base refuses what is not a (whole) small-GPT folder, naming it
    assert "not found" in _refused("train", curated, "--base", tmp_path / "nope", "--out", tmp_path / "x")
    assert "not a model folder" in _refused("train", curated, "--base", curated, "--out", tmp_path / "x")
    building = tmp_path / "building"
    (building / "checkpoint").mkdir(parents=True)
    assert "still being built" in _refused("train", curated, "--base", building, "--out", tmp_path / "x")
    # 'pretrained' is the default base of $DYNACURE_HOME, not built here: the error says how to build it
    assert "dynacure pretrain" in _refused("train", curated, "--base", "pretrained", "--out", tmp_path / "x")
    both = _refused("train", curated, "--base", base, "--hf-model", base, "--out", tmp_path / "x")
    assert "--base and --hf-model" in both
    assert not (tmp_path / "x").exists()


def test_experiment_without_keep_models_keeps_no_model(tmp_path: Path) -> None:
    """Without the flag a cell's folder is what it was; with it on the same runs, the finished cell is run
    again to keep its model, with the same metrics."""
    from dynacure.experiments.config import experiment_config_from_dict
    from dynacure.experiments.runner import run_experiment

    cfg = experiment_config_from_dict({
        "format_version": 1, "name": "keep", "seeds": [0], "budgets": [0.5], "target_size": 10, "workers": 1,
        "corpus": {"kind": "demo", "demo": {"n_docs": 60}},
        "scoring": {"signals": ["profanity"]},
        "strategies": [{"name": "random"}],
        "learner": {"preset": "nano", "max_tokens": 300},
        "evaluation": {"suites": ["perplexity"], "options": {"perplexity": {"max_tokens": 200}}},
    })
    runs = tmp_path / "runs"
    run_experiment(cfg, runs, workers=1)
    (cell,) = (runs / "cells").iterdir()
    assert not (cell / MODEL_DIR).exists()
    metrics = json.loads((cell / "metrics.json").read_text())["suites"]
    run_experiment(cfg, runs, workers=1, keep_models=True)
    learner = load_learner(cell / MODEL_DIR)
    assert learner.step > 0 and json.loads((cell / "metrics.json").read_text())["suites"] == metrics
