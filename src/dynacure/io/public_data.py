"""Loaders for the offline copies of public datasets (``../shared/data``), read from a path, never copied.

Every loader returns plain Python/pandas objects with stable column names and raises
``FileNotFoundError`` naming the missing file, so callers (and tests) can skip with a clear reason.

Disjoint uses of the labeled toxicity sets (TweetEval train, Davidson, Jigsaw train pools) are fixed here,
once, by a stable hash of (dataset, row): 40% may enter the raw pool, 40% train the reward's safety
scorers, 20% train the evaluation judge. So no scorer ever scores documents it was trained on, and the
judge never shares data with the reward. HH-RLHF test dialogues are split in halves the same way: one
half may enter the pool (and train the alignment proxy), the other is kept for evaluation.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Literal

import pandas as pd

Part = Literal["pool", "reward", "judge"]
DEFAULT_DATA_ENV = "DYNACURE_DATA"


def default_data_dir() -> Path:
    """``$DYNACURE_DATA``, else ``../shared/data`` from the working directory, else beside the repository."""
    env = os.environ.get(DEFAULT_DATA_ENV)
    if env:
        return Path(env)
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        cand = base.parent / "shared" / "data"
        if cand.exists():
            return cand
    return Path.cwd().parent / "shared" / "data"


def _dir(data_dir: str | Path | None) -> Path:
    return Path(data_dir) if data_dir is not None else default_data_dir()


def _need(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path}: public dataset file not found (is ../shared/data present?)")
    return path


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` on every machine and run."""
    return int(hashlib.md5(key.encode()).hexdigest()[:8], 16) / 2**32


def part_of(dataset: str, row: int) -> Part:
    f = stable_fraction(f"{dataset}:{row}")
    return "pool" if f < 0.4 else ("reward" if f < 0.8 else "judge")


