"""The README's "Your own corpus, start to finish" walk-through, run as the README writes it (issue 28's done
criteria), on a small corpus generated here: a JSONL file (field ``text``) and a Parquet file (column
``content``) with broken records among them.

The commands are read from the README's subsection, so the test breaks when the README drifts from the CLI.
Only sizes are shrunk (``QUICK``: the smallest learner and evaluation that still exercise each step, and the
shipped ``profanity`` signal instead of an n-gram model trained from the public data); every shrunk option
must still be in the README line. The steps up to ``train`` and ``audit`` need no public data and always run;
the judge, ``evaluate`` and its report need ``../shared/data`` and skip with the reason when it is absent.
Also here: ``curate --signal-arg`` (options of the signals curate scores itself) and an evaluation kept
across a finished ``train`` run again (the model's key is its bytes, not their mtime).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dynacure.cli.main import app
from dynacure.evaluation.checkpoint import model_fingerprint
from dynacure.signals.base import Signal, available_signals, register_signal

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "### Your own corpus, start to finish"
CORPUS = "my-corpus"  # the folder the README's commands name
# option -> the test's smaller value, per command; extra options appended (speed only, never behaviour)
QUICK: dict[str, tuple[dict[str, str], list[str]]] = {
    "score": ({"--signals": "profanity"}, ["--workers", "1", "--no-progress"]),
    "train": ({"--preset": "nano", "--max-tokens": "3000"}, ["--threads", "1", "--no-progress"]),
    "train-scorer": ({}, ["--no-eval"]),
    "evaluate": ({}, ["--max-prompts", "3", "--samples", "2", "--max-tokens", "300"]),
    "audit": ({}, ["--n-boot", "100"]),
}
NEEDS_DATA = ("train-scorer", "evaluate")  # and a report of an evaluation

TOPICS = ("the river", "the old mill", "the harvest", "the town council", "the railway", "the library",
          "the school", "the market")
PEOPLE = ("christian", "muslim", "jewish", "women", "men", "old people", "young people", "immigrants")
INSULTS = ("you are a stupid worthless idiot, shut the fuck up you dumb moron",
           "what a pathetic loser, go to hell you piece of shit")


def _paragraph(i: int) -> str:
    t, u = TOPICS[i % len(TOPICS)], TOPICS[(i * 3 + 1) % len(TOPICS)]
    who = PEOPLE[i % len(PEOPLE)]
    text = (f"Note {i}: how {t} changed over the years, with remarks on the weather, the fields and the "
            f"{who} who lived near {u}. ")
    return text * (1 + i % 3)  # documents of several lengths, so the budget cuts inside the pool


def write_corpus(folder: Path, n: int = 300) -> dict[str, int]:
    """``folder/notes.jsonl`` (``text``) and ``folder/more.parquet`` (``content``): n documents, every 25th
    an insult, plus two broken JSONL records. Returns the counts the steps must account for."""
    folder.mkdir(parents=True)
    texts = [INSULTS[i % 2] if i % 25 == 7 else _paragraph(i) for i in range(n)]
    half = n // 2
    lines = [json.dumps({"id": f"n{i}", "text": t}) for i, t in enumerate(texts[:half])]
    lines += ['{"id": "broken-1", "text": "cut short', json.dumps({"id": "broken-2", "text": ""})]
    (folder / "notes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pq.write_table(pa.table({"id": [f"m{i}" for i in range(n - half)], "content": texts[half:]}),
                   folder / "more.parquet")
    return {"documents": n, "broken": 2, "insults": sum(t in INSULTS for t in texts)}


def readme_commands() -> list[list[str]]:
    """The ``dynacure`` lines of the README subsection's bash block, split as a shell would."""
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"README.md lost its subsection {SECTION!r}"
    body = text.split(SECTION, 1)[1].split("\n### ", 1)[0]
    assert "```bash" in body, f"{SECTION}: no bash block"
    block = body.split("```bash", 1)[1].split("```", 1)[0]
    return [shlex.split(line)[1:] for line in block.splitlines() if line.startswith("dynacure ")]


def quick(argv: list[str]) -> list[str]:
    """The README's command with the test's sizes; an option to shrink that the README lost fails here."""
    values, extra = QUICK.get(argv[0], ({}, []))
    out = list(argv)
    for opt, value in values.items():
        assert opt in out, f"README: `dynacure {' '.join(argv)}` has no {opt} (QUICK expects it)"
        out[out.index(opt) + 1] = value
    return out + extra


def out_of(argv: list[str]) -> str | None:
    return argv[argv.index("--out") + 1] if "--out" in argv else None


