"""Raw pool: a realistic unvetted corpus composed from the local copies of public datasets.

Clean majority: the pool half of WikiText-2 and PTB *train* text cut into paragraph-sized documents, and the
``pool`` half of the HH-RLHF harmless-base and helpful-base test dialogues (chosen and rejected, one document
each). The other half of WikiText-2 train (whole articles, chosen by a stable hash of the title) and of PTB
train (blocks of ``PTB_BLOCK_LINES`` consecutive lines) is the pre-training text of the base learner
(``pretraining_documents``): never in the pool, never in an evaluation set (those use the test splits).
Toxic-mixed minority: only the ``part == "pool"`` rows of TweetEval offensive/hate train, Davidson and the
Jigsaw train pools; their ``reward`` and ``judge`` parts train the scorers and the evaluation judge, so they
never enter the pool. No evaluation or test split enters the pool.

Gold labels are kept in ``meta`` (``meta["toxic"]`` 0/1 plus the dataset's fine labels) for analysis
only; selectors and rewards must never read them. Documents are shuffled by seed before sharding, so
every shard mixes sources.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from rich.table import Table

from dynacure.io import public_data as pd_data
from dynacure.io.document import Document, count_tokens, derive_id
from dynacure.io.writers import write_corpus

log = logging.getLogger(__name__)

POOL_FORMAT_VERSION = 1
WIKI_MIN_WORDS, WIKI_MAX_WORDS = 100, 300
PTB_MIN_WORDS, PTB_TARGET_WORDS, PTB_MAX_WORDS = 100, 150, 200
# Fragments this short (captions, stray table cells) are merged into a neighbour or left out.
WIKI_FRAGMENT_WORDS = 20
WIKI_MERGE_SLACK = 50

_ARTICLE = re.compile(r"^ ?= ([^=].*[^=]) = ?$")
_SECTION = re.compile(r"^ ?(= ){2,}(.*?)( =){2,} ?$")


@dataclass
class SourceStats:
    source: str
    n_docs: int = 0
    n_tokens: int = 0
    n_labeled: int = 0
    n_toxic: int = 0
    toxic_tokens: int = 0

    @property
    def toxic_share(self) -> float | None:
        """Toxic share of the labeled documents (None for sources without gold labels)."""
        return self.n_toxic / self.n_labeled if self.n_labeled else None

    def record(self) -> dict[str, Any]:
        rec = asdict(self)
        rec["toxic_share"] = self.toxic_share
        return rec


@dataclass
class PoolSummary:
    out_dir: Path
    n_docs: int
    n_tokens: int
    seed: int
    sources: list[SourceStats] = field(default_factory=list)
    n_shards: int = 0

    @property
    def n_toxic(self) -> int:
        return sum(s.n_toxic for s in self.sources)

    @property
    def toxic_doc_share(self) -> float:
        """Known-toxic documents over all documents (unlabeled clean text counts as not toxic)."""
        return self.n_toxic / self.n_docs if self.n_docs else 0.0

    @property
    def toxic_token_share(self) -> float:
        return sum(s.toxic_tokens for s in self.sources) / self.n_tokens if self.n_tokens else 0.0

    def composition(self) -> dict[str, Any]:
        return {"format_version": POOL_FORMAT_VERSION, "seed": self.seed, "n_docs": self.n_docs,
                "n_tokens": self.n_tokens, "n_toxic": self.n_toxic,
                "toxic_doc_share": round(self.toxic_doc_share, 6),
                "toxic_token_share": round(self.toxic_token_share, 6),
                "sources": [s.record() for s in self.sources]}


# --- clean text ---------------------------------------------------------------------------------------

def _split_long(paragraph: str, max_words: int) -> list[str]:
    """Cut a paragraph longer than ``max_words`` at sentence ends (' . ') into pieces of at most that size."""
    words = paragraph.split()
    if len(words) <= max_words:
        return [paragraph]
    sentences = re.split(r"(?<= \.) ", paragraph)
    pieces: list[str] = []
    cur: list[str] = []
    n = 0
    for sent in sentences:
        k = len(sent.split())
        if cur and n + k > max_words:
            pieces.append(" ".join(cur))
            cur, n = [], 0
        if k > max_words:  # one enormous "sentence" (lists, tables): cut by words
            sw = sent.split()
            for i in range(0, len(sw), max_words):
                pieces.append(" ".join(sw[i: i + max_words]))
            continue
        cur.append(sent)
        n += k
    if cur:
        pieces.append(" ".join(cur))
    return pieces


def wikitext_documents(lines: list[str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(position, text, meta) for paragraph-sized WikiText documents (~100-300 words).

    The position is the first line's index, with ``:k`` added when the document starts at the k-th
    piece of a paragraph too long for one document.

    Documents never cross an article heading; a section heading closes the current document once it
    holds ``WIKI_MIN_WORDS`` words. Paragraphs are kept one per line.
    """
    title, section = "", ""
    docs: list[tuple[str, list[str], int, str]] = []  # current article's documents
    cur: list[str] = []
    cur_start, cur_words, cur_section = "0", 0, ""

    def close() -> None:
        nonlocal cur, cur_words
        if cur:
            docs.append((cur_start, cur, cur_words, cur_section))
        cur, cur_words = [], 0

    def finish_article() -> Iterator[tuple[str, str, dict[str, Any]]]:
        close()
        merged: list[tuple[str, list[str], int, str]] = []
        for d in docs:
            # a short tail joins the document before it when that keeps the result near size
            if merged and d[2] < WIKI_MIN_WORDS and merged[-1][2] + d[2] <= WIKI_MAX_WORDS + WIKI_MERGE_SLACK:
                s, paras, n, sec = merged[-1]
                merged[-1] = (s, paras + d[1], n + d[2], sec)
            else:
                merged.append(d)
        for start, paras, n, sec in merged:
            if n >= WIKI_FRAGMENT_WORDS:
                yield start, "\n".join(paras), {"title": title, "section": sec,
                                                "line": int(start.split(":")[0]) + 1}
        docs.clear()

    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            continue
        m_sec = _SECTION.match(raw)
        m_art = None if m_sec else _ARTICLE.match(raw)
        if m_art:
            yield from finish_article()
            title, section = m_art.group(1).strip(), ""
            continue
        if m_sec:
            if cur_words >= WIKI_MIN_WORDS:
                close()
            section = m_sec.group(2).strip()
            continue
        for k_piece, piece in enumerate(_split_long(line, WIKI_MAX_WORDS)):
            k = len(piece.split())
            if cur and cur_words + k > WIKI_MAX_WORDS:
                close()
            if not cur:
                cur_start, cur_section = (f"{i}:{k_piece}" if k_piece else str(i)), section
            cur.append(piece)
            cur_words += k
    yield from finish_article()


