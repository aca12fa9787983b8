"""How the commands fail and what they leave: evaluate's model check and run records that do not clobber
each other, curate's explained quarantine and no half-made folder, Ctrl-C, help texts, file modes."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest
from typer.testing import CliRunner

from dynacure.cli.errors import INTERRUPTED
from dynacure.cli.main import app


def _corpus(path, n=40, field="text"):
    path.write_text("".join(json.dumps({"id": f"d{i}", field: f"plain document number {i} about the weather "
                                        f"and the river and the town of number {i % 7}"}) + "\n"
                            for i in range(n)))
    return path


def _env(tmp_path):
    return {"DYNACURE_HOME": str(tmp_path / "home"), "DYNACURE_DATA": str(tmp_path / "no-data"),
            "COLUMNS": "300"}


def _invoke(args, tmp_path):
    return CliRunner().invoke(app, [str(a) for a in args], env=_env(tmp_path))


def _one_error(res) -> str:
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


# ---- item 3: evaluate ---------------------------------------------------------------------------------

def test_evaluate_checks_the_model_folder_first(tmp_path):
    notmodel = tmp_path / "not-a-model"
    notmodel.mkdir()
    (notmodel / "notes.txt").write_text("x")
    # DYNACURE_HOME is empty, so a judge lookup would fail: the model check must come before it
    line = _one_error(_invoke(["evaluate", notmodel, "--suite", "toxicity"], tmp_path))
    assert "not a model folder" in line and str(notmodel) in line and "judge" not in line
    line = _one_error(_invoke(["evaluate", tmp_path / "missing", "--suite", "toxicity"], tmp_path))
    assert "no such model folder" in line
    line = _one_error(_invoke(["evaluate", notmodel / "notes.txt"], tmp_path))
    assert "not a model folder but a file" in line
    assert sorted(os.listdir(tmp_path)) == ["not-a-model"]  # nothing written (no results.json either)


def test_evaluate_into_the_model_folder_keeps_the_model_run_record(tmp_path):
    """README's `evaluate model --out model/eval.json`: train's run.json survives, evaluate's record is
    run.evaluate.json; the model's own files cannot be the results file."""
    corpus = _corpus(tmp_path / "corpus.jsonl", n=60)
    model = tmp_path / "model"
    res = _invoke(["train", corpus, "--out", model, "--preset", "nano", "--max-tokens", "1500",
                   "--device", "cpu"], tmp_path)
    assert res.exit_code == 0, res.output
    # training progress goes to stderr: stdout holds only the result line
    assert res.stdout.splitlines() == [res.stdout.strip()] and res.stdout.startswith("trained ")
    train_record = (model / "run.json").read_bytes()
    assert json.loads(train_record)["command"] == "train"

    items = tmp_path / "mc.json"
    items.write_text(json.dumps([{"question": "Which is wet?", "mc1_targets": {"the river": 1, "the sun": 0},
                                  "mc2_targets": {"the river": 1, "the sun": 0}}]))
    args = ["evaluate", model, "--suite", "truthfulqa", "--option", f"truthfulqa.items_file={items}",
            "--out", model / "eval.json", "--device", "cpu"]
    for _ in range(2):  # a second evaluation replaces evaluate's record, never train's
        res = _invoke(args, tmp_path)
        assert res.exit_code == 0, res.output
        assert (model / "run.json").read_bytes() == train_record
        record = json.loads((model / "run.evaluate.json").read_text())
        assert record["command"] == "evaluate" and record["config"]["out"] == str(model / "eval.json")
    results = json.loads((model / "eval.json").read_text())
    assert results["suites"]["truthfulqa"]["metrics"]["mc1"]["n"] == 1

    line = _one_error(_invoke(["evaluate", model, "--out", model / "learner.json"], tmp_path))
    assert "overwrite the model's own learner.json" in line
    line = _one_error(_invoke(["evaluate", model, "--out", model / "run.json"], tmp_path))
    assert "run record" in line
    assert (model / "run.json").read_bytes() == train_record


def test_run_records_of_different_commands_do_not_clobber(tmp_path):
    from dynacure.runinfo import find_run_info, run_info_path, write_run_info

    assert write_run_info(tmp_path, "train", {"a": 1}, 0).name == "run.json"
    assert write_run_info(tmp_path, "train", {"a": 2}, 0).name == "run.json"  # same command: replaced
    assert write_run_info(tmp_path, "evaluate", {"b": 1}, 0).name == "run.evaluate.json"
    assert write_run_info(tmp_path, "pool build", {}, 0).name == "run.pool-build.json"
    assert json.loads((tmp_path / "run.json").read_text())["config"] == {"a": 2}
    assert find_run_info(tmp_path, "train")["config"] == {"a": 2}
    assert find_run_info(tmp_path, "evaluate")["config"] == {"b": 1}
    assert find_run_info(tmp_path, "curate") is None
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "run.json").write_text("not json")  # unreadable: never overwritten
    assert run_info_path(tmp_path / "other", "score").name == "run.score.json"


