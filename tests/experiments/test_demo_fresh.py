"""`dynacure demo` on a fresh machine (issue 19, items 0, 1, 4): empty HOME, $DYNACURE_HOME and data folder.

The demo must train every model it uses into RUNS/models from generated text, never feed a NaN attribute
into the reward or the policy's features, and a resume must notice a changed data/model environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dynacure.config import ConfigError
from dynacure.experiments.config import load_experiment_config
from dynacure.experiments.runner import run_experiment
from dynacure.loop.features import FeatureEncoder
from dynacure.selectors.common import toxicity_columns
from dynacure.selectors.reward import RewardWeights, composite_reward

DYNACURE = Path(sys.executable).parent / "dynacure"
# Small sizes so the whole demo (4 cells) takes well under a minute on one core.
SMALL = ["--docs", "400", "--tokens", "20000", "--policy-steps", "16", "--prompts", "10", "--samples", "2"]


def _fresh_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNACURE_")}
    for name in ("home", "dchome", "nodata"):
        (tmp / name).mkdir()
    env.update(HOME=str(tmp / "home"), DYNACURE_HOME=str(tmp / "dchome"), DYNACURE_DATA=str(tmp / "nodata"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def _demo(tmp: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DYNACURE), "demo", "--out", "demo", *SMALL], cwd=tmp / "cwd", env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not DYNACURE.exists(), reason=f"{DYNACURE}: the dynacure script is not installed")
def test_demo_runs_on_a_fresh_machine_with_its_own_models(tmp_path: Path) -> None:
    env = _fresh_env(tmp_path)
    (tmp_path / "cwd").mkdir()  # no ../shared beside it
    res = _demo(tmp_path, env)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = tmp_path / "cwd" / "demo"

    # Every model it used was trained into RUNS/models; nothing was read from or written to the homes.
    for name in ("toxicity_ngram", "judge", "reference_lm"):
        assert (runs / "models" / name / "meta.json").exists(), name
    assert not any((tmp_path / "dchome").iterdir())
    assert not (tmp_path / "home" / ".cache" / "dynacure").exists()
    info = json.loads((runs / "experiment.json").read_text())
    envr = info["environment"]
    assert envr["data"] is None  # a self-contained demo reads no public data
    assert {rec["path"] for rec in envr["models"].values()} == {
        "models/toxicity_ngram", "models/judge", "models/reference_lm"}
    assert all(rec["digest"] for rec in envr["models"].values())
    assert "dropped_columns" not in info

    # The quality signal scored with the demo reference LM: no NaN in any attribute column, and the
    # density separates clean generated prose from boilerplate/spam.
    table = pd.read_parquet(runs / "table.parquet")
    attrs = [c for c in table.columns if "__" in c]
    reward_cols = toxicity_columns(table) + ["quality__score"]
    assert set(reward_cols) <= set(attrs) and {"quality__ref_ppl", "quality__density"} <= set(attrs)
    nan = {c: int(n) for c, n in table[attrs].isna().sum().items() if n}
    assert not nan, f"NaN attribute values: {nan}"
    docs = pd.read_parquet(runs / "documents.parquet").set_index("id")
    quality = docs.loc[table["id"], "meta_quality"].to_numpy()
    density = table["quality__density"].to_numpy()
    assert np.median(density[quality == "ok"]) > 0.9 > 0.1 > np.median(density[quality == "low"])

    # All four cells finished, the RL one with no column dropped from its features.
    cells = sorted((runs / "cells").iterdir())
    assert len(cells) == 4 and all((c / "DONE").exists() for c in cells)
    rl = [c for c in cells if c.name.startswith("RL-")]
    assert len(rl) == 1
    policy = json.loads((rl[0] / "train_log.json").read_text())["policy"]
    assert policy and "dropped_columns" not in policy
    res_tab = pd.read_parquet(runs / "results.parquet")
    assert res_tab["value"].notna().all()

    # A resume says what it reuses and redoes nothing.
    again = _demo(tmp_path, env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reusing corpus, demo models, scores, 4 of 4 cells" in again.stderr


def test_a_nan_reward_column_is_refused_by_name() -> None:
    t = pd.DataFrame({"id": ["a", "b", "c"], "toxicity_ngram__toxicity": [0.1, 0.9, 0.2],
                      "quality__score": [np.nan] * 3})
    with pytest.raises(ValueError, match=r"quality__score.*3 missing.*of 3 \(all of them\).*'quality'"):
        composite_reward(t, RewardWeights(safety=0.7, alignment=0.0, utility=0.3))
    t["quality__score"] = [0.5, np.nan, 1.0]
    with pytest.raises(ValueError, match=r"quality__score.*1 missing/non-numeric values of 3"):
        composite_reward(t, RewardWeights(safety=0.7, alignment=0.0, utility=0.3))
    # with utility weight 0 the column is not read, so it cannot bias the reward
    r = composite_reward(t, RewardWeights(safety=1.0, alignment=0.0, utility=0.0))
    np.testing.assert_allclose(r, [0.9, 0.1, 0.8])


def test_policy_features_drop_an_all_nan_column_by_name(caplog: pytest.LogCaptureFixture) -> None:
    t = pd.DataFrame({"n_tokens": [10, 20, 30, 40], "source": ["a", "a", "b", "b"],
                      "quality__score": [0.1, 0.4, 0.6, 0.9], "quality__ref_ppl": [np.nan] * 4,
                      "quality__density": [0.2, np.nan, 0.8, 0.4]})
    with caplog.at_level("WARNING"):
        enc = FeatureEncoder.fit(t)
    assert enc.dropped == ["quality__ref_ppl"]
    assert enc.columns == ["quality__density", "quality__score"]
    assert "quality__ref_ppl" in caplog.text
    x = enc.transform(t)
    assert np.isfinite(x).all() and x.shape == (4, enc.dim)
    assert x[1, 0] == 0.0  # the missing density is imputed with the sample mean (0 after standardising)
    back = FeatureEncoder.from_json(json.loads(json.dumps(enc.to_json())))
    assert back.dropped == ["quality__ref_ppl"]
    np.testing.assert_array_equal(back.transform(t), x)


def test_quality_without_reference_lm_leaves_its_lm_columns_out(tmp_path: Path) -> None:
    from dynacure.signals.utility import QualitySignal

    sig = QualitySignal(data_dir=str(tmp_path))  # no wikitext-2 there
    assert "ref_ppl" not in sig.columns and "density" not in sig.columns
    out = sig.score(["The town lies on the river and is known for its old stone bridge."])
    assert set(out) == set(sig.columns)
    assert sig.params()["dropped_columns"] == ["ref_ppl", "density"]


CONFIG = """
format_version = 1
name = "env"
seeds = [0]
budgets = [0.5]
target_size = 20
workers = 1

