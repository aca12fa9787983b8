"""Streaming selection: ``curate`` for the score-based strategies and saved loop policies in bounded memory.

random, heuristic, classifier, raft and the application of a saved ``bandit``/``ppo``/``reinforce`` policy
are a per-document part (``Selector.shard_scores``: a score, which rows may be kept, reasons, weights,
a re-routing prefix) and one of the two budget rules of ``selectors.budget``: ``top`` (walk the scores
from the highest down, ties in corpus order) or ``sample`` (Gumbel top-k, ``n_draws`` draws of one seeded
generator). Over stored attributes (``dynacure score``'s layout, shards lined up with the corpus's), a run
takes three kinds of passes and never holds anything per document:

1. **score**: read the corpus and its attribute shards one shard at a time, compute the shard's part
   (a policy in the same ``apply_batch`` row chunks as in memory) and store it in ``OUT/.streaming/`` with
   the token counts and an 8-byte id digest (ids are checked for repeats afterwards, one digest partition
   at a time);
2. **threshold**: the budget rule's greedy fill, found exactly from the stored score and token columns:
   the cut (the first document, in the rule's order, that overflows the budget) by histogram refinement
   of the order key (2**12 bins a pass over the keys' order-preserving 64-bit patterns, until the bin is
   small enough to sort in memory, or one score value whose ties are resolved in corpus order), then the
   documents after the cut that still fit, collected ``TAIL`` at a time. The ``sample`` rule draws its
   Gumbel keys shard by shard from the one generator (``PCG64.advance`` to the shard's first eligible
   document), all draws in the same passes;
3. **write**: one pass over the corpus decides each shard from the stored part and the thresholds (a pure
   function of the shard, ``decide``) and writes the kept documents and the manifest rows.

So the streaming result is the in-memory ``curate``'s bit for bit (manifest, kept documents, summary), and
``curate(..., streaming="auto")`` takes this path whenever it applies. A run killed at any point and rerun
gives the same files: the work folder is rebuilt from scratch, every file is written atomically and
``summary.json`` comes last.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dynacure.io.atomic import atomic_path, write_json_atomic
from dynacure.io.attributes import signals_in
from dynacure.io.document import Document, count_tokens
from dynacure.io.idset import id_digests
from dynacure.selectors.base import SelectionContext, Selector
from dynacure.selectors.budget import budget_tokens
from dynacure.selectors.common import UNIQUE_IDS
from dynacure.selectors.shard_scores import Rule, ShardScores

WORK_DIR = ".streaming"
COLLECT = 1 << 16  # documents sorted in memory at once to resolve a cut exactly
TAIL = 1 << 12  # documents after the cut walked per pass (each kept one uses a token of the little left)
BITS = 12  # a refinement pass splits the key range into 2**BITS bins (the sample rule refines 32 at once)
DIGESTS_PER_PARTITION = 1 << 20  # the repeated-id check holds this many 8-byte digests at a time


class NotStreamable(Exception):
    """This run cannot stream (the message says why); ``curate`` then selects in memory."""


# ---- which runs stream ------------------------------------------------------------------------------------

def _is_policy(selector: Selector) -> bool:
    # The loop's selectors live a layer above; they are recognised without importing the loop.
    return type(selector).__module__.startswith("dynacure.loop.") and hasattr(selector, "policy_path")


def why_not_streamable(selector: Selector, attributes: Any, disparity_cap: float | None) -> str | None:
    """None when ``curate`` can stream this run, else the reason it selects in memory."""
    if attributes is None:
        return "the attributes are scored by this run (no stored --attributes)"
    if disparity_cap is not None:
        return "the disparity cap re-ranks the whole corpus"
    if _is_policy(selector):
        return None if getattr(selector, "policy_path", None) else "the policy is learned on this corpus"
    if not type(selector).streaming:
        return f"strategy {selector.name!r} ranks with the whole corpus at once"
    return None


def _scorer(selector: Selector, ctx: SelectionContext) -> tuple[Callable[[pd.DataFrame], ShardScores],
                                                                  int | None]:
    """The per-rows scoring function and the row chunk it must see (None: any shard)."""
    if not _is_policy(selector):
        return (lambda t: selector.shard_scores(t, ctx)), None
    from dynacure.loop.policy import load_policy

    sel: Any = selector
    # What ``LoopSelector.select`` records before applying (its params() show the run's budget and seed).
    sel.config = sel.config.model_copy(update={"budget": float(ctx.budget), "seed": int(ctx.seed)})
    policy = load_policy(sel.policy_path)  # the Ray application gives these probabilities bit for bit
    sel.probabilities_fn = policy.probabilities
    step = int(sel.config.apply_batch)

    def score(table: pd.DataFrame) -> ShardScores:
        p = np.concatenate([policy.probabilities(table.iloc[i:i + step]) for i in range(0, len(table), step)])
        if sel.decision == "top":
            return ShardScores(p, "top", probability=p)
        return ShardScores(np.log(np.maximum(p, 1e-12)), "sample", probability=p)

    return score, step


# ---- pass 1: score ----------------------------------------------------------------------------------------

@dataclass
class _Shard:
    name: str
    n_docs: int
    offset: int  # position of its first document among the documents read
    n_eligible: int = 0
    eligible_offset: int = 0


@dataclass
class _Scored:
    """What the score pass learned: shards, totals and the rule."""

    shards: list[_Shard] = field(default_factory=list)
    rule: Rule = "top"
    n_draws: int = 32
    n_docs: int = 0
    tokens: int = 0
    n_eligible: int = 0
    key_min: float = np.inf  # over eligible rows: the sample rule adds log-weights only when they differ
    key_max: float = -np.inf
    weighted: bool = False  # some weight differs from 1 (then the kept documents' weights are checked)
    records_read: int = 0


def _attributes(attrs_dir: Path, signals: list[str], name: str, ids: list[str],
                texts: list[str]) -> dict[str, np.ndarray]:
    from dynacure.pipeline.score import shard_attributes as _shard_attributes

    cols = _shard_attributes(attrs_dir, signals, name, ids, texts)  # refuses scores of other text
    if cols is None:
        raise NotStreamable(f"the attribute shards of {name} do not line up with the corpus's")
    return cols


class _Chunker:
    """Scores rows in the chunks a scorer needs (``step`` rows counted from the corpus's first document,
    across shard boundaries) and hands each shard's stored part on once all its rows are scored."""

    def __init__(self, score: Callable[[pd.DataFrame], ShardScores], step: int | None,
                 emit: Callable[[str, ShardScores, pd.DataFrame], None]) -> None:
        self.score, self.step, self.emit = score, step, emit
        self.items: list[list[Any]] = []  # [name, table, scored parts, rows scored]
        self.unscored = 0

    def add(self, name: str, table: pd.DataFrame) -> None:
        if self.step is None:
            self.emit(name, self.score(table), table)
            return
        self.items.append([name, table, [], 0])
        self.unscored += len(table)
        self._run(final=False)

    def close(self) -> None:
        if self.step is not None:
            self._run(final=True)

    def _run(self, final: bool) -> None:
        assert self.step is not None
        take = self.unscored if final else self.unscored // self.step * self.step
        if not take:
            return
        rows = pd.concat([t.iloc[done:] for _, t, _, done in self.items], ignore_index=True).iloc[:take]
        scored = self.score(rows)
        at = 0
        for item in self.items:
            n = min(len(item[1]) - item[3], take - at)
            if n > 0:
                item[2].append((scored, at, at + n))
                item[3] += n
                at += n
        self.unscored -= take
        while self.items and self.items[0][3] == len(self.items[0][1]):
            name, table, parts, _ = self.items.pop(0)
            self.emit(name, _join_parts(parts), table)


