"""Executors keep task order and stop at a failure; shards planned from corpus.json equal read-planned."""

from __future__ import annotations

import gzip
import json

import pytest
from engines_corpus import write_jsonl_with_bad_lines

from dynacure.engines.executor import LocalExecutor
from dynacure.engines.local import score_corpus
from dynacure.io.demo_corpus import generate_demo_corpus
from dynacure.io.quarantine import Quarantine
from dynacure.io.readers import iter_shards, manifest_spans, read_span_texts
from dynacure.io.writers import write_corpus, write_documents


def _square(x: int) -> int:
    return x * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("task 3 failed")
    return x


@pytest.mark.parametrize("workers", [1, 2])
def test_local_executor_yields_in_task_order_and_stops_at_a_failure(workers):
    consumed = []

    def tasks():
        for i in range(12):
            consumed.append(i)
            yield i

    with LocalExecutor(workers, max_in_flight=3) as ex:
        assert list(ex.map(_square, tasks())) == [i * i for i in range(12)]
        got = []
        with pytest.raises(ValueError, match="task 3 failed"):
            for r in ex.map(_fail_on_three, range(100)):
                got.append(r)
    assert got == [0, 1, 2]


def test_local_executor_reads_tasks_lazily():
    seen = []

    def tasks():
        for i in range(10):
            seen.append(i)
            yield i

    with LocalExecutor(2, max_in_flight=2) as ex:
        it = ex.map(_square, tasks())
        assert next(it) == 0
        assert len(seen) <= 3  # at most max_in_flight + 1 tasks pulled before the first result


def test_manifest_spans_cut_like_the_reader(tmp_path):
    docs = generate_demo_corpus(230, seed=2)
    corpus = tmp_path / "corpus"
    write_corpus(docs, corpus, shard_size=70)  # files of 70, 70, 70, 20
    planned = manifest_spans(corpus, 50)  # shards cross file boundaries
    read = [s.spans for s in iter_shards(corpus, shard_size=50)]
    assert len(planned) == len(read) == 5
    # the same cuts; a file's last span runs to the file's end (None) instead of its listed count
    counts = {f"shard-0000{i}.jsonl.gz": n for i, n in enumerate([70, 70, 70, 20])}
    assert [[(s.rel, s.start, counts[s.rel] if s.stop is None else s.stop) for s in sp] for sp in planned] \
        == [[(s.rel, s.start, s.stop) for s in sp] for sp in read]
    assert [(s.rel, s.start, s.stop) for s in planned[1]] == [("shard-00000.jsonl.gz", 51, None),
                                                              ("shard-00001.jsonl.gz", 1, 30)]
    ids, texts, n = read_span_texts(planned[1][1], Quarantine(), set())
    assert n == 30 and ids == [d.id for d in docs[70:100]] and texts == [d.text for d in docs[70:100]]
    assert manifest_spans(tmp_path / "missing", 50) is None


def test_corpus_json_plan_scores_like_a_read_plan(tmp_path):
    docs = generate_demo_corpus(230, seed=4)
    folder, single = tmp_path / "folder", tmp_path / "single.jsonl"
    write_corpus(docs, folder, shard_size=70)
    write_documents(docs, single)
    a, b = tmp_path / "a", tmp_path / "b"
    sa = score_corpus(folder, "pii", a, shard_size=50, workers=2, progress=False)
    sb = score_corpus(single, "pii", b, shard_size=50, workers=1, progress=False)
    assert sa.n_docs == sb.n_docs == 230 and sa.accounting_errors() == [] and sa.n_shards == 5
    files = sorted(p.name for p in (a / "pii").glob("*.parquet"))
    assert len(files) == 5 and files == sorted(p.name for p in (b / "pii").glob("*.parquet"))
    for f in files:
        assert (a / "pii" / f).read_bytes() == (b / "pii" / f).read_bytes()


def test_changed_corpus_json_file_is_quarantined_and_counted(tmp_path, caplog):
    docs = generate_demo_corpus(120, seed=6)
    corpus = tmp_path / "corpus"
    write_corpus(docs, corpus, shard_size=60)
    # the second file is replaced by one with broken lines: corpus.json no longer matches it
    write_jsonl_with_bad_lines(tmp_path / "plain.jsonl", 60, seed=9, every=20)
    bad = (tmp_path / "plain.jsonl").read_text()
    (corpus / "shard-00001.jsonl.gz").write_bytes(gzip.compress(bad.encode()))
    s = score_corpus(corpus, "pii", tmp_path / "attrs", shard_size=60, workers=1, progress=False)
    n_bad = bad.count("\n") - 60
    # the file's last span runs to its end: all 60 documents are read though corpus.json says 60 records
    assert n_bad == 3 and s.n_quarantined == n_bad and s.n_docs == 120
    assert s.n_read == s.n_docs + s.n_quarantined and s.accounting_errors() == []
    lines = (tmp_path / "attrs" / "quarantine.jsonl").read_text().splitlines()
    assert [json.loads(x)["reason"] for x in lines] == ["bad_json", "not_object", "empty_text"]
    assert "corpus.json lists 120 documents" in caplog.text
