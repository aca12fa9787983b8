"""Issue 28, items 2, 7, 4 and 8, each reproduced: a finished run is never replaced without ``--overwrite``
(the same run still resumes), a curate folder is read from any working folder and after a move, the
commands an error suggests work when pasted in another folder, and a rerun says what it resumed while a
long step prints progress.

Everything runs the real commands (CliRunner) on small corpora; an interruption is a KeyboardInterrupt
raised right after a checkpoint is written, which is what a Ctrl-C at that moment does."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dynacure.cli.main import app


def _corpus(path: Path, n: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": f"plain document number {i} about the weather "
                                        f"and the river and the town of number {i % 7}"}) + "\n"
                            for i in range(n)))
    return path


def _invoke(args, home: Path, **env: str):
    return CliRunner().invoke(app, [str(a) for a in args],
                              env={"DYNACURE_HOME": str(home), "COLUMNS": "300", **env})


def _ok(res):
    assert res.exit_code == 0, (res.output, res.exception)
    return res


def _one_error(res) -> str:
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


# ---- item 2: nothing overwritten without a word --------------------------------------------------------

def test_curate_refuses_to_replace_a_finished_run_unless_overwrite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _corpus(tmp_path / "data" / "own.jsonl")
    heuristic = ["curate", "data/own.jsonl", "--strategy", "heuristic", "--budget", "0.5", "--out",
                 "cur/heuristic"]
    _ok(_invoke(heuristic, tmp_path / "home"))
    out = tmp_path / "cur" / "heuristic"
    manifest = (out / "manifest.parquet").read_bytes()

    random = ["curate", "data/own.jsonl", "--strategy", "random", "--budget", "0.5", "--out", "cur/heuristic"]
    line = _one_error(_invoke(random, tmp_path / "home"))
    # the refusal names the folder, the run that is there and the flag
    assert f"error: {Path('cur/heuristic')}: holds the finished output of another run" in line
    assert "`dynacure curate`" in line and "strategy='heuristic'" in line
    assert "strategy 'heuristic' -> 'random'" in line and "--overwrite" in line
    assert (out / "manifest.parquet").read_bytes() == manifest  # untouched
    assert json.loads((out / "summary.json").read_text())["strategy"] == "heuristic"

    # the same run, even typed with an absolute path from another folder, is a re-run: allowed
    monkeypatch.chdir(tmp_path / "data")
    same = ["curate", tmp_path / "data" / "own.jsonl", "--strategy", "heuristic", "--budget", "0.5", "--out",
            out]
    _ok(_invoke(same, tmp_path / "home"))
    assert (out / "manifest.parquet").read_bytes() == manifest

    res = _ok(_invoke(["curate", tmp_path / "data" / "own.jsonl", "--strategy", "random", "--budget", "0.5",
                       "--out", out, "--overwrite"], tmp_path / "home"))
    assert "--overwrite: replaced `dynacure curate` (" in res.stderr
    assert json.loads((out / "summary.json").read_text())["strategy"] == "random"
    record = json.loads((out / "run.json").read_text())
    assert record["request"]["strategy"] == "random"
    # and now the random run is the one protected
    line = _one_error(_invoke(same, tmp_path / "home"))
    assert "strategy 'random' -> 'heuristic'" in line


def test_another_command_may_not_write_over_a_curate_run(tmp_path):
    corpus = _corpus(tmp_path / "own.jsonl")
    out = tmp_path / "cur"
    _ok(_invoke(["curate", corpus, "-s", "random", "-b", "0.5", "--out", out], tmp_path / "home"))
    line = _one_error(_invoke(["score", corpus, "--signals", "profanity", "--out", out], tmp_path / "home"))
    assert f"{out}: holds the finished output of another run, `dynacure curate`" in line
    assert "`dynacure score` would write over it" in line and "--overwrite" in line
    assert not (out / "profanity").exists()


# ---- item 7: paths that travel -------------------------------------------------------------------------

def test_a_curate_folder_is_read_from_anywhere_and_after_a_move(tmp_path, monkeypatch):
    work = tmp_path / "work"
    monkeypatch.chdir(_corpus(work / "data" / "own.jsonl").parents[1])
    _ok(_invoke(["curate", "data/own.jsonl", "-s", "random", "-b", "0.5", "--out", "cur/heuristic"],
                tmp_path / "home"))
    record = json.loads((work / "cur" / "heuristic" / "run.json").read_text())
    assert record["config"]["corpus"] == str(work / "data" / "own.jsonl")  # absolute
    assert record["relative_paths"]["corpus"] == os.path.join("..", "..", "data", "own.jsonl")

    def audit(folder: Path) -> str:
        res = _invoke(["audit", folder, "--out", tmp_path / "audit.json", "--n-boot", "20"],
                      tmp_path / "home")
        return res.stderr if res.exit_code else _ok(res).stdout

    monkeypatch.chdir("/")  # the issue's `cd / && dynacure audit <absolute path>/cur/heuristic`
    assert "overall removal rate" in audit(work / "cur" / "heuristic")
    # the whole tree moved: the path relative to the folder finds the corpus
    moved = tmp_path / "moved"
    shutil.move(work, moved)
    assert "overall removal rate" in audit(moved / "cur" / "heuristic")
    # the folder alone moved: the absolute path finds the corpus (put back where it was)
    (work / "data").mkdir(parents=True)
    shutil.copy(moved / "data" / "own.jsonl", work / "data" / "own.jsonl")
    alone = tmp_path / "elsewhere" / "heuristic"
    shutil.move(moved / "cur" / "heuristic", alone)
    assert "overall removal rate" in audit(alone)
    # found nowhere: the error says what was tried and names the option that overrides it
    (work / "data" / "own.jsonl").unlink()
    err = audit(alone)
    assert "--corpus" in err and str(work / "data" / "own.jsonl") in err, err
    assert "overall removal rate" in _ok(_invoke(["audit", alone, "--corpus", moved / "data" / "own.jsonl",
                                                  "--out", tmp_path / "a.json", "--n-boot", "20"],
                                                 tmp_path / "home")).stdout


# ---- item 4: advice that works when followed -----------------------------------------------------------

def _suggested(message: str) -> list[list[str]]:
    """The `dynacure ...` commands a message suggests, split as a shell would."""
    return [shlex.split(cmd) for cmd in re.findall(r"`(dynacure [^`]+)`", message)]


def _path_args(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--data-dir", "--out", "--corpus")]


def test_missing_model_hints_work_from_another_folder(tmp_path, monkeypatch, shared_data):
    from dynacure.signals.models import ModelMissingError
    from dynacure.signals.toxicity import load_judge

    data = shared_data.resolve()
    corpus = _corpus(tmp_path / "own.jsonl")
    # a relative data folder, as the issue's `--data-dir ../shared/data`, in effect in one folder ...
    monkeypatch.chdir(data.parent)
    rel = os.path.relpath(data, data.parent)
    monkeypatch.setenv("DYNACURE_DATA", rel)
    monkeypatch.setenv("DYNACURE_HOME", str(tmp_path / "home"))
    with pytest.raises(ModelMissingError) as judge:  # the missing-judge error
        load_judge()
    res = _invoke(["score", corpus, "--signals", "toxicity_minilm", "--out", tmp_path / "attrs"],
                  tmp_path / "home", DYNACURE_DATA=rel)
    for msg, which in ((str(judge.value), "judge"), (_one_error(res), "toxicity_minilm")):
        commands = _suggested(msg)
        assert len(commands) == 1 and commands[0][:2] == ["dynacure", "train-scorer"], msg
        assert commands[0][-2:] == ["--which", which]
        # ... and pasted in another: every path in it is absolute, the data folder is the one in effect
        monkeypatch.chdir(tmp_path)
        paths = _path_args(commands[0])
        assert len(paths) == 2 and all(Path(p).is_absolute() for p in paths), commands[0]
        assert Path(paths[0]) == data and (Path(paths[0]) / "tweeteval-offensive-hate").is_dir()
        assert Path(paths[1]) == tmp_path / "home" / "models"
        monkeypatch.chdir(data.parent)


def test_data_hint_of_train_scorer_names_an_absolute_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    msg = _one_error(_invoke(["train-scorer", "--which", "ngram", "--data-dir", "../no-such-data", "--out",
                              tmp_path / "m"], tmp_path / "home"))
    assert f"{(tmp_path.parent / 'no-such-data')}: data directory not found" in msg
    assert "../" not in msg


# ---- item 8: no silence --------------------------------------------------------------------------------

CHEAP_LOOP = ["steps=24", "use_learner=false", "candidates=16", "train_batch=8", "sample_size=200",
              'signals=["profanity"]', "w_s=1", "w_a=0", "w_u=0"]


def _loop_args(corpus: Path, out: Path) -> list:
    args: list = ["curate", corpus, "--strategy", "bandit", "--budget", "0.5", "--out", out]
    for p in CHEAP_LOOP:
        args += ["--param", p]
    return args


def test_curate_loop_prints_policy_steps_and_a_rerun_says_what_it_resumed(tmp_path, monkeypatch):
    from dynacure.io.demo_corpus import generate_demo_corpus
    from dynacure.io.writers import write_documents
    from dynacure.loop.trainer import LoopTrainer

    monkeypatch.setattr("dynacure.progress.QUIET_SECONDS", 0.0)  # this small run is quicker than that
    corpus = tmp_path / "demo.jsonl"
    write_documents(generate_demo_corpus(n_docs=300, toxic_share=0.2, low_quality_share=0.1, seed=3), corpus)
    whole = _ok(_invoke(_loop_args(corpus, tmp_path / "whole"), tmp_path / "home"))
    # progress in a log: the stages, and the policy steps at each quarter
    for line in ("reading and scoring", "learning the policy: step 6 of 24",
                 "learning the policy: step 24 of 24", "writing the curated corpus"):
        assert line in whole.stderr, whole.stderr
    assert "resumed" not in whole.stderr  # a fresh run does not claim to resume

    save = LoopTrainer.save_checkpoint

    def save_then_interrupt(self):  # Ctrl-C right after the first policy checkpoint
        save(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(LoopTrainer, "save_checkpoint", save_then_interrupt)
    out = tmp_path / "cut"
    res = _invoke(_loop_args(corpus, out), tmp_path / "home")
    assert res.exit_code == 130, res.output
    monkeypatch.setattr(LoopTrainer, "save_checkpoint", save)
    again = _ok(_invoke(_loop_args(corpus, out), tmp_path / "home"))
    assert "resumed: reused 1 attribute shard; policy checkpoint at step 6" in again.stderr, again.stderr
    assert "learning the policy: step 12 of 24" in again.stderr
    assert not (out / "policy-checkpoint").exists()  # a finished run keeps no checkpoint
    # the resumed run decides exactly as the uninterrupted one
    pd.testing.assert_frame_equal(pd.read_parquet(out / "manifest.parquet"),
                                  pd.read_parquet(tmp_path / "whole" / "manifest.parquet"))


def _train_args(corpus: Path, out: Path, *extra: str) -> list:
    return ["train", corpus, "--out", out, "--preset", "nano", "--max-tokens", "2500", "--batch-size", "4",
            "--checkpoint-every", "4", "--device", "cpu", "--no-progress", *extra]


def test_train_resume_says_from_which_step_and_a_trained_model_is_kept(tmp_path, monkeypatch):
    from dynacure.learners import training

    corpus = _corpus(tmp_path / "own.jsonl", n=120)
    model = tmp_path / "model"
    save = training._save_checkpoint

    def save_then_interrupt(*args, **kwargs):  # Ctrl-C right after the checkpoint of step 4
        save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "_save_checkpoint", save_then_interrupt)
    assert _invoke(_train_args(corpus, model), tmp_path / "home").exit_code == 130
    monkeypatch.setattr(training, "_save_checkpoint", save)
    res = _ok(_invoke(_train_args(corpus, model), tmp_path / "home"))
    found = re.search(r"resumed from step 4 of (\d+); trained (\d+) steps \((\d+) in this run\)", res.stdout)
    assert found, res.stdout
    total, trained, now = map(int, found.groups())
    assert total == trained > 4 and now == total - 4
    record = json.loads((model / "run.json").read_text())
    assert record["config"]["curated"] == str(corpus)
    assert record["relative_paths"]["curated"] == os.path.join("..", "own.jsonl")

    # another run's model is not replaced without a word; the same run is (it resumes at its end)
    line = _one_error(_invoke(_train_args(corpus, model, "--seed", "1"), tmp_path / "home"))
    assert f"{model}: holds the finished output of another run, `dynacure train`" in line
    assert "seed 0 -> 1" in line and "--overwrite" in line
    assert f"resumed from step {total} of {total}" in _ok(_invoke(_train_args(corpus, model),
                                                                  tmp_path / "home")).stdout
    cur = tmp_path / "cur"
    _ok(_invoke(["curate", corpus, "-s", "random", "-b", "0.5", "--out", cur], tmp_path / "home"))
    line = _one_error(_invoke(_train_args(corpus, cur), tmp_path / "home"))
    assert "`dynacure curate`" in line and "`dynacure train` would write over it" in line


def test_experiment_folders_and_other_runs_are_not_mixed(tmp_path):
    corpus = _corpus(tmp_path / "own.jsonl")
    cur = tmp_path / "cur"
    _ok(_invoke(["curate", corpus, "-s", "random", "-b", "0.5", "--out", cur], tmp_path / "home"))
    for args in (["experiment", "--preset", "ci"], ["adapt", "--steps", "20", "--switch-at", "20"],
                 ["pretrain", "--tokens", "1000"], ["pool", "build"]):
        line = _one_error(_invoke([*args, "--out", cur], tmp_path / "home"))
        command = " ".join(args[:2]) if args[0] == "pool" else args[0]
        assert "`dynacure curate`" in line and f"`dynacure {command}` would write over it" in line, line
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "experiment.json").write_text(json.dumps({"format_version": 1, "config": {"name": "ci"}}))
    line = _one_error(_invoke(["curate", corpus, "-s", "random", "-b", "0.5", "--out", runs],
                              tmp_path / "home"))
    assert "`dynacure experiment` (name='ci')" in line and "--overwrite" in line
    assert sorted(os.listdir(runs)) == ["experiment.json"]


def test_train_scorer_does_not_replace_a_model_of_another_seed(tmp_path):
    models = tmp_path / "models"
    (models / "judge").mkdir(parents=True)
    meta = {"format_version": 1, "kind": "ngram", "seed": 3, "part": "judge"}
    (models / "judge" / "meta.json").write_text(json.dumps(meta))
    args = ["train-scorer", "--which", "judge", "--data-dir", tmp_path / "no-data", "--out", models]
    line = _one_error(_invoke(args, tmp_path / "home"))
    assert f"{models / 'judge'}: holds the finished output of another run, a judge model trained" in line
    assert "with seed 3; this run has seed 0" in line and "--overwrite" in line
    assert json.loads((models / "judge" / "meta.json").read_text()) == meta
    # with --overwrite it goes on (here to the missing data folder), the same seed never asks
    assert "data directory not found" in _one_error(_invoke([*args, "--overwrite"], tmp_path / "home"))
    assert "data directory not found" in _one_error(_invoke([*args, "--seed", "3"], tmp_path / "home"))


def test_pretrain_hints_run_from_another_folder(tmp_path, monkeypatch):
    (tmp_path / "work" / "data").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    line = _one_error(_invoke(["pretrain", "--data-dir", "data", "--tokens", "1000", "--out", "bases"],
                              tmp_path / "home"))
    [cmd] = _suggested(line)
    assert cmd == ["dynacure", "data", "check", str(tmp_path / "work" / "data")], line
    monkeypatch.chdir(tmp_path / "elsewhere")  # the suggestion, pasted in another folder, runs
    res = _invoke(cmd[1:], tmp_path / "home")
    assert "does not exist" not in res.output and "wikitext-2" in res.output, res.output


def test_missing_base_hint_is_a_pasteable_command(tmp_path, monkeypatch, shared_data):
    from dynacure.learners.pretrain import BaseConfig, find_base

    data = shared_data.resolve()
    monkeypatch.chdir(data.parent)  # the data folder given relative to where the command ran
    with pytest.raises(FileNotFoundError) as exc:
        find_base(BaseConfig(max_tokens=1000, seed=2), data.name, tmp_path / "bases")
    [cmd] = _suggested(str(exc.value))
    assert cmd[:2] == ["dynacure", "pretrain"] and "--tokens" in cmd and cmd[cmd.index("--seed") + 1] == "2"
    assert _path_args(cmd) == [str(data), str(tmp_path / "bases")]


def test_a_record_of_an_older_version_is_compared_on_its_plain_options(tmp_path, monkeypatch):
    from dynacure.cli.paths import claim_out_dir, make_request

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "cur"
    out.mkdir()
    # what curate recorded before requests were stored: a relative corpus, the strategy's full params
    (out / "run.json").write_text(json.dumps({"command": "curate", "config": {
        "corpus": "data/own.jsonl", "strategy": "heuristic", "budget": 0.5, "params": {"threshold": 0.5},
        "weights": None, "redact_pii": False}}))

    def request(strategy: str, corpus: str = "data/own.jsonl") -> dict:
        return make_request({"corpus": corpus, "attributes": None}, strategy=strategy, budget=0.5, params={},
                            weights=None, redact_pii=False)

    assert claim_out_dir(out, "curate", request("heuristic")).replaced == []  # the same run
    for other, change in ((request("random"), "strategy 'heuristic' -> 'random'"),
                          (request("heuristic", "other.jsonl"), "corpus 'data/own.jsonl' -> ")):
        with pytest.raises(ValueError, match="--overwrite") as exc:
            claim_out_dir(out, "curate", other)
        assert change in str(exc.value)
    assert (out / "run.json").exists()
    claim = claim_out_dir(out, "curate", request("random"), overwrite=True)
    assert claim.replaced and not (out / "run.json").exists()  # the replaced run's record is gone