[corpus]
kind = "demo"
demo = { n_docs = 200, toxic_share = 0.2, low_quality_share = 0.2, seed = 0 }

[scoring]
signals = ["profanity"]

[[strategies]]
name = "random"

[learner]
train = false

[evaluation]
suites = ["perplexity"]
"""


def test_resume_refuses_a_changed_data_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    (data / "wikitext-2").mkdir(parents=True)
    (data / "wikitext-2" / "wiki.test.tokens.gz").write_bytes(b"x")
    monkeypatch.setenv("DYNACURE_DATA", str(data))
    (tmp_path / "c.toml").write_text(CONFIG)
    cfg = load_experiment_config(tmp_path / "c.toml")
    runs = tmp_path / "runs"
    first = run_experiment(cfg, runs)
    info = json.loads((runs / "experiment.json").read_text())
    mtime = (data / "wikitext-2" / "wiki.test.tokens.gz").stat().st_mtime_ns
    listing = {"wikitext-2/wiki.test.tokens.gz": [1, mtime]}
    assert info["environment"]["data"] == {str(data.resolve()): listing}
    pd.testing.assert_frame_equal(first, run_experiment(cfg, runs))  # the same environment resumes

    (data / "wikitext-2" / "wiki.valid.tokens.gz").write_bytes(b"yy")
    with pytest.raises(ConfigError, match=r"added wikitext-2/wiki\.valid\.tokens\.gz.*new --out folder"):
        run_experiment(cfg, runs)
    (data / "wikitext-2" / "wiki.valid.tokens.gz").unlink()
    (data / "wikitext-2" / "wiki.test.tokens.gz").write_bytes(b"changed")
    with pytest.raises(ConfigError, match=r"changed wikitext-2/wiki\.test\.tokens\.gz"):
        run_experiment(cfg, runs)
    monkeypatch.setenv("DYNACURE_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(ConfigError, match=r"data folder .*data is gone"):
        run_experiment(cfg, runs)

    del info["environment"]  # a folder written before the environment was recorded is not trusted
    (runs / "experiment.json").write_text(json.dumps(info))
    with pytest.raises(ConfigError, match="no record of the data and model files"):
        run_experiment(cfg, runs)