# ---- item 6: curate on input it cannot read ------------------------------------------------------------

def test_curate_explains_a_wrong_text_field_and_leaves_nothing(tmp_path):
    # a field no auto-detection takes for text (a "content" field is read by itself: test_cli_own_corpus)
    corpus = _corpus(tmp_path / "blurb.jsonl", n=30, field="blurb")
    out = tmp_path / "cur"
    line = _one_error(_invoke(["curate", corpus, "-s", "random", "-b", "0.5", "--out", out], tmp_path))
    assert "30 records quarantined: 30 missing_text (field 'text' missing; first: " in line
    assert f"{corpus}:1)" in line and "pass --text-field blurb" in line
    assert not out.exists()
    res = _invoke(["curate", corpus, "-s", "random", "-b", "0.5", "--out", out, "--text-field", "blurb"],
                  tmp_path)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records_read"] == 30 and summary["quarantined"] == 0 and summary["kept"] > 0


@pytest.mark.parametrize("name, content, expected", [
    ("empty.jsonl", "", "the corpus holds no records"),
    ("table.csv", "id,text\n1,hello\n", "unsupported format"),
    ("broken.jsonl", "{not json\n" * 4, "4 records quarantined: 4 bad_json"),
])
def test_curate_on_unreadable_input_leaves_no_folder(tmp_path, name, content, expected):
    corpus = tmp_path / name
    corpus.write_text(content)
    out = tmp_path / "nested" / "cur"
    line = _one_error(_invoke(["curate", corpus, "-s", "random", "-b", "0.5", "--out", out], tmp_path))
    assert expected in line
    assert sorted(os.listdir(tmp_path)) == [name]


def test_curate_failing_in_an_earlier_runs_folder_marks_it_failed(tmp_path):
    good = _corpus(tmp_path / "good.jsonl")
    out = tmp_path / "cur"
    assert _invoke(["curate", good, "-s", "random", "-b", "0.5", "--out", out], tmp_path).exit_code == 0
    earlier = set(os.listdir(out))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    # another corpus into a finished run's folder: refused unless --overwrite (issue 28, item 2)
    assert "--overwrite" in _one_error(_invoke(["curate", bad, "-s", "random", "-b", "0.5", "--out", out],
                                               tmp_path))
    assert set(os.listdir(out)) == earlier
    _one_error(_invoke(["curate", bad, "-s", "random", "-b", "0.5", "--out", out, "--overwrite"], tmp_path))
    assert "no readable documents" in (out / "FAILED").read_text()
    assert set(os.listdir(out)) <= earlier | {"FAILED"} and "summary.json" not in os.listdir(out)
    assert _invoke(["curate", good, "-s", "random", "-b", "0.5", "--out", out], tmp_path).exit_code == 0
    assert not (out / "FAILED").exists() and (out / "summary.json").exists()


def test_score_reads_another_text_field(tmp_path):
    corpus = _corpus(tmp_path / "blurb.jsonl", n=25, field="blurb")  # not a field auto-detection takes
    out = tmp_path / "attrs"
    args = ["score", corpus, "--signals", "profanity", "--out", out, "--workers", "1", "--no-progress"]
    # without it nothing is readable: a failure that leaves no empty "done" shards to resume from
    line = _one_error(_invoke(args, tmp_path))
    assert "25 records quarantined: 25 missing_text" in line and "pass --text-field blurb" in line
    assert not out.exists()
    res = _invoke([*args, "--text-field", "blurb"], tmp_path)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "run.json").read_text())["summary"]
    assert summary["n_docs"] == 25 and summary["n_quarantined"] == 0


def test_param_errors_name_the_parameter_not_python_internals(tmp_path):
    corpus = _corpus(tmp_path / "c.jsonl")
    base = ["curate", corpus, "-s", "heuristic", "-b", "0.5", "--out", tmp_path / "o"]
    line = _one_error(_invoke([*base, "--param", "nope=1"], tmp_path))
    assert "--param nope: no such parameter" in line and "threshold: float = 0.5" in line
    line = _one_error(_invoke([*base, "--param", "n_draws=[1, 2]"], tmp_path))
    assert "--param n_draws=[1, 2]: a value has the wrong type" in line
    for text in (line,):
        assert "__init__" not in text and "Selector" not in text and "int()" not in text
    assert not (tmp_path / "o").exists()


# ---- item 7: Ctrl-C, help, messages, spinners, modes ------------------------------------------------