def _join_parts(parts: list[tuple[ShardScores, int, int]]) -> ShardScores:
    """The rows ``a:b`` of each scored chunk, concatenated (a shard scored in pieces)."""
    def cut(v: Any, a: int, b: int) -> Any:
        return v[a:b] if isinstance(v, np.ndarray) else v

    first = parts[0][0]
    vals = {}
    for f in ("score", "eligible", "kept_reason", "dropped_reason", "weight", "probability", "prefix"):
        pieces = [cut(getattr(s, f), a, b) for s, a, b in parts]
        if all(not isinstance(p, np.ndarray) for p in pieces) and len(set(map(repr, pieces))) == 1:
            vals[f] = pieces[0]
        else:
            vals[f] = np.concatenate([np.broadcast_to(np.asarray(p), (b - a,))
                                      for p, (_, a, b) in zip(pieces, parts, strict=True)])
    return ShardScores(rule=first.rule, n_draws=first.n_draws, **vals)


def _score_pass(corpus: Path, attrs_dir: Path, work: Path, selector: Selector, ctx: SelectionContext,
                strategy: str, shard_size: int, qpath: Path,
                progress: Callable[[str, int, int], None] | None) -> _Scored:
    from dynacure.io.quarantine import Quarantine
    from dynacure.io.readers import ReadStats, iter_shards

    signals = [s for s in signals_in(attrs_dir) if s != "embedding" or strategy == "ica"]
    score_fn, step = _scorer(selector, ctx)
    has_features = type(selector).text_features is not Selector.text_features
    out = _Scored()
    rules: set[tuple[str, int]] = set()
    by_name: dict[str, _Shard] = {}
    digests: dict[str, np.ndarray] = {}  # of the shards read but not yet stored

    def store(name: str, part: ShardScores, table: pd.DataFrame) -> None:
        rules.add((part.rule, part.n_draws))
        tbl = part.frame(table["n_tokens"].to_numpy(), digests.pop(name))
        elig = tbl.column("eligible").to_numpy(zero_copy_only=False)
        key = tbl.column("score").to_numpy()
        if np.isnan(key).any():
            raise ValueError(f"{int(np.isnan(key).sum())} documents have a NaN score; cannot rank them")
        if part.rule == "sample":  # the in-memory sampler leaves out rows of infinite log-weight
            elig = elig & np.isfinite(key)
            tbl = tbl.set_column(tbl.schema.get_field_index("eligible"), "eligible", pa.array(elig))
        shard = by_name[name]
        shard.n_eligible, shard.eligible_offset = int(elig.sum()), out.n_eligible
        out.n_eligible += shard.n_eligible
        if elig.any():
            out.key_min = min(out.key_min, float(key[elig].min()))
            out.key_max = max(out.key_max, float(key[elig].max()))
        out.weighted |= bool(np.any(tbl.column("weight").to_numpy() != 1.0))
        with atomic_path(work / f"{name}.parquet") as tmp:
            pq.write_table(tbl, tmp)

    chunker = _Chunker(score_fn, step, store)
    stats = ReadStats()
    with Quarantine(qpath) as quarantine:
        for shard in iter_shards(corpus, shard_size=shard_size, quarantine=quarantine, stats=stats,
                                 check_ids=False):
            if not shard.docs:
                continue
            ids = [d.id for d in shard.docs]
            n_tokens = np.array([count_tokens(d.text) for d in shard.docs], dtype=np.int64)
            cols: dict[str, Any] = {"id": np.arange(out.n_docs, out.n_docs + len(ids), dtype=np.int64),
                                    "source": [d.source for d in shard.docs], "n_tokens": n_tokens}
            if has_features:
                for fname, col in selector.text_features([d.text for d in shard.docs]).items():
                    cols[selector.feature_column(fname)] = np.asarray(col)
            cols.update(_attributes(attrs_dir, signals, shard.name, ids, [d.text for d in shard.docs])
                        if signals else {})
            table = pd.DataFrame(cols)
            table.attrs[UNIQUE_IDS] = True  # positions; the ids are checked after this pass
            digests[shard.name] = id_digests(ids, len(ids))
            by_name[shard.name] = _Shard(shard.name, len(ids), out.n_docs)
            out.shards.append(by_name[shard.name])
            out.n_docs += len(ids)
            out.tokens += int(n_tokens.sum())
            chunker.add(shard.name, table)
            if progress:
                progress("read", stats.n_read, 0)
        chunker.close()
    out.records_read = stats.n_read
    if len(rules) > 1:
        raise RuntimeError(f"strategy {strategy!r} gave shards different budget rules: {sorted(rules)}")
    if rules:
        out.rule, out.n_draws = next(iter(rules))  # type: ignore[assignment]
    _check_unique_ids(work, out)
    return out