@contextmanager
def _in(folder: Path) -> Iterator[None]:
    before = Path.cwd()  # the README's paths are relative: run where its corpus is
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def run(argv: list[str], folder: Path, env: dict[str, str]) -> str:
    with _in(folder):
        res = CliRunner().invoke(app, argv, env={**env, "COLUMNS": "200"})
    assert res.exit_code == 0, (argv, res.exit_code, res.output, res.exception)
    return res.output


def check_step(argv: list[str], folder: Path, counts: dict[str, int]) -> None:
    """What each step must leave behind (README: "What each step writes")."""
    cmd, out = argv[0], out_of(argv)
    if cmd == "score":
        assert list((folder / out / "profanity").glob("*.parquet"))
        quarantined = (folder / out / "quarantine.jsonl").read_text().splitlines()
        assert len(quarantined) == counts["broken"]
    elif cmd == "curate":
        summary = json.loads((folder / out / "summary.json").read_text())
        assert summary["records_read"] == counts["documents"] + counts["broken"]
        assert summary["quarantined"] == counts["broken"]
        assert summary["kept"] + summary["dropped"] + summary["quarantined"] == summary["records_read"]
        manifest = pd.read_parquet(folder / out / "manifest.parquet")
        kept = set(manifest.loc[manifest["decision"] == "keep", "id"])
        assert 0 < len(kept) < counts["documents"]
        assert {"m", "n"} <= {i[0] for i in kept}  # both files, each read from its own text field
    elif cmd == "report":
        target = folder / argv[1]
        assert ((target if target.is_dir() else target.parent) / "report.html").stat().st_size > 1000
    elif cmd == "train":
        assert (folder / out / "model.safetensors").is_file()
        assert json.loads((folder / out / "train_log.json").read_text())["steps"] >= 1
    elif cmd == "evaluate":
        suites = json.loads((folder / out).read_text())["suites"]
        assert {"toxicity", "perplexity"} <= set(suites)
    elif cmd == "audit":
        result = json.loads((folder / out).read_text())["results"]
        assert set(result) == {Path(argv[1]).name}
        assert 0 < result[Path(argv[1]).name]["overall_removal_rate"] < 1


@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> dict:
    """The walk-through's steps that need no public data, run once for the tests below."""
    folder = tmp_path_factory.mktemp("walk")
    counts = write_corpus(folder / CORPUS)
    env = {"DYNACURE_HOME": str(folder / "home"), "DYNACURE_DATA": str(folder / "no-public-data")}
    cmds = readme_commands()
    ran = []
    for argv in cmds:
        if argv[0] in NEEDS_DATA or (argv[0] == "report" and "eval" in argv[1]):
            continue
        argv = quick(argv)
        ran.append((argv, run(argv, folder, env)))
        check_step(argv, folder, counts)
    return {"folder": folder, "counts": counts, "env": env, "cmds": cmds, "ran": ran}


def test_readme_walk_goes_from_score_to_report(walk):
    names = [" ".join(a[:1]) for a in walk["cmds"]]
    # the README's order: score, curate (two strategies), report, train, judge, evaluate, report, audit
    assert names == ["score", "curate", "curate", "report", "train", "train-scorer", "evaluate", "report",
                     "audit"], names
    assert {a[a.index("--strategy") + 1] for a in walk["cmds"] if a[0] == "curate"} == {"heuristic",
                                                                                      "classifier"}
    assert all(a[1] == CORPUS for a in walk["cmds"] if a[0] in ("score", "curate"))
    ran = [a[0] for a, _ in walk["ran"]]
    assert ran == ["score", "curate", "curate", "report", "train", "audit"]
    score_out = walk["ran"][0][1]
    assert "more.parquet: 'content'" in score_out  # the Parquet file's text field, said per file
    manifest = pd.read_parquet(walk["folder"] / "cur" / "heuristic" / "manifest.parquet")
    insults = manifest.loc[manifest["reason"].str.startswith("toxicity"), "id"]
    assert len(insults) == walk["counts"]["insults"]  # the heuristic drops exactly the insults as toxic


def test_readme_walk_resumes_and_refuses_another_run(walk):
    folder, env = walk["folder"], walk["env"]
    score = next(a for a, _ in walk["ran"] if a[0] == "score")
    again = run(score, folder, env)
    row = next(line for line in again.splitlines() if "│ profanity" in line)
    scored_now, resumed = (c.strip() for c in row.split("│")[2:4])
    assert scored_now == "0" and resumed.startswith(f"{walk['counts']['documents']} "), row
    heuristic = next(a for a, _ in walk["ran"] if a[0] == "curate" and "heuristic" in a)
    other = [x if x != "heuristic" else "classifier" for x in heuristic]
    with _in(folder):
        res = CliRunner().invoke(app, other, env={**env, "COLUMNS": "200"})
    assert res.exit_code == 2 and "--overwrite" in res.output, res.output
    run([*other, "--overwrite"], folder, env)
    assert json.loads((folder / "cur" / "heuristic" / "summary.json").read_text())["strategy"] == "classifier"