def test_ctrl_c_is_one_line_and_exit_130(tmp_path, monkeypatch):
    import dynacure.experiments.runner as runner
    import dynacure.pipeline.curate as curate_mod

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(curate_mod, "curate", interrupted)
    monkeypatch.setattr(runner, "run_experiment", interrupted)
    corpus = _corpus(tmp_path / "c.jsonl")
    for args in (["curate", corpus, "-s", "random", "-b", "0.5", "--out", tmp_path / "cur"],
                 ["experiment", "--preset", "ci", "--out", tmp_path / "runs", "--no-report"]):
        res = _invoke(args, tmp_path)
        assert res.exit_code == 130, res.output
        assert res.stderr.splitlines()[-1] == INTERRUPTED
        assert "Traceback" not in res.output


def _all_commands():
    import typer.main

    def walk(cmd, path):  # every command and every (sub-)app
        yield path
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(app), []))


def _help(tmp_path, path) -> str:
    res = _invoke([*path, "--help"], tmp_path)
    assert res.exit_code == 0, res.output
    return " ".join(res.output.replace("│", " ").split())


def test_help_lists_every_registered_strategy_signal_and_suite(tmp_path):
    from dynacure.evaluation.suites import available_suites
    from dynacure.experiments.config import preset_names
    from dynacure.selectors import available_selectors
    from dynacure.signals.base import available_signals

    curate_help = _help(tmp_path, ["curate"])
    assert "Strategy, one of: " + ", ".join(available_selectors()) in curate_help
    score_help = _help(tmp_path, ["score"])
    assert all(name in score_help for name in available_signals())
    assert ", ".join(available_signals()) in score_help
    assert ", ".join(available_suites()) in _help(tmp_path, ["evaluate"])
    assert ", ".join(preset_names()) in _help(tmp_path, ["experiment"])


def test_no_help_text_shows_artefacts(tmp_path):
    commands = _all_commands()
    assert [] in commands and ["curate"] in commands and ["pool", "build"] in commands
    for path in commands:
        text = _help(tmp_path, path)
        for artefact in ("<bool>", "@@", "{", "}"):
            assert artefact not in text, (path, artefact, text)
    assert "Usage: dynacure curate [OPTIONS] CORPUS" in _help(tmp_path, ["curate"])
    assert "Usage: dynacure experiment [OPTIONS] [CONFIG]" in _help(tmp_path, ["experiment"])


def test_experiment_says_what_is_missing(tmp_path):
    line = _one_error(_invoke(["experiment", "--out", tmp_path / "r"], tmp_path))
    assert "no experiment given: pass a CONFIG file (TOML) or --preset NAME" in line
    assert "not both" not in line
    cfg = tmp_path / "x.toml"
    cfg.write_text("")
    line = _one_error(_invoke(["experiment", cfg, "--preset", "ci", "--out", tmp_path / "r"], tmp_path))
    assert "both a CONFIG file" in line
    assert not (tmp_path / "r").exists()


def test_audit_of_a_corpus_without_groups_says_so(tmp_path):
    corpus = _corpus(tmp_path / "c.jsonl")
    assert _invoke(["curate", corpus, "-s", "random", "-b", "0.5", "--out", tmp_path / "cur"],
                   tmp_path).exit_code == 0
    res = _invoke(["audit", tmp_path / "cur", "--out", tmp_path / "audit.json", "--n-boot", "50"], tmp_path)
    assert res.exit_code == 0, res.output
    assert "no identity group or dialect is mentioned by at least 5 of the 40 documents" in res.stdout
    assert "┏" not in res.stdout  # no empty one-column table
    saved = json.loads((tmp_path / "audit.json").read_text())["results"]["cur"]
    assert saved["groups"] == [] and saved["group_mentions"]["women"] == 0


def test_stage_spinners_complete_when_the_run_ends():
    from rich.console import Console

    from dynacure.cli.experiment import RichEvents, progress_bar

    console = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - closed below
    try:
        with progress_bar(console) as progress:
            ev = RichEvents(progress, console)
            ev.stage("collecting results")
            ev.cells_total(2, 0)
            ev.cell_finished("a", 0.1)
            ev.cell_finished("b", 0.1)
        assert all(task.finished for task in progress.tasks)
        assert progress.tasks[0].completed == progress.tasks[0].total == 1
    finally:
        console.file.close()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_atomic_writes_get_the_mode_open_would_give(tmp_path, umask, mode):
    from dynacure.io.atomic import write_json_atomic

    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_os_errors_become_one_line(capsys):
    import typer

    from dynacure.cli.errors import cli_errors

    @cli_errors
    def fails():
        raise IsADirectoryError(21, "Is a directory", "/some/where")

    with pytest.raises(typer.Exit) as exc:
        fails()
    assert exc.value.exit_code == 2
    assert capsys.readouterr().err == "error: /some/where: Is a directory\n"


def test_markup_in_a_path_is_printed_as_is(tmp_path):
    out = tmp_path / "[bold]x"
    out.write_text("a file")
    line = _one_error(_invoke(["score", tmp_path / "c.jsonl", "-s", "profanity", "--out", out], tmp_path))
    assert re.search(re.escape(str(out)) + ": --out must be a folder", line)
