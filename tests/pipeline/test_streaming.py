"""Streaming selection (``pipeline.streaming``) writes the in-memory ``curate``'s files byte for byte.

A small corpus of two files (one with an unreadable line) read in shards of 100, synthetic attribute shards
in ``dynacure score``'s layout with tied scores, and for every streaming strategy (random, heuristic,
classifier with re-routing, raft, a saved bandit and PPO policy applied in row chunks that straddle the
shards) the streaming run's manifest, kept shards, corpus.json, quarantine and summary equal the in-memory
run's. With tiny refinement constants the threshold search takes every stage (histogram passes, ties at one
score value resolved in corpus order, several passes after the cut). A run interrupted while scoring and
again while writing, then rerun, gives the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dynacure.io.attributes import write_attribute_shard
from dynacure.io.demo_corpus import generate_demo_corpus
from dynacure.io.readers import iter_shards
from dynacure.io.writers import write_documents
from dynacure.pipeline import streaming
from dynacure.pipeline.curate import curate
from dynacure.selectors.budget import greedy_fill

SHARD = 100
FILES = ("corpus.json", "manifest.parquet", "quarantine.jsonl", "summary.json")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stream")
    docs = generate_demo_corpus(n_docs=900, toxic_share=0.2, low_quality_share=0.2, seed=5)
    corpus = root / "corpus"
    corpus.mkdir()
    write_documents(docs[:430], corpus / "a.jsonl")
    with open(corpus / "a.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"id": "broken", "text": \n')  # quarantined: a manifest row after the documents'
    write_documents(docs[430:], corpus / "b.jsonl")
    attrs = root / "attrs"
    rng = np.random.default_rng(0)
    table = []
    for shard in iter_shards(corpus, shard_size=SHARD):
        ids = [d.id for d in shard.docs]
        toxic = np.array([d.meta["toxic"] for d in shard.docs], dtype=float)
        n = len(ids)
        # two decimals: many tied rewards, which the walk must order as the in-memory sort does
        cols = {"toxicity_ngram": {"toxicity": np.round(np.clip(0.7 * toxic + rng.random(n) * 0.4, 0, 1), 2)},
                "alignment": {"score": np.round(rng.random(n), 1)},
                "quality": {"score": np.round(rng.random(n), 1)}}
        for sig, c in cols.items():
            write_attribute_shard(attrs, sig, shard.name, ids, c)
        table.append(pd.DataFrame({"id": ids, "source": [d.source for d in shard.docs],
                                   "text": [d.text for d in shard.docs],
                                   "n_tokens": [len(d.text.split()) for d in shard.docs],
                                   **{f"{s}__{k}": v for s, c in cols.items() for k, v in c.items()}}))
    pool = pd.concat(table, ignore_index=True)
    out = {"corpus": corpus, "attrs": attrs}
    from dynacure.loop.config import LoopConfig
    from dynacure.loop.env import CurationEnv
    from dynacure.loop.trainer import LoopTrainer, make_agent

    for alg in ("bandit", "ppo"):
        cfg = LoopConfig(algorithm=alg, candidates=16, train_batch=8, steps=16, seed=4)
        env = CurationEnv(pool.sample(300, random_state=0).reset_index(drop=True), None, cfg)
        agent = make_agent(env, cfg)
        LoopTrainer(env, agent, cfg).run()
        out[alg] = agent.save_policy(root / alg, env.encoder, env.summary())
    return out


CASES = {
    "random": {},
    "heuristic": {"threshold": 0.6},
    "classifier": {},
    "raft": {},
    "bandit": {"apply_batch": 128},
    "ppo": {"apply_batch": 128},
    "ppo-sample": {"apply_batch": 128, "decision": "sample"},
}


def _params(case: str, data: dict[str, Path]) -> tuple[str, dict]:
    strategy = case.split("-")[0]
    params = dict(CASES[case])
    if strategy in ("bandit", "ppo"):
        params["policy_path"] = str(data[strategy])
    return strategy, params


def _run(data: dict[str, Path], out: Path, case: str, stream: bool, budget: float = 0.4, **kw) -> dict:
    strategy, params = _params(case, data)
    res = curate(data["corpus"], out, strategy, budget, attributes=data["attrs"], seed=3, params=params,
                 shard_size=SHARD, out_shard_size=40, streaming=stream, **kw)
    assert res.extra.get("streamed", False) is stream
    return res.summary


def _same_files(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir() if p.is_file() and p.name != "run.json")
    assert names == sorted(p.name for p in b.iterdir() if p.is_file() and p.name != "run.json")
    assert any(n.startswith("shard-") for n in names) and all(n in names for n in FILES)
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs"
    run_a, run_b = (json.loads((p / "run.json").read_text()) for p in (a, b))
    assert run_a["config"] == run_b["config"]
    assert not (b / streaming.WORK_DIR).exists() and not list(b.rglob("*.tmp"))


@pytest.mark.parametrize("case", list(CASES))
def test_streaming_equals_in_memory(data, tmp_path, monkeypatch, case):
    ref = _run(data, tmp_path / "memory", case, stream=False)
    got = _run(data, tmp_path / "stream", case, stream=True)
    _same_files(tmp_path / "memory", tmp_path / "stream")
    assert got == ref and ref["quarantined"] == 1 and ref["documents"] == 900
    assert 0 < ref["kept"] < 900 and ref["tokens_kept"] <= ref["tokens_budget"]
    # every stage of the threshold search: bins of 2 bits, 8 documents sorted at once
    monkeypatch.setattr(streaming, "COLLECT", 8)
    monkeypatch.setattr(streaming, "TAIL", 3)
    monkeypatch.setattr(streaming, "BITS", 2)
    _run(data, tmp_path / "small", case, stream=True)
    _same_files(tmp_path / "memory", tmp_path / "small")


def test_classifier_reroutes_weights_and_redacts_like_in_memory(data, tmp_path):
    ref = _run(data, tmp_path / "memory", "classifier", stream=False, budget=1.0, redact_pii=True)
    assert ref["kept_by_reason"].get("reroute", 0) > 0  # re-routed documents are tagged and weighted
    _run(data, tmp_path / "stream", "classifier", stream=True, budget=1.0, redact_pii=True)
    _same_files(tmp_path / "memory", tmp_path / "stream")


@pytest.mark.parametrize("seed", range(30))
def test_greedy_fill_equals_the_in_memory_walk(seed, monkeypatch):
    """``GreedyFill`` over shards of keys equals ``budget.greedy_fill`` over the sorted order."""
    monkeypatch.setattr(streaming, "COLLECT", int(np.random.default_rng(seed).integers(2, 50)))
    monkeypatch.setattr(streaming, "TAIL", int(np.random.default_rng(seed + 1).integers(1, 20)))
    monkeypatch.setattr(streaming, "BITS", 3)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    keys = np.round(rng.normal(size=n), int(rng.integers(0, 3)))  # rounded: many ties
    n_tok = rng.integers(0 if seed % 3 == 0 else 1, 60, size=n)
    limit = int(rng.integers(0, n_tok.sum() + 2))
    expect = greedy_fill(np.argsort(keys, kind="stable"), n_tok, limit)
    fill = streaming.GreedyFill(limit)
    u, pos = streaming.order_key(keys), np.arange(n)
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(5, n - 1), replace=False)) if n > 1 else []
    spans = list(zip([0, *cuts], [*cuts, n], strict=True))
    passes = 0
    while not fill.done:
        for a, b in spans:
            fill.feed(u[a:b], n_tok[a:b], pos[a:b])
        fill.end_pass()
        passes += 1
    got = np.concatenate([fill.decide(u[a:b], n_tok[a:b], pos[a:b]) for a, b in spans])
    assert np.array_equal(got, expect) and passes < 60


def test_interrupted_runs_then_rerun_give_the_same_files(data, tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    _run(data, ref, "heuristic", stream=True)
    work = tmp_path / "work"

    class Killed(Exception):
        pass

    def kill_after(name: str, calls: int) -> None:
        real = getattr(streaming, name)
        count = {"n": 0}

        def wrapped(*args, **kwargs):
            count["n"] += 1
            if count["n"] > calls:
                raise Killed(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(streaming, name, wrapped)

    kill_after("_attributes", 4)  # while scoring: 4 of 9 shards stored
    with pytest.raises(Killed):
        _run(data, work, "heuristic", stream=True)
    monkeypatch.undo()
    kill_after("decide", 9 + 5)  # while writing: the checking pass, then 5 shards written
    with pytest.raises(Killed):
        _run(data, work, "heuristic", stream=True)
    monkeypatch.undo()
    assert any(work.glob("shard-*.jsonl.gz")) and not (work / "summary.json").exists()
    (work / streaming.WORK_DIR).mkdir(exist_ok=True)  # what a SIGKILL leaves: a work folder and a temp file
    (work / streaming.WORK_DIR / "shard-00003.parquet").write_bytes(b"torn")
    (work / ".manifest.parquet.x.tmp").write_bytes(b"torn")
    _run(data, work, "heuristic", stream=True)
    _same_files(ref, work)


def test_runs_that_cannot_stream_say_why(data, tmp_path):
    with pytest.raises(ValueError, match="stored --attributes"):
        curate(data["corpus"], tmp_path / "a", "random", 0.5, shard_size=SHARD, streaming=True)
    with pytest.raises(ValueError, match="disparity cap"):
        curate(data["corpus"], tmp_path / "b", "random", 0.5, attributes=data["attrs"], shard_size=SHARD,
               disparity_cap=2.0, streaming=True)
    with pytest.raises(ValueError, match="do not line up"):  # other shards than the attributes'
        curate(data["corpus"], tmp_path / "c", "raft", 0.5, attributes=data["attrs"], shard_size=50,
               streaming=True)
    res = curate(data["corpus"], tmp_path / "d", "raft", 0.5, attributes=data["attrs"], shard_size=50)
    assert not res.extra.get("streamed") and res.summary["documents"] == 900  # "auto": in memory
    assert not (tmp_path / "d" / streaming.WORK_DIR).exists()
