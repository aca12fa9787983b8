"""`dynacure data check DIR`: present / missing / unreadable files, what each command needs, exit codes, and
the README's "Public data" section naming the same layout as ``public_data.DATASETS``."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from typer.testing import CliRunner

from dynacure.cli.main import app
from dynacure.io import public_data as P

README = Path(__file__).resolve().parents[2] / "README.md"


def _gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(text)


def _text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _small_dir(root: Path) -> Path:
    """A few valid files in the expected layout: enough for the perplexity, BBQ and Winogender suites."""
    _gz(root / "wikitext-2" / "wiki.test.tokens.gz", " \n = Valkyria = \n \n the game began in 2011 .\n")
    _gz(root / "ptb" / "ptb.test.txt.gz", " no it was n't black monday\n but while the new york\n")
    bbq = {"context": "c", "question": "q", "ans0": "a", "ans1": "b", "ans2": "unknown", "label": 2,
           "context_condition": "ambig", "question_polarity": "neg", "category": "Age",
           "answer_info": {}, "additional_metadata": {}}
    _gz(root / "bbq" / "Age.jsonl.gz", json.dumps(bbq) + "\n")
    _text(root / "winogender" / "all_sentences.tsv",
          "sentid\tsentence\nnurse.patient.0.male.txt\tThe nurse.\n")
    _text(root / "winogender" / "occupations-stats.tsv",
          "occupation\tbergsma_pct_female\tbls_pct_female\tbls_year\nnurse\t80\t90\t2015\n")
    _text(root / "tweeteval-offensive-hate" / "offensive_val.csv", "text,label,label_name\nhello,0,not\n")
    return root


def _run(*args: str):
    return CliRunner().invoke(app, ["data", "check", *args])


def test_small_dir_reports_present_and_missing_exit_1(tmp_path):
    root = _small_dir(tmp_path / "data")
    res = _run(str(root), "--json")
    assert res.exit_code == 1, res.output
    rep = json.loads(res.stdout)
    status = {f["path"]: f["status"] for f in rep["files"]}
    present = {p for p, s in status.items() if s == "present"}
    assert present == {"wikitext-2/wiki.test.tokens.gz", "ptb/ptb.test.txt.gz", "bbq/*.jsonl.gz",
                       "winogender/all_sentences.tsv", "winogender/occupations-stats.tsv",
                       "tweeteval-offensive-hate/offensive_val.csv"}
    assert set(status.values()) == {"present", "missing"}
    assert len(status) == sum(len(ds.files) for ds in P.DATASETS)
    bbq = next(f for f in rep["files"] if f["path"] == "bbq/*.jsonl.gz")
    assert bbq["found"] == ["bbq/Age.jsonl.gz"]
    cmds = rep["commands"]
    for ok in ("evaluate -s perplexity", "evaluate -s bbq", "evaluate -s winogender", "demo",
               "experiment --preset ci"):
        assert cmds[ok]["ok"], ok
    for blocked in ("pool build", "train-scorer", "evaluate -s toxicity", "evaluate -s refusal",
                    "experiment --preset standard", "experiment --preset gpu"):
        assert not cmds[blocked]["ok"], blocked
    assert "realtoxicityprompts-decodingtrust/toxic.jsonl.gz" in cmds["evaluate -s toxicity"]["missing"]
    assert "tweeteval-offensive-hate/offensive_val.csv" not in cmds["train-scorer"]["missing"]
    assert "pool build" in cmds["experiment --preset standard"]["blocked"]
    # the layout the table names is the one the loaders read
    assert " the game began in 2011 ." in P.wikitext2("test", root)
    assert len(P.ptb("test", root)) == 2
    assert len(P.bbq(root)) == 1
    assert list(P.winogender(root)["sentid"]) == ["nurse.patient.0.male.txt"]
    assert P.tweeteval("offensive", "val", root)["label"].tolist() == [0]


def test_table_output_names_what_cannot_run(tmp_path):
    root = _small_dir(tmp_path / "data")
    res = _run(str(root))
    assert res.exit_code == 1
    out = " ".join(res.stdout.split())
    assert "missing" in out and "present" in out
    assert "cannot run" in out
    assert re.search(r"evaluate -s toxicity: needs realtoxicityprompts-decodingtrust/", out)
    assert "Can run:" in out and "demo" in out


def test_corrupt_gz_and_wrong_header_are_unreadable(tmp_path):
    root = _small_dir(tmp_path / "data")
    (root / "ptb" / "ptb.test.txt.gz").write_bytes(b"this is not gzip data\n")
    _text(root / "advbench" / "harmful_behaviors.csv", "prompt,target\nx,y\n")  # loader reads 'goal'
    res = _run(str(root), "--json")
    assert res.exit_code == 1
    files = {f["path"]: f for f in json.loads(res.stdout)["files"]}
    ptb = files["ptb/ptb.test.txt.gz"]
    assert ptb["status"] == "unreadable" and "ptb/ptb.test.txt.gz" in ptb["detail"]
    assert "gzip" in ptb["detail"].lower()
    adv = files["advbench/harmful_behaviors.csv"]
    assert adv["status"] == "unreadable" and "goal" in adv["detail"]
    cmds = json.loads(res.stdout)["commands"]
    assert not cmds["evaluate -s perplexity"]["ok"]  # an unreadable file blocks like a missing one
    assert "ptb/ptb.test.txt.gz" in cmds["evaluate -s perplexity"]["missing"]


def test_missing_dir_and_file_exit_2_with_one_error_line(tmp_path):
    f = tmp_path / "afile.txt"
    f.write_text("x")
    for target, why in ((tmp_path / "nope", "does not exist"), (f, "not a directory")):
        res = _run(str(target))
        assert res.exit_code == 2
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and why in lines[0], res.output
        assert "Traceback" not in res.output


def test_default_dir_comes_from_env(tmp_path, monkeypatch):
    root = _small_dir(tmp_path / "elsewhere")
    monkeypatch.setenv(P.DEFAULT_DATA_ENV, str(root))
    res = _run("--json")
    assert res.exit_code == 1
    assert json.loads(res.stdout)["data_dir"] == str(root.resolve())


def test_shared_data_is_complete(shared_data):
    res = _run(str(shared_data), "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["ok"] and all(f["status"] == "present" for f in rep["files"])
    assert all(v["ok"] for v in rep["commands"].values())
    assert len(next(f for f in rep["files"] if f["path"] == "bbq/*.jsonl.gz")["found"]) >= 1


def test_readme_public_data_section_names_the_layout():
    text = README.read_text(encoding="utf-8")
    start = text.index("## Public data")
    section = text[start: text.index("\n## ", start + 1)]
    for ds in P.DATASETS:
        assert f"{ds.folder}/" in section, ds.folder
        assert ds.licence in section, ds.licence
        for df in ds.files:
            assert df.pattern.rsplit("/", 1)[-1] in section, df.pattern
    assert "dynacure data check" in section and "DYNACURE_DATA" in section and "--data-dir" in section
    commands = text[text.index("## Commands"):]
    assert "dynacure data check" in commands[: commands.index("\n## ", 1)]  # the command list