def _check_unique_ids(work: Path, scored: _Scored) -> None:
    """Refuse a repeated id (the in-memory path quarantines it): one partition of the digests at a time."""
    parts = max(1, -(-scored.n_docs // DIGESTS_PER_PARTITION))
    for p in range(parts):
        found = []
        for s in scored.shards:
            d = pq.read_table(work / f"{s.name}.parquet", columns=["digest"]).column("digest").to_numpy()
            found.append(d[d % np.uint64(parts) == np.uint64(p)])
        d = np.sort(np.concatenate(found))
        if len(d) > 1 and bool(np.any(d[1:] == d[:-1])):
            raise NotStreamable("the corpus repeats a document id (quarantined as duplicate_id in memory)")


# ---- pass 2: the budget rule's thresholds -----------------------------------------------------------------

def order_key(keys: np.ndarray) -> np.ndarray:
    """uint64 patterns of float64 ``keys`` in the same ascending order (-0.0 and 0.0 alike)."""
    bits = (np.asarray(keys, dtype=np.float64) + 0.0).view(np.uint64)
    neg = (bits >> np.uint64(63)).astype(bool)
    return np.where(neg, ~bits, bits | np.uint64(1 << 63))


class GreedyFill:
    """``budget.greedy_fill`` over an order seen one pass at a time, in bounded memory.

    Documents are walked by ascending ``(key, position)``; a document is kept when its tokens fit in what
    is left. Fed the eligible documents of every shard once per pass (``feed``) until ``end_pass``
    returns True, it then decides any shard's documents (``decide``). The walk's first overflow, the cut,
    is found by refining a token histogram over the keys; every eligible zero-token document is kept
    (they fit when nothing is left), and the others after the cut that still fit are collected in order.
    """

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self.stage = "total"
        self.total, self.lo, self.hi = 0, (1 << 64) - 1, 0
        self.before = 0  # tokens of the walk's documents below ``lo``
        self.hist: np.ndarray | None = None
        self.shift = 0
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.tie_tokens = 0
        self.cut: tuple[int, int] | None = None  # (key pattern, position) of the first overflow
        self.left = 0
        self.after: tuple[int, int] = (0, -1)
        self.bound: tuple[int, int] | None = None
        self.tail: list[int] = []  # positions kept after the cut
        self.done = False

    def feed(self, u: np.ndarray, n: np.ndarray, pos: np.ndarray) -> None:
        if self.done:
            return
        if self.stage == "tail":
            self._feed_tail(u, n, pos)
            return
        fit = n <= self.limit
        u, n, pos = u[fit], n[fit], pos[fit]
        if self.stage == "total":
            self.total += int(n.sum())
            if len(u):
                self.lo, self.hi = min(self.lo, int(u.min())), max(self.hi, int(u.max()))
            return
        inside = (u >= np.uint64(self.lo)) & (u <= np.uint64(self.hi))
        u, n, pos = u[inside], n[inside], pos[inside]
        if self.stage == "refine":
            assert self.hist is not None
            b = ((u - np.uint64(self.lo)) >> np.uint64(self.shift)).astype(np.int64)
            self.hist[0] += np.bincount(b, weights=n, minlength=len(self.hist[0]))
            self.hist[1] += np.bincount(b, minlength=len(self.hist[0]))
        elif self.stage == "collect":
            self.parts.append((u, pos, n))
        elif self.stage == "ties" and self.cut is None:  # one key value: the walk goes in corpus order
            c = self.before + self.tie_tokens + np.cumsum(n)
            over = np.flatnonzero(c > self.limit)
            if len(over):
                i = over[0]
                self.cut, self.before = (self.lo, int(pos[i])), int(c[i] - n[i])
            self.tie_tokens += int(n.sum())

    def _feed_tail(self, u: np.ndarray, n: np.ndarray, pos: np.ndarray) -> None:
        au, ap = self.after
        later = (u > np.uint64(au)) | ((u == np.uint64(au)) & (pos > ap))
        m = later & (n > 0) & (n <= self.left)
        if self.bound is not None:  # after the TAIL-th candidate so far: never walked in this pass
            bu, bp = self.bound
            m &= (u < np.uint64(bu)) | ((u == np.uint64(bu)) & (pos < bp))
        if m.any():
            self.parts.append((u[m], pos[m], n[m]))
            if sum(len(p[0]) for p in self.parts) > 2 * TAIL:
                self.parts = [self._first(TAIL)]
                self.bound = (int(self.parts[0][0][-1]), int(self.parts[0][1][-1]))

    def _first(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u, pos, n = (np.concatenate([p[i] for p in self.parts]) for i in range(3))
        order = np.lexsort((pos, u))[:k]
        return u[order], pos[order], n[order]

    def _refine_from(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        self.shift = max(0, (hi - lo).bit_length() - BITS)
        nb = ((hi - lo) >> self.shift) + 1
        self.hist = np.zeros((2, nb))
        self.stage = "refine"

    def end_pass(self) -> bool:
        """Finish a pass; True once the walk is known (no more passes needed)."""
        if self.done:
            return True
        if self.stage == "total":
            if self.total <= self.limit:  # everything that fits at all fits together
                self.done = True
            else:
                self._refine_from(self.lo, self.hi)
        elif self.stage == "refine":
            assert self.hist is not None
            tokens, counts = self.hist
            csum = self.before + np.cumsum(tokens)
            b = int(np.flatnonzero(csum > self.limit)[0])
            self.before = int(csum[b - 1]) if b else self.before
            lo = self.lo + (b << self.shift)
            hi = min(self.hi, lo + (1 << self.shift) - 1)
            if counts[b] <= COLLECT:
                self.lo, self.hi, self.stage, self.parts = lo, hi, "collect", []
            elif lo == hi:
                self.lo, self.hi, self.stage, self.tie_tokens = lo, hi, "ties", 0
            else:
                self._refine_from(lo, hi)
        elif self.stage == "collect":
            u, pos, n = self._first(len(np.concatenate([p[0] for p in self.parts])))
            i = int(np.flatnonzero(self.before + np.cumsum(n) > self.limit)[0])
            self.cut, self.before = (int(u[i]), int(pos[i])), self.before + int(n[:i].sum())
            self._start_tail()
        elif self.stage == "ties":
            assert self.cut is not None
            self._start_tail()
        else:  # tail: walk the collected documents in order
            got = self._first(TAIL) if self.parts else (np.zeros(0, np.uint64),) * 3
            for pi, ni in zip(got[1], got[2], strict=True):
                if ni <= self.left:
                    self.tail.append(int(pi))
                    self.left -= int(ni)
            if len(got[0]):
                self.after = (int(got[0][-1]), int(got[1][-1]))
            self.parts, self.bound = [], None
            self.done = len(got[0]) < TAIL or self.left == 0
        return self.done

    def _start_tail(self) -> None:
        assert self.cut is not None
        self.left = self.limit - self.before
        self.after, self.stage, self.parts = self.cut, "tail", []

    def decide(self, u: np.ndarray, n: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Keep mask of eligible documents (``u`` their key patterns, ``pos`` their positions)."""
        assert self.done
        fit = n <= self.limit
        if self.cut is None:
            return fit
        cu, cp = self.cut
        before = (u < np.uint64(cu)) | ((u == np.uint64(cu)) & (pos < cp))
        keep = (fit & before) | (n == 0)
        if self.tail:
            keep |= np.isin(pos, np.asarray(self.tail, dtype=np.int64))
        return keep


class _Keys:
    """The order keys of every draw, shard by shard: ``-score`` (top) or ``-(gumbel + log-weight)``
    (sample, the in-memory sampler's generator positioned at the shard's first eligible document)."""

    def __init__(self, scored: _Scored, seed: int) -> None:
        self.s = scored
        self.draws = 1 if scored.rule == "top" else max(1, scored.n_draws)
        self.uniform = not scored.key_max > scored.key_min  # equal log-weights: Gumbel noise alone
        self.bits = np.random.PCG64(seed)
        self.start = self.bits.state
        self.gen = np.random.Generator(self.bits)

    def of(self, shard: _Shard, draw: int, score: np.ndarray) -> np.ndarray:
        if self.s.rule == "top":
            return order_key(-score)
        self.bits.state = self.start
        self.bits.advance(draw * self.s.n_eligible + shard.eligible_offset)
        keys = self.gen.gumbel(size=len(score))
        if not self.uniform:
            keys += score
        np.negative(keys, out=keys)
        return order_key(keys)


def _read(work: Path, shard: _Shard, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(work / f"{shard.name}.parquet", columns=columns)


def _eligible_rows(work: Path, shard: _Shard) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = _read(work, shard, ["score", "eligible", "n_tokens"])
    elig = t.column("eligible").to_numpy(zero_copy_only=False)
    pos = shard.offset + np.flatnonzero(elig)
    return t.column("score").to_numpy()[elig], t.column("n_tokens").to_numpy()[elig], pos


def plan(work: Path, scored: _Scored, limit: int, seed: int) -> tuple[_Keys, list[GreedyFill]]:
    """The greedy fill of every draw, all refined in the same passes over the stored columns."""
    keys = _Keys(scored, seed)
    fills = [GreedyFill(limit) for _ in range(keys.draws)]
    while not all(f.done for f in fills):
        for shard in scored.shards:
            score, n, pos = _eligible_rows(work, shard)
            for d, f in enumerate(fills):
                if not f.done:
                    f.feed(keys.of(shard, d, score), n, pos)
        for f in fills:
            f.end_pass()
    return keys, fills


def decide(work: Path, shard: _Shard, keys: _Keys, fills: list[GreedyFill],
           draws: bool = True) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """One shard's stored part, keep mask and manifest probability (a pure function of the shard)."""
    t = _read(work, shard)
    elig = t.column("eligible").to_numpy(zero_copy_only=False)
    idx = np.flatnonzero(elig)
    score, n = t.column("score").to_numpy()[idx], t.column("n_tokens").to_numpy()[idx]
    pos = shard.offset + idx
    counts = np.zeros(len(elig), dtype=np.float32)
    keep = np.zeros(len(elig), dtype=bool)
    for d, f in enumerate(fills if draws else fills[:1]):
        k = f.decide(keys.of(shard, d, score), n, pos)
        counts[idx] += k
        if d == 0:
            keep[idx] = k
    prob = t.column("probability").to_numpy()
    if np.isnan(prob).all():  # the budget rule's: inclusion rate over the draws (1/0 for top)
        counts /= max(1, len(fills))
        prob = counts.astype(np.float64)
    return t, keep, prob


# ---- pass 3: write ----------------------------------------------------------------------------------------

class _ManifestParts:
    """Manifest rows in corpus order, ``MANIFEST_CHUNK`` a row group as the in-memory writer groups them."""

    def __init__(self, writer: pq.ParquetWriter, chunk: int, schema: pa.Schema) -> None:
        self.writer, self.chunk, self.schema = writer, chunk, schema
        self.parts: list[pa.Table] = []
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        self.parts.append(table)
        self.rows += len(table)
        while self.rows >= self.chunk:
            whole = pa.concat_tables(self.parts)
            self.writer.write_table(whole.slice(0, self.chunk).combine_chunks())
            rest = whole.slice(self.chunk)
            self.parts, self.rows = [rest], len(rest)

    def finish(self) -> None:
        if self.rows:
            self.writer.write_table(pa.concat_tables(self.parts).combine_chunks())
        self.parts, self.rows = [], 0


def run(corpus: Path, attrs_dir: Path, out: Path, selector: Selector, strategy: str, budget: float, *,
        seed: int, shard_size: int, out_shard_size: int, redact_pii: bool, run_config: dict[str, Any],
        weights: dict[str, Any] | None, progress: Callable[[str, int, int], None] | None = None) -> Any:
    """``curate`` of one streamable run (``why_not_streamable`` is None); returns its ``CurateResult``."""
    from dynacure.io.quarantine import Quarantine, read_quarantine
    from dynacure.io.readers import iter_shards
    from dynacure.io.writers import write_corpus
    from dynacure.pipeline import curate as cur
    from dynacure.pipeline import read as rd
    from dynacure.pipeline import write as wr
    from dynacure.runinfo import absolute, write_run_info

    out.mkdir(parents=True, exist_ok=True)
    cur._start_clean(out)
    work = out / WORK_DIR
    shutil.rmtree(work, ignore_errors=True)  # a killed run's parts are redone, not trusted
    work.mkdir()
    try:
        ctx = SelectionContext(budget=budget, seed=seed)
        qpath = out / "quarantine.jsonl"
        scored = _score_pass(corpus, attrs_dir, work, selector, ctx, strategy, shard_size, qpath, progress)
        qrows = rd._quarantine_rows(read_quarantine(qpath), corpus)
        if not scored.n_docs:
            raise ValueError(f"{corpus}: no readable documents ({len(qrows)} quarantined)")
        if progress:
            progress("select", 0, 0)
        limit = budget_tokens(np.array([scored.tokens]), budget)
        keys, fills = plan(work, scored, limit, seed)
        kept_tokens, weighted = 0, False
        for shard in scored.shards:  # the realised decision's tokens and weights, before anything is written
            t, keep, _ = decide(work, shard, keys, fills, draws=False)
            kept_tokens += int(t.column("n_tokens").to_numpy()[keep].sum())
            if scored.weighted:
                weighted |= bool(np.any(np.abs(t.column("weight").to_numpy()[keep] - 1.0) > 1e-12))
        if kept_tokens > limit:
            raise RuntimeError(f"selector {strategy!r} kept {kept_tokens} tokens over the budget of {limit}")
        redact = None
        if redact_pii:
            from dynacure.signals.pii import redact
        pii_counts: Counter[str] = Counter()
        kept_by, dropped_by = Counter[str](), Counter[str]()
        src_docs, src_kept, src_tokens = Counter[str](), Counter[str](), Counter[str]()
        extra_ids = set(qrows["id"].astype(str))
        repeated = {i for i, c in Counter(qrows["id"].astype(str)).items() if c > 1}
        with atomic_path(out / "manifest.parquet") as tmp, pq.ParquetWriter(tmp, wr.MANIFEST_SCHEMA) as pw:
            rows = _ManifestParts(pw, wr.MANIFEST_CHUNK, wr.MANIFEST_SCHEMA)

            def kept_docs() -> Iterator[Document]:
                shards = iter(scored.shards)
                for shard in iter_shards(corpus, shard_size=shard_size, quarantine=Quarantine(),
                                         check_ids=False):
                    if not shard.docs:
                        continue
                    part = next(shards, None)
                    if part is None or part.name != shard.name or part.n_docs != len(shard.docs):
                        raise RuntimeError(f"{corpus}: changed while curating (shard {shard.name}); rerun")
                    t, keep, prob = decide(work, part, keys, fills)
                    ids = [d.id for d in shard.docs]
                    if not np.array_equal(id_digests(ids, len(ids)), t.column("digest").to_numpy()):
                        raise RuntimeError(f"{corpus}: changed while curating (shard {shard.name}); rerun")
                    reason = np.where(keep, t.column("kept_reason").to_numpy(zero_copy_only=False),
                                      t.column("dropped_reason").to_numpy(zero_copy_only=False))
                    weight = t.column("weight").to_numpy()
                    rows.add(pa.table({"id": pa.array(ids, pa.string()),
                                       "decision": pa.array(np.where(keep, "keep", "drop").astype(object),
                                                            pa.string()),
                                       "probability": pa.array(prob), "weight": pa.array(weight),
                                       "reason": pa.array(reason, pa.string())}, schema=wr.MANIFEST_SCHEMA))
                    kept_by.update(reason[keep].tolist())
                    dropped_by.update(reason[~keep].tolist())
                    repeated.update(i for i in ids if i in extra_ids)
                    prefix = t.column("prefix").to_numpy(zero_copy_only=False)
                    ntok = t.column("n_tokens").to_numpy()
                    for i, d in enumerate(shard.docs):
                        src_docs[d.source] += 1
                        if not keep[i]:
                            continue
                        src_kept[d.source] += 1
                        src_tokens[d.source] += int(ntok[i])
                        text = prefix[i] + d.text if prefix[i] else d.text
                        if redact is not None:
                            text, counts = redact(text)
                            pii_counts.update(counts)
                        meta = dict(d.meta)
                        if weighted:
                            meta["curate_weight"] = float(weight[i])
                        yield Document(d.id, text, d.source, meta)
                if next(shards, None) is not None:
                    raise RuntimeError(f"{corpus}: changed while curating (fewer shards now); rerun")

            write_corpus(kept_docs(), out, shard_size=out_shard_size,
                         extra={"curated_from": str(absolute(corpus)), "strategy": strategy}, check_ids=False)
            rows.finish()
            if len(qrows):  # one table after the documents' rows, as the in-memory writer adds them
                pw.write_table(pa.Table.from_pandas(qrows.astype({"id": str, "decision": str, "reason": str}),
                                                    schema=wr.MANIFEST_SCHEMA, preserve_index=False))
        n_kept = sum(src_kept.values())
        summary: dict[str, Any] = {
            "format_version": cur.SUMMARY_FORMAT_VERSION,
            "strategy": strategy,
            "params": selector.params(),
            "seed": seed,
            "budget": budget,
            "records_read": scored.records_read,
            "documents": scored.n_docs,
            "kept": n_kept,
            "dropped": scored.n_docs - n_kept,
            "quarantined": len(qrows),
            "kept_by_reason": dict(sorted(kept_by.items())),
            "dropped_by_reason": dict(sorted(dropped_by.items())),
            "quarantined_by_reason": dict(Counter(str(r).split(":", 1)[0] for r in qrows["reason"])),
            "tokens_pool": scored.tokens,
            "tokens_budget": limit,
            "tokens_kept": kept_tokens,
            "budget_achieved": kept_tokens / limit if limit else 0.0,
            "kept_share_of_pool_tokens": kept_tokens / max(1, scored.tokens),
            "by_source": {s: {"documents": src_docs[s], "kept": src_kept[s], "tokens_kept": src_tokens[s]}
                          for s in sorted(src_docs)},
            "weights": weights,
            "redact_pii": redact_pii,
            "pii_redacted": dict(pii_counts),
            "disparity_cap": None,
        }
        if repeated:
            raise RuntimeError(f"accounting error: {len(repeated)} ids appear more than once in the manifest "
                               f"(first: {sorted(repeated)[0]!r})")
        if n_kept + summary["dropped"] + summary["quarantined"] != summary["records_read"]:
            raise RuntimeError("accounting error: kept + dropped + quarantined != records read")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    run_config["params"] = summary["params"]
    write_run_info(out, "curate", run_config, seed, paths=cur.RUN_PATHS)
    write_json_atomic(out / cur.SUMMARY_FILE, summary)  # last: marks the run finished
    return cur.CurateResult(out, summary, None, {"streamed": True})


def stream_curate(corpus: str | Path, attrs_dir: str | Path, out_dir: str | Path, strategy: str,
                  budget: float, seed: int = 0, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """``curate`` over stored attributes that must stream (ValueError saying why when it cannot)."""
    from dynacure.pipeline.curate import curate

    return curate(corpus, out_dir, strategy, budget, attributes=attrs_dir, seed=seed, params=params,
                  streaming=True, **kwargs)


__all__ = ["GreedyFill", "NotStreamable", "ShardScores", "decide", "order_key", "plan", "run",
           "stream_curate", "why_not_streamable"]
