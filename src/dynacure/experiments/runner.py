"""Runs an experiment: prepare the corpus, score it once, then for every cell of the grid select, train and
evaluate; cells run in a process pool, each writes its folder atomically and a DONE marker last, so a
re-run skips finished cells and redoes interrupted ones. Each stage is one small function.

RUNS layout::

    experiment.json             the config, corpus facts, scoring time (checked on resume)
    corpus/                     the materialised corpus (demo / pool / subsample), or the user's path is used
    models/                     demo-trained scorers and judge (scoring.demo_models)
    attributes/<signal>/...     scores, once per experiment; attributes/DONE when complete
    table.parquet               id, source, n_tokens, text + every attribute column (what selectors read)
    documents.parquet           id, source, n_tokens, gold labels, toxicity_level (what reports read)
    evaldata/                   target.jsonl (clean texts), prompts.jsonl / heldout.txt (demo evaluation)
    tokenizer.json              one tokenizer for every cell (trained on the pool), so perplexities compare
    cells/<cell_id>/            manifest.parquet, metrics.json, train_log.json, run.json, DONE
    results.parquet, results.json
"""

from __future__ import annotations

import concurrent.futures as cf
import inspect
import json
import logging
import math
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dynacure.config import ConfigError
from dynacure.experiments.cells import (
    CELL_FILES,
    DONE,
    MODEL_DIR,
    Cell,
    cell_dir,
    expand_grid,
    has_model,
    is_done,
)
from dynacure.experiments.config import ExperimentConfig
from dynacure.experiments.results import RESULTS_FORMAT_VERSION, collect_results
from dynacure.io.atomic import atomic_path, write_json_atomic, write_text_atomic
from dynacure.io.digest import folder_digest
from dynacure.io.document import count_tokens
from dynacure.io.jsonfile import read_versioned
from dynacure.learners.base import Learner
from dynacure.selectors.base import Selection, Selector
from dynacure.selectors.common import toxicity_columns

if TYPE_CHECKING:
    from dynacure.learners.factory import LearnerSpec

log = logging.getLogger(__name__)

EXPERIMENT_FORMAT_VERSION = 1
TOKENIZER_SAMPLE = 5000  # pool documents the shared tokenizer is trained on


# ---- progress --------------------------------------------------------------------------------------------


@dataclass
class Events:
    """Callbacks the CLI turns into Rich progress; the defaults only log."""

    stage: Callable[[str], None] = lambda msg: log.info("%s", msg)
    cells_total: Callable[[int, int], None] = lambda total, done: None  # (cells, already done)
    cell_started: Callable[[str], None] = lambda cell_id: None
    cell_finished: Callable[[str, float], None] = lambda cell_id, seconds: None
    # (what, done, total) for evaluation units inside a cell; in-process runs only
    detail: Callable[[str, int, int], None] = lambda what, done, total: None
    inner_progress: bool = False  # let training draw its own Rich bar (in-process runs under a live display)


# ---- the workspace -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def attrs(self) -> Path:
        return self.root / "attributes"

    @property
    def table(self) -> Path:
        return self.root / "table.parquet"

    @property
    def documents(self) -> Path:
        return self.root / "documents.parquet"

    @property
    def evaldata(self) -> Path:
        return self.root / "evaldata"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer.json"

    @property
    def experiment(self) -> Path:
        return self.root / "experiment.json"


def config_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    return json.loads(cfg.model_dump_json())


# Config parts that may change between a run and its resume without changing any finished cell's meaning.
_RESUME_FREE = ("workers",)


