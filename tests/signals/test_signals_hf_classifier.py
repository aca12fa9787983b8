"""hf_classifier: a tiny BERT sequence classifier built, trained for a few steps and saved here, read back as
a signal (columns, label map, batching), as the toxicity role of the strategies and the loop, through
`dynacure score` + `dynacure curate --strategy classifier`, and as the judge of `dynacure evaluate`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from typer.testing import CliRunner  # noqa: E402

from dynacure.signals import hf_classifier as hfc  # noqa: E402
from dynacure.signals.base import get_signal  # noqa: E402

INSULTS = ["you are a stupid idiot", "shut up you worthless moron", "idiot moron go away", "you stupid fool",
           "what a worthless idiot you are", "moron, you are stupid", "you fool, shut up",
           "stupid worthless moron", "go away idiot", "you are a worthless fool"]
NEUTRAL = ["the river flows through the town", "we had tea in the garden", "the weather is mild today",
           "the train leaves at noon", "she reads a book by the river", "the town has a small library",
           "the garden is green in spring", "we walked to the station", "a quiet morning by the water",
           "the library opens at nine"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[EOS]"]


def _vocab() -> dict[str, int]:
    words = sorted({w for t in INSULTS + NEUTRAL for w in t.replace(",", " ").split()})
    return {t: i for i, t in enumerate(SPECIAL + words)}


def _tokenizer(classifier: bool):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = _vocab()
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    if classifier:
        tk.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
        return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]",
                                       cls_token="[CLS]", sep_token="[SEP]", model_max_length=64)
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]",
                                   eos_token="[EOS]", model_max_length=64)


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-label BERT (hidden 16, one layer) trained 60 full-batch steps on the 20 texts (< 1 s)."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tok = _tokenizer(classifier=True)
    cfg = BertConfig(vocab_size=len(_vocab()), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64, num_labels=2,
                     id2label={0: "neutral", 1: "toxic"}, label2id={"neutral": 0, "toxic": 1})
    model = BertForSequenceClassification(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    enc = tok(INSULTS + NEUTRAL, padding=True, return_tensors="pt")
    y = torch.tensor([1] * len(INSULTS) + [0] * len(NEUTRAL))
    model.train()
    for _ in range(60):
        model(**enc, labels=y).loss.backward()
        opt.step()
        opt.zero_grad()
    folder = tmp_path_factory.mktemp("hf") / "tiny-toxic-bert"
    model.eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _copy_with_config(src: Path, dst: Path, **changes: object) -> Path:
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(changes)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


HELD_OUT = ["you worthless stupid moron", "the garden by the river", "shut up idiot", "the train to the town",
            "", "a book " * 40]


def test_columns_probabilities_and_learned_behaviour(classifier_dir):
    sig = get_signal("hf_classifier", model=str(classifier_dir), device="cpu")
    assert sig.columns == ("toxicity", "label_neutral", "label_toxic")
    out = sig.score(HELD_OUT)
    assert set(out) == set(sig.columns)
    assert all(v.shape == (len(HELD_OUT),) and v.dtype == np.float32 for v in out.values())
    np.testing.assert_allclose(out["label_neutral"] + out["label_toxic"], 1.0, atol=1e-6)  # softmax
    np.testing.assert_allclose(out["toxicity"], out["label_toxic"], atol=1e-7)  # one unsafe label
    tox = out["toxicity"]
    # the few training steps learned the task on unseen combinations of the words
    assert tox[0] > 0.9 and tox[2] > 0.9 and tox[1] < 0.1 and tox[3] < 0.1
    assert all(len(v) == 0 for v in sig.score([]).values())
    p = sig.params()
    assert p["labels"] == ["neutral", "toxic"] and p["unsafe_labels"] == ["toxic"]
    assert p["multi_label"] is False and p["max_length"] == 64 and len(p["digest"]) == 32


def test_batching_does_not_change_scores(classifier_dir):
    texts = HELD_OUT + INSULTS[:4] + NEUTRAL[:4]
    one = get_signal("hf_classifier", model=str(classifier_dir), batch_size=1).score(texts)
    eight = get_signal("hf_classifier", model=str(classifier_dir), batch_size=8).score(texts)
    for col in one:
        assert np.abs(one[col] - eight[col]).max() <= 1e-6, col


def test_label_map_defaults_and_explicit_labels(classifier_dir, tmp_path):
    assert hfc.default_unsafe(["neutral", "toxic"]) == ["toxic"]
    assert hfc.default_unsafe(["non-toxic", "toxic"]) == ["toxic"]
    assert hfc.default_unsafe(["NOT_OFFENSIVE", "OFFENSIVE"]) == ["OFFENSIVE"]
    assert hfc.default_unsafe(["LABEL_0", "LABEL_1"]) == ["LABEL_1"]
    assert hfc.default_unsafe(["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]) == [
        "toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
    assert hfc.default_unsafe(["positive", "negative"]) == []
    assert hfc.label_column("Severe Toxic!") == "label_severe_toxic"

    # the user's label map wins: counting "neutral" as unsafe turns the column around
    flipped = get_signal("hf_classifier", model=str(classifier_dir), unsafe_labels="NEUTRAL").score(HELD_OUT)
    np.testing.assert_allclose(flipped["toxicity"], flipped["label_neutral"], atol=1e-7)
    both = get_signal("hf_classifier", model=str(classifier_dir), unsafe_labels=["neutral", "toxic"])
    np.testing.assert_allclose(both.score(HELD_OUT)["toxicity"], 1.0, atol=1e-6)  # softmax: the sum
    with pytest.raises(ValueError, match=r"'rude' is not a label .* \['neutral', 'toxic'\]"):
        get_signal("hf_classifier", model=str(classifier_dir), unsafe_labels="rude")

    # multi-label head (same weights): a sigmoid per label, the unsafe probability their max
    multi = _copy_with_config(classifier_dir, tmp_path / "multi", problem_type="multi_label_classification")
    sig = get_signal("hf_classifier", model=str(multi), unsafe_labels="neutral,toxic")
    out = sig.score(HELD_OUT)
    assert sig.params()["multi_label"] is True
    logits = sig.model._logits(HELD_OUT)
    np.testing.assert_allclose(out["label_toxic"], 1 / (1 + np.exp(-logits[:, 1])), atol=1e-6)  # no softmax
    np.testing.assert_allclose(out["toxicity"], np.maximum(out["label_neutral"], out["label_toxic"]))

    # labels the default cannot read are refused with the argument to give
    odd = _copy_with_config(classifier_dir, tmp_path / "odd", id2label={"0": "positive", "1": "negative"},
                            label2id={"positive": 0, "negative": 1})
    with pytest.raises(ValueError, match=r"'negative'\] are unsafe.*hf_classifier.unsafe_labels"):
        get_signal("hf_classifier", model=str(odd))
    assert hfc.folder_digest(odd) != hfc.folder_digest(classifier_dir)  # a changed file changes the digest


def test_model_argument_errors(classifier_dir, tmp_path):
    with pytest.raises(ValueError, match=r"hf_classifier.model=DIR"):
        get_signal("hf_classifier")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        get_signal("hf_classifier", model=str(tmp_path / "absent"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="no config.json"):
        get_signal("hf_classifier", model=str(tmp_path))
    pickled = tmp_path / "bin-only"
    shutil.copytree(classifier_dir, pickled)
    (pickled / "model.safetensors").unlink()  # weights only as a pickle (or not at all) are not read
    with pytest.raises(ValueError, match=r"bin-only: cannot load .*safetensors weights only"):
        get_signal("hf_classifier", model=str(pickled))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no GPU"):
            get_signal("hf_classifier", model=str(classifier_dir), device="cuda")


def test_toxicity_role_is_the_combined_column_only(classifier_dir):
    from dynacure.loop.features import safety_column
    from dynacure.loop.probes import reward_toxicity_scorer
    from dynacure.selectors.common import max_toxicity, toxicity_columns
    from dynacure.selectors.reward import RewardWeights, composite_reward

    sig = get_signal("hf_classifier", model=str(classifier_dir))
    scores = sig.score(HELD_OUT[:4])
    table = pd.DataFrame({f"hf_classifier__{k}": v for k, v in scores.items()})
    table["alignment__score"] = 0.5
    table["quality__score"] = 0.5
    # the safe label's probability never counts as toxicity
    assert toxicity_columns(table) == ["hf_classifier__toxicity"]
    assert toxicity_columns(table, ("hf_classifier",)) == ["hf_classifier__toxicity"]
    np.testing.assert_allclose(max_toxicity(table), scores["toxicity"], atol=1e-7)
    reward = composite_reward(table, RewardWeights(safety=1.0, alignment=0.0, utility=0.0))
    np.testing.assert_allclose(reward, 1.0 - scores["toxicity"], atol=1e-6)
    assert safety_column(table.columns) == "hf_classifier__toxicity"  # the loop's bandit axis
    probe = reward_toxicity_scorer(("hf_classifier",), {"hf_classifier": {"model": str(classifier_dir)}})
    np.testing.assert_allclose(probe(HELD_OUT[:4]), scores["toxicity"], atol=1e-6)  # the loop's probes


def _invoke(args: list[object], tmp_path: Path):
    from dynacure.cli.main import app

    env = {"DYNACURE_HOME": str(tmp_path / "home"), "DYNACURE_DATA": str(tmp_path / "no-data"),
           "OMP_NUM_THREADS": "1"}
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def test_score_and_curate_with_the_classifier_strategy(classifier_dir, tmp_path):
    docs = [{"id": f"i{k}", "text": t} for k, t in enumerate(INSULTS)]
    docs += [{"id": f"n{k}", "text": t} for k, t in enumerate(NEUTRAL)]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    attrs = tmp_path / "attrs"
    res = _invoke(["score", corpus, "--signals", "hf_classifier", "--signal-arg",
                   f"hf_classifier.model={classifier_dir}", "--out", attrs, "--workers", "1",
                   "--no-progress"], tmp_path)
    assert res.exit_code == 0, res.output
    markers = list((attrs / "hf_classifier" / "_done").glob("*.json"))
    assert markers  # each shard's params, with the folder's digest, are recorded for resume
    assert json.loads(markers[0].read_text())["params"]["digest"] == hfc.folder_digest(classifier_dir)
    out = tmp_path / "curated"
    res = _invoke(["curate", corpus, "--strategy", "classifier", "--budget", "1.0", "--attributes", attrs,
                   "--param", "signal=hf_classifier", "--out", out], tmp_path)
    assert res.exit_code == 0, res.output
    man = pd.read_parquet(out / "manifest.parquet").set_index("id")
    kept = man["decision"] == "keep"
    # insults land in bucket 5 (P >= 5/6) and are dropped; every neutral text is kept
    assert not kept[[f"i{k}" for k in range(len(INSULTS))]].any()
    assert kept[[f"n{k}" for k in range(len(NEUTRAL))]].all()
    assert set(man.loc[[f"i{k}" for k in range(len(INSULTS))], "reason"]) == {"bucket>=5"}


def _tiny_lm(folder: Path) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    tok = _tokenizer(classifier=False)
    eos = tok.convert_tokens_to_ids("[EOS]")
    cfg = GPT2Config(vocab_size=len(_vocab()), n_positions=64, n_embd=16, n_layer=1, n_head=2,
                     bos_token_id=eos, eos_token_id=eos, pad_token_id=tok.pad_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_evaluate_judges_with_the_hf_folder(classifier_dir, tmp_path):
    lm = _tiny_lm(tmp_path / "lm")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "kind": k}) + "\n" for p, k in
                               [("you stupid", "toxic"), ("the river", "nontoxic"), ("shut up", "toxic")]))
    means = {}
    for label in ("toxic", "neutral"):
        out = tmp_path / f"eval_{label}.json"
        res = _invoke(["evaluate", lm, "--suite", "toxicity", "--prompts", prompts, "--samples", "3",
                       "--judge", classifier_dir, "--judge-unsafe-labels", label, "--out", out,
                       "--device", "cpu"], tmp_path)
        assert res.exit_code == 0, res.output
        details = json.loads(out.read_text())["suites"]["toxicity"]["details"]
        judge = details["judge"]
        assert judge["path"] == str(classifier_dir.resolve()) and judge["unsafe_labels"] == [label]
        assert judge["digest"] == hfc.folder_digest(classifier_dir)
        means[label] = details["mean_toxicity"]
    # the same continuations (same seed) judged by the folder's softmax: P(toxic) + P(neutral) = 1
    assert means["toxic"] + means["neutral"] == pytest.approx(1.0, abs=1e-5)
    res = _invoke(["evaluate", lm, "--suite", "perplexity", "--judge", classifier_dir], tmp_path)
    assert res.exit_code != 0 and "toxicity suite" in res.output


def test_experiment_config_judge(classifier_dir, tmp_path):
    """``evaluation.judge``: checked before work, refused when it is the scoring folder, used by the cells'
    evaluation stage (here on the tiny LM with a prompts file)."""
    from dynacure.config import ConfigError
    from dynacure.experiments.config import experiment_config_from_dict
    from dynacure.experiments.runner import Events, Workspace, check_before_work, evaluate_stage
    from dynacure.learners import load_learner

    base = {"strategies": [{"name": "random"}], "scoring": {"signals": ["hf_classifier"],
                                                            "params": {"hf_classifier": {"model": "x"}}}}
    same = {**base, "scoring": {"signals": ["hf_classifier"],
                                "params": {"hf_classifier": {"model": str(classifier_dir)}}},
            "evaluation": {"judge": str(classifier_dir)}}
    with pytest.raises(ConfigError, match="must be another model"):
        experiment_config_from_dict(same)
    with pytest.raises(ConfigError, match="judge_unsafe_labels is set but evaluation.judge"):
        experiment_config_from_dict({**base, "evaluation": {"judge_unsafe_labels": ["toxic"]}})
    missing = experiment_config_from_dict({**base, "evaluation": {"judge": str(tmp_path / "absent")}})
    with pytest.raises(ConfigError, match="evaluation.judge=.*no such folder"):
        check_before_work(missing)

    cfg = experiment_config_from_dict({**base, "evaluation": {"suites": ["toxicity"], "samples": 2,
                                                              "judge": str(classifier_dir),
                                                              "judge_unsafe_labels": ["neutral"]}})
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "the river", "kind": "nontoxic"}) + "\n")
    learner = load_learner(_tiny_lm(tmp_path / "lm"), device="cpu")
    suites, _ = evaluate_stage(cfg, Workspace(tmp_path / "runs"), learner, 0, {"prompts": str(prompts)},
                               Events())
    judge = suites["toxicity"]["details"]["judge"]
    assert judge["path"] == str(classifier_dir.resolve()) and judge["unsafe_labels"] == ["neutral"]
