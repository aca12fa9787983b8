"""toxicity_transformer: a short real fine-tune of the shipped MiniLM, resume, save/load, calibration,
counterfactual augmentation, harm labels, distillation and the registered signal."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from dynacure.signals import training  # noqa: E402
from dynacure.signals import transformer as tf  # noqa: E402
from dynacure.signals.base import get_signal  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="module")
def tiny_run(shared_data: Path,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[tf.TransformerScorer, Path]:
    """One short end-to-end fine-tune on 1200 reward rows (about 30 s on one core)."""
    out = tmp_path_factory.mktemp("models")
    cfg = tf.FinetuneConfig(max_length=48, batch_size=16, max_steps=30, eval_every=15, checkpoint_every=1000)
    model = tf.train_transformer_scorer(shared_data, out, seed=0, config=cfg, max_train_rows=1200,
                                        eval_max_rows=150, threads=1, progress=False)
    assert model is not None
    return model, out / tf.TOXICITY_TRANSFORMER


def test_categories_constant_matches_training() -> None:
    expected = tuple(c for c in training.CATEGORIES if c != "threat") + training.HARM_CATEGORIES
    assert expected == tf.TRANSFORMER_CATEGORIES


def test_short_finetune_beats_chance_on_heldout(tiny_run: tuple[tf.TransformerScorer, Path]) -> None:
    model, folder = tiny_run
    h = model.meta["heldout"]
    # Measured on this run: Jigsaw 0.895, TweetEval offensive 0.69, insult 0.80 (150 test rows each).
    assert h["jigsaw"]["auroc"] > 0.75
    assert h["tweeteval_offensive"]["auroc"] > 0.6
    assert h["jigsaw"]["threshold_from"] == "validation"
    assert model.categories[0] == "toxicity"
    # Categories without enough data say so, with counts, instead of a figure.
    assert "ability" in model.meta["not_emitted"]
    assert "too little" in model.meta["not_emitted"]["ability"]
    assert h["categories"]["ability"]["status"] != "ok" and "auroc" not in h["categories"]["ability"]
    assert h["categories"]["insult"]["status"] == "ok" and h["categories"]["insult"]["auroc"] > 0.6
    assert set(h["identity_fpr_at_0.5"]) >= {"all", "women", "immigrant", "lgbtq"}
    tr = model.meta["training"]
    assert tr["steps"] == 30 and 29 * 16 <= tr["examples"] <= 30 * 16 and tr["examples_per_second"] > 0
    assert model.meta["augmentation"]["enabled"] and model.meta["augmentation"]["copies"] > 0
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["kind"] == tf.KIND and meta["part"] == "reward"
    assert not (folder.parent / f"{tf.TOXICITY_TRANSFORMER}.checkpoint").exists()  # removed once saved


def test_save_load_round_trip_gives_identical_scores(tiny_run: tuple[tf.TransformerScorer, Path]) -> None:
    model, folder = tiny_run
    texts = ["you are a worthless idiot", "The city was founded in the Roman era.", "", "women can vote",
             "x " * 500]
    loaded = tf.TransformerScorer.load(folder)
    assert loaded.categories == model.categories and loaded.heads == model.heads
    a, b = model.predict_proba(texts), loaded.predict_proba(texts)
    assert a.shape == (len(texts), len(model.categories))
    assert np.array_equal(a, b)


def test_calibration_is_monotone_in_unit_interval(tiny_run: tuple[tf.TransformerScorer, Path]) -> None:
    model, _ = tiny_run
    grid = np.linspace(0.0, 1.0, 401)
    raw = np.repeat(grid[:, None], len(model.heads), axis=1)
    cal = model.calibrate(raw)
    assert np.all((cal >= 0) & (cal <= 1))
    assert np.all(np.diff(cal, axis=0) > 0)  # strictly increasing: ranking (AUROC) is the raw model's
    rel = model.meta["reliability_validation"]["toxicity"]
    assert sum(b["n"] for b in rel["calibrated_cross_fitted"]["bins"]) == rel["raw"]["n"] > 0
    assert 0 <= rel["calibrated_cross_fitted"]["ece"] <= 1


def test_signal_scores_a_batch_and_declares_columns(tiny_run: tuple[tf.TransformerScorer, Path]) -> None:
    model, folder = tiny_run
    sig = get_signal("toxicity_transformer", model_dir=str(folder.parent))
    assert sig.columns == tuple(model.categories) and sig.columns[0] == "toxicity"
    assert sig.resources.batch_size >= 64 and sig.resources.gpus == 0
    texts = ["I will find you and hurt you", "Thank you for the lovely dinner", ""]
    cols = sig.score(texts)
    assert set(cols) == set(sig.columns)
    for v in cols.values():
        assert v.shape == (3,) and np.all((v >= 0) & (v <= 1))
    assert np.allclose(cols["toxicity"], model.predict_proba(texts)[:, 0])
    assert all(len(v) == 0 for v in sig.score([]).values())
    assert sig.params()["kind"] == tf.KIND


def test_missing_model_gives_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--which transformer"):
        get_signal("toxicity_transformer", model_dir=str(tmp_path))


def test_distill_to_ngram_follows_the_teacher(tiny_run: tuple[tf.TransformerScorer, Path],
                                              shared_data: Path) -> None:
    from scipy.stats import spearmanr

    model, _ = tiny_run
    pool = list(training.toxicity_frame("pool", shared_data).sample(300, random_state=1)["text"])
    student = tf.distill_to_ngram(model, pool, seed=0)
    assert student.categories == model.categories
    teacher = model.predict_proba(pool)[:, 0]
    rho = spearmanr(teacher, student.predict_proba(pool)[:, 0]).statistic
    assert rho > 0.8  # measured 0.97 on this pool (the student sees these texts with the teacher's labels)


# --- resume ----------------------------------------------------------------------------------------

TEXTS = ["you are an idiot", "have a nice day", "shut up you moron", "the weather is fine today",
         "i hate you so much", "thanks for the help", "what a stupid thing to say", "see you tomorrow",
         "go away loser", "great game last night", "nobody likes you", "the museum opens at nine"]


def _tiny(cfg: tf.FinetuneConfig, ckpt: Path, enc: Any, stop_after: int | None = None) -> tf.FinetuneResult:
    y = np.array([[i % 2 == 0] for i in range(len(TEXTS))], dtype=float)
    y[3, 0] = np.nan  # an unlabelled row is masked out of the loss
    return tf.finetune(TEXTS, y, np.ones(len(TEXTS)), TEXTS[:6], y[:6], ["toxicity"], cfg, ckpt,
                       stop_after=stop_after, progress=False, encoder=(copy.deepcopy(enc[0]), enc[1]))


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    enc = tf.shipped_encoder()
    cfg = tf.FinetuneConfig(max_length=16, batch_size=4, max_steps=6, eval_every=2, checkpoint_every=100,
                            patience=10)
    full = _tiny(cfg, tmp_path / "a", enc)
    part = _tiny(cfg, tmp_path / "b", enc, stop_after=3)
    assert not part.finished and part.steps_done == 3
    assert json.loads((tmp_path / "b" / "state.json").read_text())["step"] == 3
    # A crash between the two renames of a checkpoint swap leaves the whole checkpoint beside the folder.
    (tmp_path / "b").rename(tmp_path / "b.old")
    resumed = _tiny(cfg, tmp_path / "b", enc)
    assert full.finished and resumed.finished and resumed.steps_done == full.steps_done == 6
    a, b = full.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history == full.history and resumed.best_step == full.best_step
    # Other settings on the same checkpoint are refused, not silently mixed.
    with pytest.raises(ValueError, match="other settings or data"):
        _tiny(cfg.model_copy(update={"lr": 1e-4}), tmp_path / "b", enc)


# --- augmentation and harm labels (no model needed) ------------------------------------------------

def test_counterfactual_swaps_terms_both_ways() -> None:
    swap = training.counterfactual_text
    assert swap("Women and men are equal.") == "Men and women are equal."
    assert swap("The GIRLS met the boys") == "The BOYS met the girls"
    assert swap("gay and straight people") == "straight and gay people"
    for axis, groups in training.COUNTERFACTUAL_AXES.items():
        for a in range(len(groups)):
            for b in range(len(groups)):
                if a == b:
                    continue
                m = training.swap_map(axis, a, b)
                both = groups[a] + groups[b]
                dup = {t for t in both if both.count(t) > 1}  # e.g. "christian" as noun and adjective
                assert all(m[y] == x for x, y in m.items() if x not in dup and y not in dup), (axis, a, b)
                assert m[groups[a][0]] == groups[b][0] and m[groups[b][0]] == groups[a][0]
    # Religion has three groups: the partner is fixed by the text and seed.
    text = "The muslims and the church council met."
    once = swap(text, seed=0)
    assert once is not None and once != text and once == swap(text, seed=0)
    assert swap("Nothing about groups here.") is None
    assert swap("The human mankind") is None  # whole words only


def test_augmentation_never_touches_toxic_rows() -> None:
    nan = np.nan
    frame = pd.DataFrame({
        "text": ["women are stupid", "women are engineers", "men like football", "gays unite", "a plain text",
                 "muslims pray"],
        "dataset": ["d"] * 6,
        "toxicity": [1.0, 0.0, 0.0, nan, 0.0, nan],
        "identity_hate": [1.0, 0.0, nan, 0.0, 0.0, nan],
    })
    out = training.counterfactual_augment(frame, seed=0, label_columns=("toxicity", "identity_hate"))
    orig, copies = out[~out["augmented"]], out[out["augmented"]]
    pd.testing.assert_frame_equal(orig.drop(columns="augmented").reset_index(drop=True), frame)
    # Row 0 is toxic, row 4 mentions no group, row 5 has no known label: none of them is copied.
    assert sorted(copies["text"]) == ["men are engineers", "straights unite", "women like football"]
    assert (copies["toxicity"].fillna(-1).to_numpy() != 1).all()
    assert copies.loc[copies["text"] == "straights unite", "toxicity"].isna().all()  # labels kept, NaN too


def test_harm_labels_join_hate_with_group_mentions() -> None:
    texts = ["deport all the immigrants", "women belong in the kitchen", "you stupid idiot",
             "muslims live here", "the jews and blacks"]
    hate = [1, 1, 1, 0, np.nan]
    lab = training.harm_labels(texts, hate)
    assert lab["race_origin"][0] == 1 and lab["gender_sex"][0] == 0 and lab["religion"][0] == 0
    assert lab["gender_sex"][1] == 1 and lab["race_origin"][1] == 0
    assert all(np.isnan(lab[c][2]) for c in lab)  # hate with no group mention: target unknown
    assert all(lab[c][3] == 0 for c in lab)  # not hate: 0 even though a group is mentioned
    assert all(np.isnan(lab[c][4]) for c in lab)  # no hate label at all


def test_reliability_bins_known_answer() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.05, 0.15, 0.85, 0.95])
    rel = training.reliability_bins(y, p, n_bins=2)
    assert [b["n"] for b in rel["bins"]] == [2, 2]
    assert rel["bins"][0]["mean_pred"] == pytest.approx(0.1) and rel["bins"][1]["frac_pos"] == 1.0
    assert rel["ece"] == pytest.approx(0.1)


def test_soft_logistic_recovers_soft_targets() -> None:
    import scipy.sparse as sp

    # Two disjoint feature groups with soft targets 0.2 and 0.9; weak regularisation recovers them, and
    # the unused third column keeps weight 0.
    x = sp.csr_matrix(np.array([[1.0, 0.0, 0.0]] * 50 + [[0.0, 1.0, 0.0]] * 50))
    p = np.r_[np.full(50, 0.2), np.full(50, 0.9)]
    w, b = training.fit_soft_logistic(x, p, c=100.0)
    fitted = 1 / (1 + np.exp(-(x @ w + b)))
    assert fitted[:50] == pytest.approx(0.2, abs=0.01) and fitted[50:] == pytest.approx(0.9, abs=0.01)
    assert w[2] == 0.0
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        training.fit_soft_logistic(x, p * 2, c=1.0)