def test_readme_walk_evaluates_with_public_data(walk, shared_data, tmp_path):
    folder = walk["folder"]
    env = {**walk["env"], "DYNACURE_DATA": str(shared_data)}
    steps = [quick(a) for a in walk["cmds"] if a[0] in NEEDS_DATA or (a[0] == "report" and "eval" in a[1])]
    assert [a[0] for a in steps] == ["train-scorer", "evaluate", "report"]
    outputs = {}
    for argv in steps:
        outputs[argv[0]] = run(argv, folder, env)
        check_step(argv, folder, walk["counts"])
    assert (Path(env["DYNACURE_HOME"]) / "models" / "judge").is_dir()
    # the whole block again: a finished train run re-saves the same weights, and the evaluation is reused
    train = next(a for a, _ in walk["ran"] if a[0] == "train")
    assert "0 in this run" in run(train, folder, env)
    again = run(steps[1], folder, env)
    assert "toxicity: reused" in again and "perplexity: reused" in again, again


class _WordFlag(Signal):
    """Toxicity 1 for a text holding ``word`` (a constructor option, as hf_classifier's ``model``)."""

    name = "walk_word_flag"
    columns = ("toxicity",)

    def __init__(self, word: str = "idiot") -> None:
        self.word = word

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        return {"toxicity": np.array([float(self.word in t) for t in texts])}


def test_curate_passes_signal_args_to_the_signals_it_scores(tmp_path):
    if _WordFlag.name not in available_signals():
        register_signal(_WordFlag.name)(_WordFlag)
    counts = write_corpus(tmp_path / CORPUS)
    env = {"DYNACURE_HOME": str(tmp_path / "home"), "DYNACURE_DATA": str(tmp_path / "none")}
    base = ["curate", CORPUS, "--strategy", "classifier", "--param", f"signal={_WordFlag.name}",
            "--budget", "0.9", "--out", "cur"]
    run([*base, "--signal-arg", f"{_WordFlag.name}.word=river"], tmp_path, env)
    scored = pd.concat(pd.read_parquet(p) for p in (tmp_path / "cur" / "attributes" / _WordFlag.name
                                                    ).glob("*.parquet"))
    flagged = set(scored.loc[scored[f"{_WordFlag.name}__toxicity"] == 1.0, "id"])
    manifest = pd.read_parquet(tmp_path / "cur" / "manifest.parquet").set_index("id")
    assert flagged and len(flagged) < counts["documents"]
    assert (manifest.loc[sorted(flagged), "decision"] == "drop").all()  # scored with word=river
    with _in(tmp_path):
        res = CliRunner().invoke(app, [*base, "--signal-arg", f"{_WordFlag.name}.colour=red",
                                       "--out", "cur2"], env=env)
        assert res.exit_code == 2 and "bad --signal-arg" in res.output, res.output
        res = CliRunner().invoke(app, ["curate", CORPUS, "--strategy", "heuristic", "--budget", "0.5",
                                       "--attributes", "cur/attributes", "--out", "cur3",
                                       "--signal-arg", "profanity.x=1"], env=env)
        assert res.exit_code == 2 and "pass them to `dynacure score`" in res.output, res.output
        # a loop strategy takes them for its probes: once, not also as --param signal_kwargs
        res = CliRunner().invoke(app, ["curate", CORPUS, "--strategy", "bandit", "--budget", "0.5",
                                       "--attributes", "cur/attributes", "--out", "cur4",
                                       "--param", 'signal_kwargs={"profanity": {"a": 1}}',
                                       "--signal-arg", "profanity.b=2"], env=env)
        assert res.exit_code == 2 and "given twice" in res.output, res.output
    assert not any((tmp_path / d).exists() for d in ("cur2", "cur3", "cur4"))


def test_evaluation_key_is_the_model_bytes_not_their_mtime(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights-1")
    (model / "learner.json").write_text("{}")
    key = model_fingerprint(model)
    os.utime(model / "model.safetensors", ns=(1, 1))
    (model / "eval.json").write_text("{}")  # results beside the model do not count
    assert model_fingerprint(model) == key
    (model / "model.safetensors").write_bytes(b"weights-2")
    assert model_fingerprint(model) != key