def _normalised(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored config with the defaults of fields added since it was written filled in (so adding an
    option with a default that keeps the old behaviour does not block resuming older RUNS folders)."""
    try:
        return config_dict(ExperimentConfig.model_validate(stored))
    except ValueError:  # written by a version with other fields: compare as stored
        return stored


# ---- what the outputs depend on outside RUNS (the environment, checked on resume) --------------------------

# A demo experiment (generated corpus, demo-trained models) with only these signals and suites reads no file
# outside RUNS: the toxicity scorer, judge and quality reference LM are trained into RUNS/models.
SELF_CONTAINED_SIGNALS = frozenset({"profanity", "quality", "toxicity_ngram", "pii"})
SELF_CONTAINED_SUITES = frozenset({"toxicity", "perplexity"})
# Signals that read a trained model folder (``model_dir`` argument, else $DYNACURE_HOME/models/<name>).
MODEL_SIGNALS = ("toxicity_transformer", "toxicity_ngram", "toxicity_minilm", "alignment")


def reads_public_data(cfg: ExperimentConfig) -> bool:
    """Whether any stage may read the public data folder; False only for a self-contained demo run."""
    if cfg.corpus.kind != "demo" or not cfg.scoring.demo_models:
        return True
    if set(cfg.scoring.signals) - SELF_CONTAINED_SIGNALS:
        return True
    if set(cfg.evaluation.suites) - SELF_CONTAINED_SUITES:
        return True
    if any("data_dir" in p for p in [*cfg.scoring.params.values(), *cfg.evaluation.options.values()]):
        return True
    # the loop's alignment probe reads HH-RLHF pairs only when a strategy asks for them explicitly
    return any(is_loop(st.name) and st.params.get("use_pairs") is True for st in cfg.strategies)


def _data_dirs(cfg: ExperimentConfig) -> list[Path]:
    """Every data folder a stage may read: the default one, corpus.data_dir and any signal/suite data_dir."""
    from dynacure.io.public_data import default_data_dir

    dirs = [default_data_dir()]
    if cfg.corpus.data_dir is not None:
        dirs.append(Path(cfg.corpus.data_dir))
    for p in [*cfg.scoring.params.values(), *cfg.evaluation.options.values()]:
        if p.get("data_dir"):
            dirs.append(Path(str(p["data_dir"])))
    out: list[Path] = []
    for d in dirs:
        if d.resolve() not in out:
            out.append(d.resolve())
    return out


def _file_listing(root: Path) -> dict[str, list[int]] | None:
    """relative path -> [size, mtime_ns] of every non-hidden file under ``root`` (None when absent).

    Sizes and modification times, not digests: public data folders hold gigabytes, and a changed, added
    or removed file is what a resume must notice."""
    if not root.exists():
        return None
    if root.is_file():
        st = root.stat()
        return {root.name: [st.st_size, st.st_mtime_ns]}
    out: dict[str, list[int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            st = path.stat()
            out[path.relative_to(root).as_posix()] = [st.st_size, st.st_mtime_ns]
    return out


def model_digest(folder: Path) -> str | None:
    """BLAKE2b of a model folder's files (names and bytes); None when the folder holds no whole model yet
    (no ``meta.json`` of a scorer, ``learner.json`` of a learner or ``base.json`` of the base: a folder still
    being built, whose files change until it is done)."""

    whole = ("meta.json", "learner.json", "base.json")
    if not folder.is_dir():
        return None
    # a Hugging Face folder: config.json beside its weights; a base being built also has a config.json, but
    # only checkpoints until base.json is written
    hf = (folder / "config.json").exists() and any(folder.glob("*.safetensors")) \
        and not (folder / "checkpoint").exists()
    if not hf and not any((folder / m).exists() for m in whole):
        return None
    return folder_digest(folder)


def models_used(cfg: ExperimentConfig, ws: Workspace) -> dict[str, Path]:
    """name -> folder of every trained model the experiment scores or judges with."""
    from dynacure.signals.models import JUDGE, TOXICITY_NGRAM, resolve

    kw = signal_kwargs(cfg, ws)
    used: dict[str, Path] = {}
    for name in MODEL_SIGNALS:
        if name in cfg.scoring.signals:
            used[name] = resolve(name, kw.get(name, {}).get("model_dir"))
    if "quality" in cfg.scoring.signals and kw.get("quality", {}).get("lm_path"):
        used["quality reference LM"] = Path(str(kw["quality"]["lm_path"]))
    if any(is_loop(st.name) for st in cfg.strategies):  # the loop's reward-side toxicity scorer
        loop_dir = loop_signal_kwargs(cfg, ws).get(TOXICITY_NGRAM, {}).get("model_dir")
        used.setdefault(TOXICITY_NGRAM, resolve(TOXICITY_NGRAM, loop_dir))
    if "hf_classifier" in cfg.scoring.signals and kw.get("hf_classifier", {}).get("model"):
        used["hf_classifier"] = Path(str(kw["hf_classifier"]["model"]))
    if "toxicity" in cfg.evaluation.suites and cfg.learner.train:
        used[JUDGE] = (Path(cfg.evaluation.judge) if cfg.evaluation.judge is not None
                       else resolve(JUDGE, ws.models if cfg.scoring.demo_models else None))
    if cfg.learner.base == "pretrained" and cfg.learner.train:  # the base every cell fine-tunes
        from dynacure.learners.pretrain import base_dir

        used["base learner"] = base_dir(cfg.learner.base_config(), cfg.corpus.data_dir)
    return used


def environment(cfg: ExperimentConfig, ws: Workspace) -> dict[str, Any]:
    """What the outputs depend on outside the config: data files found and model files' digests.

    ``data``: per data folder, its file listing (None: the folder is absent), or None for a demo run that
    reads no public data. ``corpus``: the listing of a user corpus used in place. ``models``: name ->
    {path, digest} (digest None: not trained yet, e.g. the demo models before their stage ran)."""
    data = {str(d): _file_listing(d) for d in _data_dirs(cfg)} if reads_public_data(cfg) else None
    corpus = None
    if cfg.corpus.kind == "path" and cfg.corpus.path is not None:
        corpus = {str(Path(cfg.corpus.path).resolve()): _file_listing(Path(cfg.corpus.path))}
    models = {name: {"path": _record_path(folder, ws), "digest": model_digest(folder)}
              for name, folder in models_used(cfg, ws).items()}
    return {"data": data, "corpus": corpus, "models": models}


def _record_path(folder: Path, ws: Workspace) -> str:
    """A model folder as recorded: relative to RUNS when inside it (so a moved RUNS folder still resumes)."""
    try:
        return folder.resolve().relative_to(ws.root.resolve()).as_posix()
    except ValueError:
        return str(folder.resolve())


def _listing_changes(label: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    if old is None:  # not read before (e.g. a strategy added to the grid now needs it): nothing to compare
        return []
    out = []
    for folder in old.keys() | (new or {}).keys():
        a, b = old.get(folder), (new or {}).get(folder)
        if a == b:
            continue
        if a is None or b is None:
            out.append(f"{label} {folder} {'appeared' if a is None else 'is gone'}")
            continue
        added = sorted(b.keys() - a.keys())
        removed = sorted(a.keys() - b.keys())
        changed = sorted(k for k in a.keys() & b.keys() if a[k] != b[k])
        for what, names in (("added", added), ("removed", removed), ("changed", changed)):
            if names:
                more = f" and {len(names) - 3} more" if len(names) > 3 else ""
                out.append(f"{label} {folder}: {what} {', '.join(names[:3])}{more}")
    return out


def environment_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Plain descriptions of what differs between a stored environment and the current one."""
    out = _listing_changes("data folder", old.get("data"), new.get("data"))
    out += _listing_changes("corpus", old.get("corpus"), new.get("corpus"))
    for name, now in new.get("models", {}).items():
        was = old.get("models", {}).get(name)
        # a model absent when the run started was trained by it (demo models, on-the-fly scorers)
        if was is None or was.get("digest") is None:
            continue
        if now["digest"] is None:
            out.append(f"model {name} ({now['path']}) is gone")
        elif was["digest"] != now["digest"]:  # the same files elsewhere are the same model
            out.append(f"model {name} is a different one ({was['path']} digest {was['digest'][:12]} -> "
                       f"{now['path']} digest {now['digest'][:12]})")
    return out


def merge_environment(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The current environment, keeping recorded entries the current config no longer lists."""
    models = {**old.get("models", {}), **new.get("models", {})}
    return {**old, **new, "models": models}


def open_workspace(cfg: ExperimentConfig, runs: str | Path) -> Workspace:
    """Create RUNS or check that it was made by the same experiment (a resume must not mix configs) in the
    same environment: the data files found and the model files used (``environment``)."""
    ws = Workspace(Path(runs))
    ws.root.mkdir(parents=True, exist_ok=True)
    cur = config_dict(cfg)
    if ws.experiment.exists():
        prev = read_versioned(ws.experiment, EXPERIMENT_FORMAT_VERSION, hint="use a new RUNS folder")
        old = {k: v for k, v in _normalised(prev.get("config", {})).items() if k not in _RESUME_FREE}
        new = {k: v for k, v in cur.items() if k not in _RESUME_FREE}
        # Grid axes may grow (more seeds, strategies, budgets); what every cell shares may not change.
        shared = ("corpus", "scoring", "learner", "evaluation", "target_size", "format_version")
        changed = [k for k in shared if old.get(k) != new.get(k)]
        if changed:
            raise ConfigError(
                f"{ws.root}: holds an experiment with a different {', '.join(changed)}; resume "
                "with the same config or choose a new --out folder"
            )
        env = environment(cfg, ws)
        if "environment" not in prev:
            raise ConfigError(
                f"{ws.experiment}: no record of the data and model files its outputs were made with "
                "(written by an older dynacure), so a resume could silently mix environments: use a new "
                "--out folder"
            )
        changes = environment_changes(prev["environment"], env)
        if changes:
            raise ConfigError(
                f"{ws.root}: what its corpus, scores and cells were made from changed since they were "
                f"written: {'; '.join(changes)}. Resuming would reuse outputs of the old environment: use a "
                "new --out folder (or restore the old files)"
            )
        prev["config"] = cur
        prev["environment"] = merge_environment(prev["environment"], env)
        write_json_atomic(ws.experiment, prev)
    else:
        write_json_atomic(ws.experiment, {"format_version": EXPERIMENT_FORMAT_VERSION, "config": cur,
                                          "environment": environment(cfg, ws)})
    return ws


def describe_reuse(cfg: ExperimentConfig, runs: str | Path) -> str | None:
    """One plain line saying what a run on an existing RUNS folder reuses; None for a new folder."""
    ws = Workspace(Path(runs))
    if not ws.experiment.exists():
        return None
    parts = []
    if (ws.corpus / "corpus.json").exists() or (ws.root / "pool" / "corpus.json").exists():
        parts.append("corpus")
    if (ws.models / DONE).exists():
        parts.append("demo models")
    if (ws.attrs / DONE).exists():
        parts.append("scores")
    cells = expand_grid(cfg)
    done = sum(is_done(ws.root, c) for c in cells)
    if not parts and not done:
        return None
    return f"resuming {ws.root}: reusing {', '.join(parts + [f'{done} of {len(cells)} cells'])}"


def _update_experiment(ws: Workspace, **fields: Any) -> None:
    info = json.loads(ws.experiment.read_text())
    info.update(fields)
    write_json_atomic(ws.experiment, info)


def _experiment_info(ws: Workspace) -> dict[str, Any]:
    return json.loads(ws.experiment.read_text())


# ---- stage 1: corpus ---------------------------------------------------------------------------------------


def _stable_subsample(docs: list, k: int | None, seed: int = 0) -> list:
    if k is None or k >= len(docs):
        return docs
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(docs), size=k, replace=False))
    return [docs[i] for i in idx]


def prepare_corpus(cfg: ExperimentConfig, ws: Workspace) -> Path:
    """Materialise the corpus under RUNS/corpus (demo, pool or a subsample) or use the user's path."""
    from dynacure.io.writers import read_corpus_manifest, write_corpus

    c = cfg.corpus
    if c.kind == "path" and c.max_docs is None:
        assert c.path is not None
        if not c.path.exists():
            raise FileNotFoundError(f"corpus.path {c.path}: no such file or folder")
        return c.path
    if (ws.corpus / "corpus.json").exists():
        read_corpus_manifest(ws.corpus)  # checks the format version
        return ws.corpus
    if c.kind == "demo":
        from dynacure.io.demo_corpus import generate_demo_corpus

        docs = generate_demo_corpus(
            n_docs=c.demo.n_docs,
            toxic_share=c.demo.toxic_share,
            low_quality_share=c.demo.low_quality_share,
            seed=c.demo.seed,
        )
        desc = (
            f"generated demo corpus ({c.demo.n_docs} documents, {c.demo.toxic_share:.0%} toxic, "
            f"{c.demo.low_quality_share:.0%} low quality, seed {c.demo.seed})"
        )
    elif c.kind == "pool":
        from dynacure.io.pool import build_pool
        from dynacure.io.public_data import default_data_dir
        from dynacure.io.readers import read_documents

        pool_dir = ws.root / "pool"
        if not (pool_dir / "corpus.json").exists():
            build_pool(c.data_dir or default_data_dir(), pool_dir)
        if c.max_docs is None:
            return pool_dir
        docs = list(read_documents(pool_dir))
        desc = f"raw pool from public datasets ({c.data_dir or default_data_dir()})"
    else:
        from dynacure.io.readers import read_documents

        assert c.path is not None
        docs = list(read_documents(c.path))
        desc = f"corpus {c.path}"
    docs = _stable_subsample(docs, c.max_docs)
    if c.max_docs is not None:
        desc += f", stable subsample of {len(docs)} documents"
    write_corpus(docs, ws.corpus, extra={"description": desc})
    return ws.corpus


def corpus_facts(corpus: Path) -> dict[str, Any]:
    from dynacure.io.writers import read_corpus_manifest

    try:
        m = read_corpus_manifest(corpus)
        return {
            "n_docs": m.get("n_docs"),
            "n_tokens": m.get("n_tokens"),
            "sources": m.get("sources", {}),
            "description": m.get("description", str(corpus)),
            "path": str(corpus),
        }
    except (FileNotFoundError, ValueError):
        return {"path": str(corpus), "description": f"corpus {corpus}"}


# ---- stage 2: demo-trained scorers and judge --------------------------------------------------------------

DEMO_MODEL_SEED_OFFSET = 1_000  # the demo scorers train on generated text the pool does not contain


# neither the reward scorer's seed (+0) nor the judge's (+7919, see train_demo_models)
DEMO_REFERENCE_SEED_OFFSET = 2 * 7919


def prepare_models(cfg: ExperimentConfig, ws: Workspace) -> dict[str, Any]:
    """Train every model a demo experiment uses into RUNS/models, from generated data only: the reward
    toxicity scorer and the judge (disjoint generated corpora) and the quality signal's reference LM
    (clean generated text of a third seed), so nothing is read from $DYNACURE_HOME or public data."""
    if not cfg.scoring.demo_models:
        return {}
    from dynacure.signals.utility import REFERENCE_LM

    done = ws.models / DONE
    paths: dict[str, str] = json.loads(done.read_text()) if done.exists() else {}
    seed = cfg.corpus.demo.seed + DEMO_MODEL_SEED_OFFSET
    before = dict(paths)
    if not paths:
        from dynacure.signals.toxicity import train_demo_models

        paths = {k: str(v) for k, v in train_demo_models(ws.models, seed=seed).items()}
    if REFERENCE_LM not in paths:  # also for folders whose models were made before the reference LM was
        from dynacure.signals.utility import train_demo_reference_lm

        paths[REFERENCE_LM] = str(train_demo_reference_lm(ws.models, seed=seed + DEMO_REFERENCE_SEED_OFFSET))
    if paths != before:
        write_json_atomic(done, paths)
        # the digests of what was just trained, so a later resume notices if these files are replaced
        info = _experiment_info(ws)
        env = info.get("environment", {})
        for rec in env.get("models", {}).values():
            if rec.get("digest") is None:
                rec["digest"] = model_digest(ws.root / rec["path"])  # an absolute path stays absolute
        _update_experiment(ws, environment=env)
    return paths


def signal_kwargs(cfg: ExperimentConfig, ws: Workspace) -> dict[str, dict[str, Any]]:
    """Constructor arguments per signal: the config's, with the demo models' folder when they are used (the
    demo's toxicity scorer and the quality signal's reference LM, see prepare_models)."""
    out = {k: dict(v) for k, v in cfg.scoring.params.items()}
    if cfg.scoring.demo_models and "toxicity_ngram" in cfg.scoring.signals:
        out.setdefault("toxicity_ngram", {})["model_dir"] = str(ws.models)
    if cfg.scoring.demo_models and "quality" in cfg.scoring.signals:
        from dynacure.signals.utility import REFERENCE_LM

        q = out.setdefault("quality", {})
        if not any(k in q for k in ("lm_path", "reference_texts", "data_dir")):  # the user's reference wins
            q["lm_path"] = str(ws.models / REFERENCE_LM)
    return out


def loop_signal_kwargs(cfg: ExperimentConfig, ws: Workspace) -> dict[str, dict[str, Any]]:
    """Signal arguments for a loop policy's reward-side toxicity scorer: those the corpus was scored with,
    and the demo scorer's folder whenever the demo models are used (the loop scores with toxicity_ngram
    even when the corpus was not)."""
    out = signal_kwargs(cfg, ws)
    if cfg.scoring.demo_models:
        out.setdefault("toxicity_ngram", {}).setdefault("model_dir", str(ws.models))
    return out


# ---- stage 3: scoring (once per experiment) ---------------------------------------------------------------


def score_corpus(cfg: ExperimentConfig, ws: Workspace, corpus: Path, events: Events | None = None) -> float:
    """Score the corpus with every configured signal into RUNS/attributes; returns seconds (stored)."""
    done = ws.attrs / DONE
    if done.exists():
        return float(json.loads(done.read_text())["seconds"])
    from dynacure.engines.local import score_corpus as engine_score

    n_docs = corpus_facts(corpus).get("n_docs") or 0
    # Process start-up (imports, model loads) outweighs the gain on small corpora.
    workers = 1 if n_docs < 20_000 else max(1, os.cpu_count() or 1)
    t0 = time.perf_counter()
    engine_score(
        corpus,
        list(cfg.scoring.signals),
        ws.attrs,
        workers=workers,
        signal_kwargs=signal_kwargs(cfg, ws) or None,
        progress=bool(events and events.inner_progress),
    )
    seconds = time.perf_counter() - t0
    write_json_atomic(done, {"seconds": seconds, "signals": list(cfg.scoring.signals)})
    return seconds


# ---- stage 4: the shared tables ---------------------------------------------------------------------------


def _gold_columns(meta: dict[str, Any]) -> dict[str, Any]:
    """Scalar gold labels from a document's meta (for reports only; selectors never see them)."""
    return {f"meta_{k}": v for k, v in meta.items() if isinstance(v, str | int | float | bool) or v is None}


def _toxicity_level(docs: pd.DataFrame, table: pd.DataFrame) -> tuple[pd.Series, str]:
    """A toxicity level per document: the gold label when the corpus has one, else bins of the judge-free
    toxicity score (the highest toxicity attribute)."""
    for col in ("meta_toxic", "meta_is_toxic", "meta_toxicity", "meta_label_toxic"):
        if col in docs.columns and docs[col].notna().any():
            v = docs[col]
            if v.dropna().isin([True, False, 0, 1]).all():
                level = v.map(lambda x: "unknown" if pd.isna(x) else ("toxic" if bool(x) else "clean"))
                return level, f"gold label ({col.removeprefix('meta_')})"
            if pd.api.types.is_numeric_dtype(v):
                bins = pd.cut(v.astype(float), [-np.inf, 0.2, 0.5, np.inf], labels=["low", "medium", "high"])
                return bins.astype(str), f"gold score ({col.removeprefix('meta_')})"
            return v.astype(str), f"gold label ({col.removeprefix('meta_')})"
    # toxicity_columns: only the toxicity-role columns (hf_classifier's safe-label columns are not)
    tox_cols = [c for c in toxicity_columns(table) if pd.api.types.is_numeric_dtype(table[c])]
    if not tox_cols:
        return pd.Series(["unknown"] * len(docs), index=docs.index), "no toxicity score available"
    score = table[tox_cols].max(axis=1).clip(0, 1)
    bins = pd.cut(score, [-np.inf, 0.2, 0.5, np.inf], labels=["low (<0.2)", "medium", "high (>=0.5)"])
    return bins.astype(str).to_numpy(), f"max of the scored toxicity columns ({', '.join(tox_cols)}), binned"


def build_tables(cfg: ExperimentConfig, ws: Workspace, corpus: Path) -> pd.DataFrame:
    """RUNS/table.parquet (what selectors read) and RUNS/documents.parquet (what reports read)."""
    if ws.table.exists() and ws.documents.exists():
        return pd.read_parquet(ws.table)
    from dynacure.io.attributes import join_attributes, read_attributes
    from dynacure.io.quarantine import Quarantine
    from dynacure.io.readers import read_documents

    rows, gold = [], []
    # Records the readers cannot use are set aside in RUNS/quarantine.jsonl (counted in experiment.json),
    # so documents in the cells + quarantined == records in the corpus.
    with Quarantine(ws.root / "quarantine.jsonl") as quar:
        for d in read_documents(corpus, quarantine=quar):
            rows.append({"id": d.id, "source": d.source, "n_tokens": count_tokens(d.text), "text": d.text})
            gold.append({"id": d.id, **_gold_columns(d.meta)})
    if quar.total:
        log.warning("%s: %d records quarantined (%s)", corpus, quar.total, quar.counts())
    _update_experiment(ws, corpus_quarantined=quar.counts())
    docs = pd.DataFrame(rows)
    table = join_attributes(docs, read_attributes(ws.attrs, cfg.scoring.signals))
    missing = int(table.drop(columns=["id", "source", "n_tokens", "text"]).isna().all(axis=1).sum())
    if missing:
        raise ValueError(
            f"{ws.attrs}: {missing} documents of the corpus have no scores (re-score: delete {ws.attrs})"
        )
    meta = docs[["id", "source", "n_tokens"]].merge(pd.DataFrame(gold), on="id", how="left")
    level, basis = _toxicity_level(meta, table)
    meta["toxicity_level"] = level
    meta["toxicity_level_basis"] = basis
    with atomic_path(ws.documents) as tmp:
        meta.to_parquet(tmp, index=False)
    with atomic_path(ws.table) as tmp:
        table.to_parquet(tmp, index=False)
    return table


# ---- stage 5: evaluation data, target texts, tokenizer ----------------------------------------------------


def prepare_evaldata(cfg: ExperimentConfig, ws: Workspace, table: pd.DataFrame) -> dict[str, str]:
    """Clean target texts for DSIR/CoLoR/ICA and, for the demo corpus, its own prompts and held-out text."""
    ws.evaldata.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    target = ws.evaldata / "target.jsonl"
    if cfg.corpus.kind == "demo":
        from dynacure.io import demo_corpus

        prompts = ws.evaldata / "prompts.jsonl"
        heldout = ws.evaldata / "heldout.txt"
        if not (target.exists() and prompts.exists() and heldout.exists()):
            # A different seed than the pool's, so none of these texts is in the pool.
            seed = cfg.corpus.demo.seed + 10_007
            clean = demo_corpus.generate_demo_corpus(
                n_docs=cfg.target_size * 2, toxic_share=0.0, low_quality_share=0.0, seed=seed
            )
            texts = [d.text for d in clean]
            _write_jsonl(target, [{"text": t} for t in texts[: cfg.target_size]])
            write_text_atomic(heldout, "\n".join(texts[cfg.target_size :]) + "\n")
            _write_jsonl(
                prompts,
                [p if isinstance(p, dict) else {"prompt": p} for p in demo_corpus.demo_prompts(seed=seed)],
            )
        out.update(prompts=str(prompts), heldout=str(heldout))
    elif not target.exists():
        lines = target_texts(cfg.corpus.data_dir, cfg.target_size)
        if not lines:  # no public data: the longest pool documents stand in for a target set
            log.warning("no public data for the target set: the %d longest pool documents stand in "
                        "(they are pool documents, so DSIR/CoLoR/ICA may select them as their own match)",
                        cfg.target_size)
            lines = table.sort_values("n_tokens", ascending=False)["text"].head(cfg.target_size).tolist()
        _write_jsonl(target, [{"text": t} for t in lines[: cfg.target_size]])
    out["target"] = str(target)
    return out


def target_texts(data_dir: str | Path | None, k: int) -> list[str]:
    """The clean target set of DSIR / CoLoR-Filter / ICA: ``k`` WikiText-2 documents of the pre-training
    half of train (io.pool.pretraining_documents), a stable sample; so never a pool document and never
    evaluation text (evaluation reads the test splits). Empty when the public data is absent."""
    from dynacure.io.pool import pretraining_documents

    try:
        docs = [d.text for d in pretraining_documents(data_dir) if d.source == "wikitext2"]
    except FileNotFoundError:
        return []
    return _stable_subsample(docs, k, seed=0)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_target(path: str | Path) -> list[str]:
    return [json.loads(line)["text"] for line in Path(path).read_text(encoding="utf-8").splitlines() if line]


def prepare_tokenizer(cfg: ExperimentConfig, ws: Workspace, table: pd.DataFrame) -> Path | None:
    """One BPE tokenizer for every cell, trained on a stable sample of the whole pool (not on any
    strategy's selection, so no strategy gets a tokenizer fitted to its own data)."""
    if cfg.learner.hf_path is not None:
        return None
    if ws.tokenizer.exists():
        return ws.tokenizer
    if cfg.learner.base == "pretrained":
        # The base's own tokenizer: cells fine-tune the base, so they must read text as it was trained to.
        folder = base_folder(cfg)
        write_text_atomic(ws.tokenizer, (folder / "tokenizer.json").read_text(encoding="utf-8"))
        return ws.tokenizer
    from dynacure.learners.presets import get_preset
    from dynacure.learners.tokenizer import BPETokenizer

    preset = get_preset(cfg.learner.preset)
    texts = table["text"].tolist()
    texts = _stable_subsample(texts, TOKENIZER_SAMPLE, seed=0)
    tok = BPETokenizer.train(texts, vocab_size=preset.vocab_size)
    write_text_atomic(ws.tokenizer, tok.to_json())
    return ws.tokenizer


# ---- the cell ----------------------------------------------------------------------------------------------


@dataclass
class CellOutcome:
    selection_manifest: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    policy_log: dict[str, Any] | None = None
    curation_flops: float = math.nan
    expensive: dict[str, Any] | None = None  # a loop's expensive-scorer calls (loop/feedback.py)
    selection: Selection | None = None  # the decisions with their text transform (re-route prefixes)


# Warm-up steps when fine-tuning the base (the base's 100 would span most of a cell's few hundred steps).
FINETUNE_WARMUP = 10


def base_folder(cfg: ExperimentConfig) -> Path:
    """The built base the cells fine-tune (learner.base = "pretrained"); a clear error when not built."""
    from dynacure.learners.pretrain import find_base

    return find_base(cfg.learner.base_config(), cfg.corpus.data_dir)


def learner_overrides(batch_size: int | None, lr: float | None, warmup_steps: int | None,
                      fine_tune: bool) -> dict[str, Any]:
    """The preset fields a learner's spec changes (those given); fine-tuning the base warms up for
    FINETUNE_WARMUP steps unless told otherwise."""
    overrides: dict[str, Any] = {}
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    if lr is not None:
        overrides["lr"] = lr
    if warmup_steps is not None:
        overrides["warmup_steps"] = warmup_steps
    if fine_tune:
        overrides.setdefault("warmup_steps", FINETUNE_WARMUP)
    return overrides


def finetune_spec(folder: Path, device: str | None, batch_size: int | None = None, lr: float | None = None,
                  warmup_steps: int | None = None) -> LearnerSpec:
    """The spec of a learner that fine-tunes the base in ``folder``: what every cell of an experiment on the
    base builds, and what ``dynacure train --base`` builds, so both start from the same weights and
    optimiser settings."""
    from dynacure.learners.factory import LearnerSpec

    overrides = learner_overrides(batch_size, lr, warmup_steps, fine_tune=True)
    return LearnerSpec(base=folder, device=device, overrides=overrides)


def learner_spec(cfg: ExperimentConfig, ws: Workspace) -> LearnerSpec:
    """The experiment's learner (``learner`` config): an HF model, the pre-trained base fine-tuned, or a
    TinyGPT of the preset over the experiment's one tokenizer."""
    from dynacure.learners.factory import LearnerSpec

    lc = cfg.learner
    if lc.hf_path is not None:
        return LearnerSpec(hf_path=lc.hf_path, device=lc.device)
    if lc.base == "pretrained":
        return finetune_spec(base_folder(cfg), lc.device, lc.batch_size, lc.lr, lc.warmup_steps)
    overrides = learner_overrides(lc.batch_size, lc.lr, lc.warmup_steps, fine_tune=False)
    return LearnerSpec(preset=lc.preset, tokenizer=ws.tokenizer, device=lc.device, overrides=overrides)


def make_learner(cfg: ExperimentConfig, ws: Workspace, seed: int) -> Learner:
    """A fresh learner for one cell (same initialisation per seed across strategies)."""
    from dynacure.learners.factory import build_learner

    return build_learner(learner_spec(cfg, ws), seed)


def selection_suite(keep: np.ndarray, n_tokens: np.ndarray) -> dict[str, Any]:
    """Results of a curation-only cell: kept shares of documents and tokens (exact, so no interval)."""
    n = len(keep)
    docs = float(keep.mean()) if n else math.nan
    toks = float(n_tokens[keep].sum() / max(n_tokens.sum(), 1.0))
    return {"skipped": None, "metrics": {
        "kept_docs_share": {"value": docs, "low": docs, "high": docs, "n": n},
        "kept_tokens_share": {"value": toks, "low": toks, "high": toks, "n": n},
    }}


def _num_params(learner: Any) -> float:
    if learner is None:
        return 0.0
    fn = getattr(learner, "num_parameters", None)
    if callable(fn):
        return float(fn())
    model = getattr(learner, "model", None)
    if model is not None and hasattr(model, "parameters"):
        return float(sum(p.numel() for p in model.parameters()))
    return math.nan


def is_loop(strategy: str) -> bool:
    """Whether ``strategy`` is a policy learned in the closed loop (``kind == "loop"``)."""
    from dynacure.pipeline.strategies import selector_class

    return selector_class(strategy).kind == "loop"


def reward_params(strategy: str, factory: type[Selector], weights: dict[str, float]) -> dict[str, Any]:
    """The reward weights in the form the strategy takes them (RAFT: ``weights``; the loop: ``w_*``)."""
    del strategy  # the class's traits say it
    if not factory.uses_reward:
        return {}
    if factory.kind == "loop":
        return {"w_s": weights["safety"], "w_a": weights["alignment"], "w_u": weights["utility"]}
    try:
        if "weights" in inspect.signature(factory).parameters:
            return {"weights": dict(weights)}
    except (TypeError, ValueError):
        pass
    return {}


def strategy_params(
    cell_or_name: Cell | str,
    params: dict[str, Any],
    weights: dict[str, float],
    defaults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The selector's keyword arguments: reward weights, then the runner's ``defaults`` (e.g. the loop's
    signal arguments), then the strategy's own params, which win."""
    from dynacure.pipeline.strategies import selector_class

    name = cell_or_name.strategy_name if isinstance(cell_or_name, Cell) else cell_or_name
    out = reward_params(name, selector_class(name), weights)
    if "weights" in params or "w_s" in params or "config" in params:
        out = {}  # the strategy's own params say how it weighs the reward
    out.update(defaults or {})
    out.update(params)
    return out


def loop_defaults(cfg: ExperimentConfig, ws: Workspace) -> dict[str, Any]:
    """What a loop strategy gets from the experiment: the scoring's signal arguments (so its toxicity
    scorer is the experiment's, in RUNS/models for the demo), the data folder, and for demo models no
    HH-RLHF pairs (public data) unless the strategy asks for them with ``use_pairs = true``."""
    out: dict[str, Any] = {"signal_kwargs": loop_signal_kwargs(cfg, ws)}
    if cfg.corpus.data_dir is not None:
        out["data_dir"] = str(cfg.corpus.data_dir)
    if cfg.scoring.demo_models:
        out["use_pairs"] = False
    return out


def empty_columns(table: pd.DataFrame) -> list[str]:
    """Attribute columns (``signal__column``) without a single value: a signal that could not compute."""
    cols = [c for c in table.columns if "__" in c]
    if not len(table) or not cols:
        return []
    empty = table[cols].isna().all(axis=0)
    return [c for c in cols if bool(empty[c])]


def select_stage(
    cfg: ExperimentConfig, ws: Workspace, cell: Cell, table: pd.DataFrame, target: list[str]
) -> CellOutcome:
    """Run the cell's strategy on the shared scored table at the cell's budget."""
    from dynacure.pipeline.strategies import get_selector
    from dynacure.selectors.base import SelectionContext

    dropped = empty_columns(table)
    if dropped:
        # Dropped by name so no selector or policy feature reads a column that is NaN throughout; a
        # strategy whose reward needs one fails with the reward's "missing column" error instead.
        log.warning("%s: attribute column(s) %s have no value (the signal could not compute them); left out "
                    "of every selection. Re-score with the signal working to use them", ws.table,
                    ", ".join(dropped))
        table = table.drop(columns=dropped)
        if _experiment_info(ws).get("dropped_columns") != dropped:  # the same list for every cell
            _update_experiment(ws, dropped_columns=dropped)
    defaults = loop_defaults(cfg, ws) if is_loop(cell.strategy_name) else None
    params = strategy_params(cell, dict(cell.params), cell.weights, defaults)
    selector = get_selector(cell.strategy_name, **params)
    if getattr(selector, "oracle", None) == "gold":
        # active labelling (loop/labels.py): the gold labels answer its proposal files, kept in the cell
        from dynacure.experiments.labels import gold_label_oracle

        selector.label_oracle = gold_label_oracle(ws.documents)  # type: ignore[attr-defined]
        selector.labels_dir = str(cell_dir(ws.root, cell) / "labels")  # type: ignore[attr-defined]
    proxy = None
    if selector.needs_learner and selector.prior == "learner":
        # A fresh learner of the experiment's kind as the scoring model; by default (prior="own") CoLoR and
        # ICA train their own small TinyGPT, the paper's small auxiliary model.
        proxy = make_learner(cfg, ws, cell.seed)
    if selector.kind == "loop" and selector.learner_source == "experiment":
        # The loop trains and probes a fresh learner of the experiment's kind (param learner="experiment"),
        # built when the loop starts; by default it trains its own small TinyGPT, so results keep their
        # meaning.
        selector.learner_factory = lambda: make_learner(cfg, ws, cell.seed)
    ctx = SelectionContext(budget=cell.budget, seed=cell.seed, learner=proxy, target_texts=target)
    from dynacure.experiments.efficiency import curation_flops, split_selection_time, time_method
    from dynacure.pipeline.select import SelectStep

    learning = time_method(selector, "learn")  # loop policies: learning vs applying the policy
    t0 = time.perf_counter()
    sel = SelectStep(selector, ctx).run(table)  # the select step of `dynacure curate`
    seconds = time.perf_counter() - t0
    timings = {"time_selection_s": seconds, **split_selection_time(cell.strategy_name, seconds, learning)}
    flops = curation_flops(cell.strategy_name, selector, table["n_tokens"].to_numpy())
    plog = _policy_log(selector)
    feature_drops = list(selector.dropped_columns)
    if feature_drops:  # columns without a value in the loop's sample: recorded with the cell's policy log
        plog = {**(plog or {}), "dropped_columns": feature_drops}
    expensive = getattr(selector, "feedback_stats", None)
    if expensive is not None:
        plog = {**(plog or {}), "expensive": expensive}
    return CellOutcome(sel.manifest(), timings, plog, flops, expensive, sel)


def _policy_log(selector: Selector) -> dict[str, Any] | None:
    """The training/reward curves of a learned policy (its per-step ``history``), as lists."""
    rows = list(selector.history)
    if not rows:
        return None
    keys = sorted({k for row in rows for k, v in row.items() if isinstance(v, int | float)})
    return {k: [float(row.get(k, math.nan)) for row in rows] for k in keys}


def training_data(table: pd.DataFrame, selection: Selection, redact_pii: bool = False
                  ) -> tuple[list[str], np.ndarray]:
    """The texts and loss weights a cell trains on: the kept documents in table order, through the
    pipeline's transform step (re-route prefix, then PII redaction when asked), so a cell trains on
    exactly the text ``dynacure curate`` writes for the same selection."""
    from dynacure.pipeline.transform import TextTransform

    rows = np.flatnonzero(np.asarray(selection.keep, dtype=bool))
    texts = TextTransform.of(selection, redact_pii).apply_all(rows, table["text"].to_numpy()[rows].tolist())
    return texts, np.asarray(selection.weight, dtype=float)[rows]


def train_stage(
    cfg: ExperimentConfig,
    ws: Workspace,
    cell: Cell,
    table: pd.DataFrame,
    selection: Selection,
    events: Events,
) -> tuple[Any, dict[str, Any], float]:
    """Train a fresh learner on the kept documents (with their weights) for cfg.learner.max_tokens tokens."""
    from dynacure.learners.training import train

    if not np.any(selection.keep):
        raise ValueError(f"cell {cell.cell_id}: the strategy kept no documents")
    texts, weights = training_data(table, selection, cell.redact_pii)
    learner = make_learner(cfg, ws, cell.seed)
    t0 = time.perf_counter()
    tlog = train(
        learner,
        texts,
        weights=weights,
        max_tokens=cfg.learner.max_tokens,
        seed=cell.seed,
        batch_size=cfg.learner.batch_size,
        progress=events.inner_progress,
        **cfg.learner.params,
    )
    seconds = time.perf_counter() - t0
    return learner, learner_log(tlog), seconds


def learner_log(tlog: Any) -> dict[str, Any]:
    """The training log as curves (step, cumulative tokens, loss) plus totals."""
    d = tlog.to_dict() if hasattr(tlog, "to_dict") else dict(tlog)
    per_step = [int(t) for t in d.get("tokens", [])]
    losses = [float(x) for x in d.get("losses", [])]
    return {
        "step": list(range(1, len(losses) + 1)),
        "tokens": np.cumsum(per_step).tolist(),
        "loss": losses,
        "tokens_seen": int(d.get("tokens_seen", sum(per_step))),
        "seconds": float(d.get("seconds", 0.0)),
        "tokens_per_second": float(d.get("tokens_per_second", 0.0)),
    }


# The option that limits how many units a suite evaluates (evaluation.max_prompts maps onto it).
_LIMIT_OPTION = {
    "toxicity": "max_prompts",
    "preference": "max_pairs",
    "truthfulqa": "max_questions",
    "bbq": "max_items",
    "refusal": "max_prompts",
}


def evaluation_options(cfg: ExperimentConfig, evaldata: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per-suite options: the config's, plus the demo corpus's own prompts and held-out text."""
    ev = cfg.evaluation
    opts: dict[str, dict[str, Any]] = {}
    for suite in ev.suites:
        o: dict[str, Any] = {}
        if ev.max_prompts is not None and suite in _LIMIT_OPTION:
            o[_LIMIT_OPTION[suite]] = ev.max_prompts
        if suite == "toxicity":
            o.update(samples=ev.samples, max_new_tokens=ev.max_new_tokens)
            if "prompts" in evaldata:
                o["prompts_file"] = evaldata["prompts"]
        if cfg.corpus.data_dir is not None:
            o["data_dir"] = str(cfg.corpus.data_dir)
        o.update(ev.options.get(suite, {}))
        opts[suite] = o
    return opts


def uses_heldout(cfg: ExperimentConfig, evaldata: dict[str, str]) -> bool:
    """The demo's perplexity is measured on its own held-out clean text (no public data needed)."""
    return "perplexity" in cfg.evaluation.suites and "heldout" in evaldata


def check_evaluation(cfg: ExperimentConfig, evaldata: dict[str, str]) -> None:
    """Build every suite once with its options, so a bad suite name or option fails before any cell."""
    from dynacure.evaluation import get_suite

    for name, o in evaluation_options(cfg, evaldata).items():
        if name == "perplexity" and uses_heldout(cfg, evaldata):
            continue
        try:
            get_suite(name, options=o)
        except (ValueError, ConfigError) as exc:
            raise ConfigError(f"evaluation.suites / evaluation.options.{name}: {exc}") from None


def evaluate_stage(
    cfg: ExperimentConfig, ws: Workspace, learner: Any, seed: int, evaldata: dict[str, str], events: Events
) -> tuple[dict[str, Any], float]:
    from dynacure.evaluation import run_suites

    judge = None
    if cfg.evaluation.judge is not None and "toxicity" in cfg.evaluation.suites:  # the user's HF classifier
        from dynacure.evaluation.judge import hf_judge

        judge = hf_judge(cfg.evaluation.judge, cfg.evaluation.judge_unsafe_labels,
                         args=("evaluation.judge", "evaluation.judge_unsafe_labels"))
    elif cfg.scoring.demo_models:
        from dynacure.evaluation.judge import default_judge

        judge = default_judge(ws.models)  # with its training provenance, which the suite checks
    opts = evaluation_options(cfg, evaldata)
    names = list(cfg.evaluation.suites)

    def progress(suite: str, done: int, total: int) -> None:
        events.detail(suite, done, total)

    t0 = time.perf_counter()
    suites: dict[str, Any] = {}
    if uses_heldout(cfg, evaldata):
        from dynacure.experiments.heldout import HeldoutPerplexitySuite

        names.remove("perplexity")
        po = opts.pop("perplexity")
        res = HeldoutPerplexitySuite(
            evaldata["heldout"], max_tokens=po.get("max_tokens"), progress=progress
        ).run(learner, seed=seed)
        suites["perplexity"] = res.to_dict()
    if names:
        out = run_suites(learner, names, seed=seed, options=opts, judge=judge, progress=progress)
        suites.update(out["suites"])
    return suites, time.perf_counter() - t0


def run_cell(
    cfg: ExperimentConfig, runs: str | Path, cell: Cell, scoring_seconds: float, events: Events | None = None,
    keep_models: bool = False,
) -> float:
    """Select, train and evaluate one cell; write its files and DONE last. Returns its wall time.
    ``keep_models``: the trained learner is also saved in ``<cell>/model`` (``load_learner`` opens it)."""
    from dynacure.experiments.efficiency import expensive_figures
    from dynacure.runinfo import seed_everything, write_run_info

    events = events or Events()
    ws = Workspace(Path(runs))
    out = cell_dir(runs, cell)
    if out.exists():  # an interrupted earlier attempt: start clean so no stale file survives
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t_cell = time.perf_counter()
    seed_everything(cell.seed)
    table = _load_table(ws)
    info = _experiment_info(ws)
    evaldata = info.get("evaldata", {})
    target = read_target(evaldata["target"]) if "target" in evaldata else []

    sel = select_stage(cfg, ws, cell, table, target)
    with atomic_path(out / "manifest.parquet") as tmp:
        sel.selection_manifest.to_parquet(tmp, index=False)
    man = sel.selection_manifest
    keep = (man["decision"] == "keep").to_numpy()
    ntok = table.set_index("id").loc[man["id"], "n_tokens"].to_numpy(dtype=float)
    if cfg.learner.train:
        assert sel.selection is not None
        learner, train_log, t_train = train_stage(cfg, ws, cell, table, sel.selection, events)
        if keep_models:  # before evaluation, which only reads the learner: the weights saved are the trained
            learner.save(out / MODEL_DIR)
        suites, t_eval = evaluate_stage(cfg, ws, learner, cell.seed, evaldata, events)
    else:  # curation only: the selection itself is the result
        learner, train_log, t_train, t_eval = None, {"tokens_seen": 0}, 0.0, 0.0
        suites = {"selection": selection_suite(keep, ntok)}
    train_tokens = float(train_log["tokens_seen"])
    params = _num_params(learner)
    efficiency = {
        "time_scoring_s": scoring_seconds,
        "time_selection_s": sel.timings["time_selection_s"],
        "time_policy_learning_s": sel.timings.get("time_policy_learning_s", math.nan),
        "time_policy_apply_s": sel.timings.get("time_policy_apply_s", math.nan),
        "time_training_s": t_train,
        "time_evaluation_s": t_eval,
        "share_selected_tokens": float(ntok[keep].sum() / max(ntok.sum(), 1.0)),
        "share_selected_docs": float(keep.mean()) if len(keep) else math.nan,
        "n_selected_docs": float(keep.sum()),
        "train_tokens": train_tokens,
        "learner_params": params,
        "train_flops": 6.0 * params * train_tokens,
        "curation_flops": sel.curation_flops,
        **expensive_figures(sel.expensive),  # 0 for strategies that make no expensive call
    }
    write_json_atomic(
        out / "metrics.json",
        {
            "format_version": RESULTS_FORMAT_VERSION,
            "cell": cell.to_dict(),
            "suites": suites,
            "efficiency": efficiency,
        },
    )
    write_json_atomic(
        out / "train_log.json",
        {"format_version": RESULTS_FORMAT_VERSION, "learner": train_log, "policy": sel.policy_log},
    )
    wall = time.perf_counter() - t_cell
    write_run_info(
        out,
        "dynacure experiment (cell)",
        config_dict(cfg),
        cell.seed,
        extra={"cell": cell.to_dict(), "cell_id": cell.cell_id, "wall_s": wall},
    )
    missing = [f for f in CELL_FILES if not (out / f).exists()]
    if keep_models and learner is not None and not has_model(runs, cell):
        missing.append(f"{MODEL_DIR}/learner.json")
    if missing:
        raise RuntimeError(f"cell {cell.cell_id}: files missing after the run: {missing}")
    write_text_atomic(out / DONE, f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {wall:.1f}s\n")
    return wall


_TABLE_CACHE: dict[str, pd.DataFrame] = {}


def _load_table(ws: Workspace) -> pd.DataFrame:
    key = str(ws.table.resolve())
    if key not in _TABLE_CACHE:
        _TABLE_CACHE.clear()
        _TABLE_CACHE[key] = pd.read_parquet(ws.table)
    return _TABLE_CACHE[key]


# Every cell trains with one torch thread, in this process or in a worker: float reductions then happen in
# the same order whatever the worker count, so a resumed or re-run experiment gives equal metrics (with two
# threads in one process and one in another, perplexities differed in the 7th digit). The small models of
# a cell are also faster with one thread on a shared machine; parallelism comes from running cells at once.
CELL_THREADS = 1


def _worker_init(threads: int, env: dict[str, str]) -> None:
    os.environ.update(env)
    import torch

    torch.set_num_threads(threads)


def _run_cell_in_worker(
    cfg_json: str, runs: str, cell_dict: dict[str, Any], scoring_seconds: float, keep_models: bool = False
) -> tuple[str, float]:
    cfg = ExperimentConfig.model_validate_json(cfg_json)
    cell = Cell.from_dict(cell_dict)
    return cell.cell_id, run_cell(cfg, runs, cell, scoring_seconds, keep_models=keep_models)


# ---- the whole experiment ---------------------------------------------------------------------------------


def check_before_work(cfg: ExperimentConfig) -> None:
    """Everything that can be refused without doing work: signal names, strategy params, suite options."""
    from dynacure.pipeline.strategies import get_selector
    from dynacure.signals.base import available_signals

    known = available_signals()
    unknown = [s for s in cfg.scoring.signals if s not in known]
    if unknown:
        raise ConfigError(f"scoring.signals: unknown signal(s) {unknown}; known: {', '.join(known)}")
    for i, st in enumerate(cfg.strategies):
        try:
            get_selector(st.name, **strategy_params(st.name, dict(st.params), cfg.weights[0].as_dict()))
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"strategies.{i} ({st.key}): {exc}") from None
    if cfg.learner.base == "pretrained" and cfg.learner.train:
        try:
            base_folder(cfg)
        except (FileNotFoundError, ValueError) as exc:
            raise ConfigError(f"learner.base = \"pretrained\": {exc}") from None
    if cfg.evaluation.judge is not None:  # the folder itself; its labels are read when it judges
        from dynacure.signals.hf_classifier import check_folder

        try:
            check_folder(cfg.evaluation.judge, "evaluation.judge")
        except (FileNotFoundError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
    placeholder = {"target": "target.jsonl"}
    if cfg.corpus.kind == "demo":
        placeholder.update(prompts="prompts.jsonl", heldout="heldout.txt")
    check_evaluation(cfg, placeholder)


def prepare(cfg: ExperimentConfig, runs: str | Path, events: Events | None = None) -> tuple[Workspace, float]:
    """Every stage before the cells (each skipped when its output is already there)."""
    events = events or Events()
    check_before_work(cfg)
    ws = open_workspace(cfg, runs)
    events.stage("preparing the corpus")
    corpus = prepare_corpus(cfg, ws)
    events.stage("training the demo scorers and judge" if cfg.scoring.demo_models else "checking scorers")
    prepare_models(cfg, ws)
    events.stage(f"scoring the corpus with {', '.join(cfg.scoring.signals)}")
    scoring_seconds = score_corpus(cfg, ws, corpus, events)
    events.stage("joining documents and attributes")
    table = build_tables(cfg, ws, corpus)
    events.stage("preparing evaluation data and the tokenizer")
    evaldata = prepare_evaldata(cfg, ws, table)
    prepare_tokenizer(cfg, ws, table)
    _update_experiment(ws, corpus=corpus_facts(corpus), scoring_seconds=scoring_seconds, evaldata=evaldata)
    return ws, scoring_seconds


def run_experiment(
    cfg: ExperimentConfig, runs: str | Path, events: Events | None = None, workers: int | None = None,
    keep_models: bool = False,
) -> pd.DataFrame:
    """Run (or resume) the whole experiment and return the results table. ``keep_models``: every cell also
    saves its trained learner in ``<cell>/model``; a finished cell without one is run again (its metrics
    come out equal: a cell is deterministic)."""
    events = events or Events()
    ws, scoring_seconds = prepare(cfg, runs, events)
    cells = expand_grid(cfg)
    wants_model = keep_models and cfg.learner.train  # a curation-only cell trains no learner
    todo = [c for c in cells if not is_done(ws.root, c) or (wants_model and not has_model(ws.root, c))]
    events.cells_total(len(cells), len(cells) - len(todo))
    n_workers = workers if workers is not None else cfg.resolved_workers(len(todo) or 1)
    if todo:
        events.stage(f"running {len(todo)} of {len(cells)} cells on {n_workers} process(es)")
    if n_workers <= 1 or len(todo) <= 1:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(CELL_THREADS)
        try:
            for c in todo:
                events.cell_started(c.cell_id)
                wall = run_cell(cfg, ws.root, c, scoring_seconds, events, keep_models=keep_models)
                events.cell_finished(c.cell_id, wall)
        finally:
            torch.set_num_threads(before)
    else:
        threads = CELL_THREADS
        env = {k: v for k, v in os.environ.items() if k.startswith(("DYNACURE_", "HF_", "TRANSFORMERS_"))}
        ctx = mp.get_context("spawn")  # torch and fork do not mix
        with cf.ProcessPoolExecutor(
            n_workers, mp_context=ctx, initializer=_worker_init, initargs=(threads, env)
        ) as pool:
            futs = {}
            for c in todo:
                futs[
                    pool.submit(
                        _run_cell_in_worker, cfg.model_dump_json(), str(ws.root), c.to_dict(),
                        scoring_seconds, keep_models,
                    )
                ] = c
                events.cell_started(c.cell_id)
            errors = []
            for fut in cf.as_completed(futs):
                try:
                    cid, wall = fut.result()
                    events.cell_finished(cid, wall)
                except Exception as exc:  # one failing cell must not lose the others' work
                    errors.append(f"{futs[fut].cell_id}: {exc}")
            if errors:
                raise RuntimeError(
                    "cells failed (finished cells are kept; re-run to resume):\n  " + "\n  ".join(errors)
                )
    events.stage("collecting results")
    return collect_results(ws.root)