def ptb_documents(lines: list[str]) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(first line index, text, meta) grouping consecutive PTB sentences into ~100-200-word documents."""
    cur: list[str] = []
    start, n = 0, 0
    for i, raw in enumerate(lines):
        sent = raw.strip()
        if not sent:
            continue
        k = len(sent.split())
        if cur and n >= PTB_MIN_WORDS and n + k > PTB_MAX_WORDS:
            yield start, "\n".join(cur), {"n_sentences": len(cur)}
            cur, n = [], 0
        if not cur:
            start = i
        cur.append(sent)
        n += k
        if n >= PTB_TARGET_WORDS:
            yield start, "\n".join(cur), {"n_sentences": len(cur)}
            cur, n = [], 0
    if cur:
        yield start, "\n".join(cur), {"n_sentences": len(cur)}


# --- per-source document builders --------------------------------------------------------------------

# Share of WikiText-2 / PTB train that is pre-training text (the rest is pool text).
PRETRAIN_SHARE = 0.5
PTB_BLOCK_LINES = 500  # PTB is split in blocks of consecutive sentences (one news story rarely spans two)


def is_pretraining_text(dataset: Literal["wikitext2", "ptb"], key: str) -> bool:
    """Whether a WikiText-2 article (key: its title) or a PTB block (key: the block number) is pre-training
    text; fixed by a hash, so the split is the same on every machine."""
    return pd_data.stable_fraction(f"pretrain:{dataset}:{key}") < PRETRAIN_SHARE


TrainHalf = Literal["pool", "pretrain"]


def _train_halves(data_dir: Path, dataset: Literal["wikitext2", "ptb"]) -> dict[TrainHalf, list[Document]]:
    """Both halves of a clean dataset's train split as documents, in one pass over the file."""
    if dataset == "wikitext2":
        rows = ((start, text, str(meta["title"]), meta)
                for start, text, meta in wikitext_documents(pd_data.wikitext2("train", data_dir)))
    else:
        rows = ((start, text, str(start // PTB_BLOCK_LINES), {"line": start + 1, **meta})
                for start, text, meta in ptb_documents(pd_data.ptb("train", data_dir)))
    out: dict[TrainHalf, list[Document]] = {"pool": [], "pretrain": []}
    for start, text, key, meta in rows:
        half: TrainHalf = "pretrain" if is_pretraining_text(dataset, key) else "pool"
        out[half].append(Document(id=derive_id(f"{half}/{dataset}/train", start), text=text, source=dataset,
                                  meta={"dataset": dataset, "split": "train", **meta}))
    return out


def _wikitext(data_dir: Path) -> list[Document]:
    return _train_halves(data_dir, "wikitext2")["pool"]


def _ptb(data_dir: Path) -> list[Document]:
    return _train_halves(data_dir, "ptb")["pool"]


def pretraining_documents(data_dir: str | os.PathLike[str] | None = None) -> list[Document]:
    """The base learner's pre-training text: the halves of WikiText-2 and PTB train that the pool lacks
    (less the few paragraphs the source files repeat verbatim in the pool half)."""
    data = Path(data_dir) if data_dir is not None else pd_data.default_data_dir()
    halves = [_train_halves(data, "wikitext2"), _train_halves(data, "ptb")]
    in_pool = {d.text for h in halves for d in h["pool"]}
    evaluation = evaluation_lines(data)
    return [d for h in halves for d in h["pretrain"]
            if d.text not in in_pool and not _lines(d.text) & evaluation]


def _lines(text: str, min_words: int = 8) -> set[str]:
    return {ln.strip() for ln in text.split("\n") if len(ln.split()) >= min_words}


def evaluation_lines(data_dir: str | os.PathLike[str] | None = None) -> set[str]:
    """Lines of 8+ words of WikiText-2 and PTB valid/test: a pre-training document repeating one verbatim
    (PTB repeats market-rate boilerplate across splits) is left out: evaluation text is never trained on."""
    out: set[str] = set()
    for split in ("valid", "test"):
        for lines in (pd_data.wikitext2(split, data_dir), pd_data.ptb(split, data_dir)):  # type: ignore[arg-type]
            out |= {ln.strip() for ln in lines if len(ln.split()) >= 8}
    return out


def _hh(subset: str) -> Callable[[Path], list[Document]]:
    short = subset.removesuffix("-base")

    def build(data_dir: Path) -> list[Document]:
        df = pd_data.hh_rlhf(subset, half="pool", data_dir=data_dir)
        out = []
        for row, chosen, rejected in zip(df["row"], df["chosen"], df["rejected"], strict=True):
            for response, text in (("chosen", chosen), ("rejected", rejected)):
                text = text.strip()
                if not text:
                    continue
                out.append(Document(
                    id=derive_id(f"pool/hh_rlhf/{subset}/{response}", int(row)), text=text,
                    source=f"hh_rlhf_{short}",
                    meta={"dataset": "hh_rlhf", "subset": subset, "split": "test", "half": "pool",
                          "pair_id": f"{subset}:{int(row)}", "row": int(row), "response": response}))
        return out

    return build


def _labeled(df: pd.DataFrame, source: str,
             fine: Callable[[dict[str, Any]], dict[str, Any]]) -> list[Document]:
    pool = df[df["part"] == "pool"]
    out = []
    for r in pool.to_dict("records"):
        text = str(r["text"]).strip()
        if not text:
            continue
        out.append(Document(
            id=derive_id(f"pool/{r['dataset']}", int(r["row"])), text=text, source=source,
            meta={**fine(r), "dataset": r["dataset"], "row": int(r["row"]), "part": "pool",
                  "toxic": int(r["label"])}))
    return out


_DAVIDSON_CLASS = {0: "hate", 1: "offensive", 2: "neither"}


def _tweeteval(task: str) -> Callable[[Path], list[Document]]:
    def build(data_dir: Path) -> list[Document]:
        df = pd_data.tweeteval(task, "train", data_dir)  # type: ignore[arg-type]
        return _labeled(df, f"tweeteval_{task}", lambda r: {f"tweeteval_{task}": int(r["label"])})
    return build


def _davidson(data_dir: Path) -> list[Document]:
    return _labeled(pd_data.davidson(data_dir), "davidson",
                    lambda r: {"davidson_class": _DAVIDSON_CLASS[int(r["cls"])]})


def _jigsaw(data_dir: Path) -> list[Document]:
    return _labeled(pd_data.jigsaw("train", data_dir), "jigsaw",
                    # prefixed: Jigsaw's own 'toxic' column is one label of six, not meta["toxic"]
                    lambda r: {**{f"jigsaw_{lab}": int(r[lab]) for lab in pd_data.JIGSAW_LABELS},
                               "pool_file": r["pool_file"]})


POOL_SOURCES: dict[str, Callable[[Path], list[Document]]] = {
    "wikitext2": _wikitext,
    "ptb": _ptb,
    "hh_rlhf_harmless": _hh("harmless-base"),
    "hh_rlhf_helpful": _hh("helpful-base"),
    "tweeteval_offensive": _tweeteval("offensive"),
    "tweeteval_hate": _tweeteval("hate"),
    "davidson": _davidson,
    "jigsaw": _jigsaw,
}


def pool_documents(data_dir: str | os.PathLike[str] | None = None, seed: int = 0,
                   max_docs_per_source: int | None = None, sources: list[str] | None = None,
                   on_source: Callable[[str, int], None] | None = None) -> list[Document]:
    """All pool documents, shuffled by ``seed``; ``max_docs_per_source`` keeps a seeded sample of each."""
    data = Path(data_dir) if data_dir is not None else pd_data.default_data_dir()
    if not data.exists():
        raise FileNotFoundError(f"{data}: public data folder not found (set --data-dir or DYNACURE_DATA)")
    chosen = list(POOL_SOURCES) if sources is None else sources
    unknown = [s for s in chosen if s not in POOL_SOURCES]
    if unknown:
        raise ValueError(f"unknown pool source(s) {unknown}; known: {', '.join(POOL_SOURCES)}")
    rng = np.random.default_rng(seed)
    docs: list[Document] = []
    for name in chosen:
        part = POOL_SOURCES[name](data)
        if max_docs_per_source is not None and len(part) > max_docs_per_source:
            keep = np.sort(rng.choice(len(part), size=max_docs_per_source, replace=False))
            part = [part[i] for i in keep]
        log.info("pool source %s: %d documents", name, len(part))
        if on_source is not None:
            on_source(name, len(part))
        docs.extend(part)
    order = rng.permutation(len(docs))
    return [docs[i] for i in order]


def summarize(docs: list[Document], out_dir: Path, seed: int, source_order: list[str]) -> PoolSummary:
    stats: dict[str, SourceStats] = {name: SourceStats(name) for name in source_order}
    for d in docs:
        s = stats.setdefault(d.source, SourceStats(d.source))
        t = count_tokens(d.text)
        s.n_docs += 1
        s.n_tokens += t
        if "toxic" in d.meta:
            s.n_labeled += 1
            if int(d.meta["toxic"]):
                s.n_toxic += 1
                s.toxic_tokens += t
    kept = [s for s in stats.values() if s.n_docs]
    return PoolSummary(out_dir=out_dir, n_docs=len(docs), n_tokens=sum(s.n_tokens for s in kept), seed=seed,
                       sources=kept)


def build_pool(data_dir: str | os.PathLike[str] | None, out_dir: str | os.PathLike[str], seed: int = 0,
               shard_size: int = 5000, max_docs_per_source: int | None = None,
               sources: list[str] | None = None,
               on_source: Callable[[str, int], None] | None = None) -> PoolSummary:
    """Compose the raw pool; write it as a corpus folder (shards + ``corpus.json`` with the composition)."""
    out = Path(out_dir)
    docs = pool_documents(data_dir, seed=seed, max_docs_per_source=max_docs_per_source, sources=sources,
                          on_source=on_source)
    summary = summarize(docs, out, seed, list(POOL_SOURCES) if sources is None else sources)
    extra = {"kind": "raw_pool", "pool": {**summary.composition(), "max_docs_per_source": max_docs_per_source,
                                          "note": "meta.toxic and fine labels are gold labels for analysis "
                                                  "only; selectors and rewards must not read them"}}
    manifest = write_corpus(docs, out, shard_size=shard_size, extra=extra)
    summary.n_shards = len(manifest["shards"])
    return summary


def composition_table(summary: PoolSummary) -> Table:
    """Rich table: documents, tokens and toxic share by source, with totals."""
    table = Table(title=f"Raw pool composition ({summary.out_dir})")
    for col, just in (("source", "left"), ("docs", "right"), ("tokens", "right"), ("token share", "right"),
                      ("labeled", "right"), ("toxic", "right"), ("toxic share", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for s in summary.sources:
        share = f"{s.toxic_share:.1%}" if s.toxic_share is not None else "-"
        table.add_row(s.source, f"{s.n_docs:,}", f"{s.n_tokens:,}",
                      f"{s.n_tokens / max(summary.n_tokens, 1):.1%}", f"{s.n_labeled:,}", f"{s.n_toxic:,}",
                      share)
    table.add_row("[bold]total[/]", f"[bold]{summary.n_docs:,}[/]", f"[bold]{summary.n_tokens:,}[/]",
                  "100.0%",
                  f"{sum(s.n_labeled for s in summary.sources):,}", f"{summary.n_toxic:,}",
                  f"{summary.toxic_doc_share:.1%} of docs, {summary.toxic_token_share:.1%} of tokens")
    return table