def _with_parts(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    df = df.reset_index(drop=True)
    df["row"] = range(len(df))
    df["part"] = [part_of(dataset, i) for i in df["row"]]
    df["dataset"] = dataset
    return df


# --- toxicity-labeled sets -------------------------------------------------------------------------

def tweeteval(task: Literal["offensive", "hate"], split: Literal["train", "val", "test"],
              data_dir: str | Path | None = None) -> pd.DataFrame:
    """Columns: text, label (1 = offensive/hate), row, part, dataset."""
    path = _need(_dir(data_dir) / "tweeteval-offensive-hate" / f"{task}_{split}.csv")
    df = pd.read_csv(path, keep_default_na=False)[["text", "label"]]
    return _with_parts(df, f"tweeteval_{task}_{split}")


def davidson(data_dir: str | Path | None = None) -> pd.DataFrame:
    """Columns: text, label (1 = hate or offensive), cls (0 hate, 1 offensive, 2 neither), ...."""
    path = _need(_dir(data_dir) / "davidson-hate-offensive" / "labeled_data.csv")
    raw = pd.read_csv(path, keep_default_na=False)
    df = pd.DataFrame({"text": raw["tweet"].astype(str), "cls": raw["class"].astype(int)})
    df["label"] = (df["cls"] != 2).astype(int)
    return _with_parts(df, "davidson")


JIGSAW_LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")


def jigsaw(split: Literal["train", "test"], data_dir: str | Path | None = None) -> pd.DataFrame:
    """Columns: text, label (1 = any toxic label), the six Jigsaw labels, pool_file, row, part, dataset."""
    folder = _need(_dir(data_dir) / "jigsaw-toxic-comments-sample" / "data_pools")
    frames = []
    for f in sorted(folder.glob(f"{split}.*.csv")):
        raw = pd.read_csv(f, keep_default_na=False)
        raw["pool_file"] = f.name
        frames.append(raw)
    if not frames:
        raise FileNotFoundError(f"{folder}: no {split}.*.csv files")
    raw = pd.concat(frames, ignore_index=True)
    df = pd.DataFrame({"text": raw["comment_text"].astype(str), "pool_file": raw["pool_file"]})
    for lab in JIGSAW_LABELS:
        df[lab] = raw[lab].astype(int)
    df["label"] = (df[list(JIGSAW_LABELS)].sum(axis=1) > 0).astype(int)
    return _with_parts(df, f"jigsaw_{split}")


# --- alignment -------------------------------------------------------------------------------------

HH_SUBSETS = ("harmless-base", "helpful-base")


def _read_jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(_need(path), "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def split_dialogue(text: str) -> tuple[str, str]:
    """Split an HH-RLHF dialogue into (prefix up to and including the last 'Assistant:', final reply)."""
    marker = "\n\nAssistant:"
    i = text.rfind(marker)
    if i < 0:
        return "", text
    return text[: i + len(marker)], text[i + len(marker):]


def hh_rlhf(subset: str = "harmless-base", half: Literal["pool", "eval", "all"] = "all",
            data_dir: str | Path | None = None) -> pd.DataFrame:
    """Columns: chosen, rejected, prefix, chosen_reply, rejected_reply, subset, row, half."""
    base = _dir(data_dir) / "hh-rlhf"
    path = base / subset / "test.jsonl.gz"
    if not path.exists():
        path = base / "unverified" / subset / "test.jsonl.gz"
    rows = _read_jsonl_gz(path)
    df = pd.DataFrame(rows)[["chosen", "rejected"]]
    pre_c = [split_dialogue(t) for t in df["chosen"]]
    pre_r = [split_dialogue(t) for t in df["rejected"]]
    df["prefix"] = [p for p, _ in pre_c]
    df["chosen_reply"] = [r for _, r in pre_c]
    df["rejected_reply"] = [r for _, r in pre_r]
    df["subset"] = subset
    df["row"] = range(len(df))
    df["half"] = ["pool" if stable_fraction(f"hh:{subset}:{i}") < 0.5 else "eval" for i in df["row"]]
    return df if half == "all" else df[df["half"] == half].reset_index(drop=True)


# --- clean language-modelling text ---------------------------------------------------------------

def _gz_lines(path: Path) -> list[str]:
    with gzip.open(_need(path), "rt", encoding="utf-8") as fh:
        return fh.read().splitlines()


def wikitext2(split: Literal["train", "valid", "test"], data_dir: str | Path | None = None) -> list[str]:
    """Raw lines of the tokenized WikiText-2 file (blank lines separate paragraphs; '= Title =' headings)."""
    return _gz_lines(_dir(data_dir) / "wikitext-2" / f"wiki.{split}.tokens.gz")


def ptb(split: Literal["train", "valid", "test"], data_dir: str | Path | None = None) -> list[str]:
    """One sentence per line (Mikolov preprocessing)."""
    return _gz_lines(_dir(data_dir) / "ptb" / f"ptb.{split}.txt.gz")


# --- evaluation sets -------------------------------------------------------------------------------

def realtoxicityprompts(kind: Literal["toxic", "nontoxic"],
                        data_dir: str | Path | None = None) -> pd.DataFrame:
    """Columns: prompt, prompt_toxicity, continuation, kind."""
    rows = _read_jsonl_gz(_dir(data_dir) / "realtoxicityprompts-decodingtrust" / f"{kind}.jsonl.gz")
    return pd.DataFrame({
        "prompt": [r["prompt"]["text"] for r in rows],
        "prompt_toxicity": [r["prompt"].get("toxicity") for r in rows],
        "continuation": [r["continuation"]["text"] for r in rows],
        "kind": kind,
    })


def truthfulqa_mc(data_dir: str | Path | None = None) -> list[dict]:
    """The 817 items of ``mc_task.json``: question, mc1_targets, mc2_targets. Never for training."""
    return json.loads(_need(_dir(data_dir) / "truthfulqa" / "mc_task.json").read_text(encoding="utf-8"))


def bbq(data_dir: str | Path | None = None) -> pd.DataFrame:
    folder = _need(_dir(data_dir) / "bbq")
    rows: list[dict] = []
    for f in sorted(folder.glob("*.jsonl.gz")):
        rows.extend(_read_jsonl_gz(f))
    return pd.DataFrame(rows)


def winogender(data_dir: str | Path | None = None) -> pd.DataFrame:
    base = _dir(data_dir) / "winogender"
    return pd.read_csv(_need(base / "all_sentences.tsv"), sep="\t")


def advbench(data_dir: str | Path | None = None) -> pd.DataFrame:
    return pd.read_csv(_need(_dir(data_dir) / "advbench" / "harmful_behaviors.csv"))


def xstest(data_dir: str | Path | None = None) -> pd.DataFrame:
    return pd.read_csv(_need(_dir(data_dir) / "xstest" / "xstest_prompts.csv"))
