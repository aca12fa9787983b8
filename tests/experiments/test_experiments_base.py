"""An experiment on the pre-trained base (learner.base = "pretrained"): every cell fine-tunes the base with
its tokenizer, so cells start from what the base learned instead of from random weights."""

from __future__ import annotations

import json

import pytest

from dynacure.config import ConfigError
from dynacure.experiments.config import experiment_config_from_dict
from dynacure.experiments.demo import smoke_config
from dynacure.experiments.runner import run_experiment
from dynacure.learners.pretrain import BaseConfig, build_base

BASE = {"max_tokens": 12_000, "eval_every": 6, "eval_words": 1000, "tokenizer_docs": 300, "test_words": 1000}


def _config(base: str):
    data = json.loads(smoke_config(strategies=("random",)).model_dump_json())
    data["learner"] = {"preset": "nano", "max_tokens": 3000, "base": base, "lr": 1e-3,
                       **({"base_options": BASE} if base == "pretrained" else {})}
    data["corpus"]["data_dir"] = None
    return experiment_config_from_dict(data, origin="test")


def test_cells_fine_tune_the_base_with_its_tokenizer(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("DYNACURE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DYNACURE_DATA", str(shared_data))
    cfg = _config("pretrained")
    with pytest.raises(ConfigError, match="dynacure pretrain"):
        run_experiment(cfg, tmp_path / "missing", workers=1)
    base = build_base(BaseConfig(preset="nano", **BASE), shared_data, progress=False)
    run_experiment(cfg, tmp_path / "pre", workers=1)
    run_experiment(_config("scratch"), tmp_path / "scratch", workers=1)
    assert (tmp_path / "pre" / "tokenizer.json").read_text() == (base / "tokenizer.json").read_text()

    def first_loss(runs):
        log = json.loads(next((runs / "cells").glob("*/train_log.json")).read_text())
        return log["learner"]["loss"][0]

    # a random nano GPT starts at ~ln(2048) = 7.6 nats; the base has already learned English
    assert first_loss(tmp_path / "pre") < first_loss(tmp_path / "scratch") - 0.5
    env = json.loads((tmp_path / "pre" / "experiment.json").read_text())["environment"]
    assert env["models"]["base learner"]["digest"]  # a resume notices a rebuilt base


def test_a_base_still_being_built_has_no_digest(tmp_path):
    from dynacure.experiments.runner import model_digest

    folder = tmp_path / "base"
    (folder / "checkpoint").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "checkpoint" / "model.safetensors").write_bytes(b"step 250")
    assert model_digest(folder) is None  # its files change until base.json is written
    (folder / "base.json").write_text("{}")
    digest = model_digest(folder)
    assert digest and digest == model_digest(folder)
