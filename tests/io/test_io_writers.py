"""Writers: round trips in every format, byte-identical reruns, corpus folders and their manifest."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from dynacure.io.document import Document
from dynacure.io.quarantine import Quarantine, read_quarantine
from dynacure.io.readers import iter_shards, read_documents
from dynacure.io.writers import read_corpus_manifest, write_corpus, write_documents


def _docs(n: int) -> list[Document]:
    return [Document(id=f"d{i:03d}", text=f"document {i} ünïcode text " + "w " * (i % 5),
                     source=("wiki", "forum")[i % 2],
                     meta={"toxic": i % 3 == 0, "score": np.float32(i / 4), "nested": {"b": 1, "a": [i]}})
            for i in range(n)]


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz", "out.parquet"])
def test_round_trip(tmp_path, name):
    docs = _docs(23)
    assert write_documents(iter(docs), tmp_path / name) == 23
    back = list(read_documents(tmp_path / name))
    assert [d.id for d in back] == [d.id for d in docs]
    assert [d.text for d in back] == [d.text for d in docs]
    assert [d.source for d in back] == [d.source for d in docs]
    assert back[4].meta == {"toxic": False, "score": 1.0, "nested": {"a": [4], "b": 1}}
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp file left


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz", "out.parquet"])
def test_rerun_is_byte_identical(tmp_path, name):
    write_documents(_docs(50), tmp_path / "a" / name)
    write_documents(_docs(50), tmp_path / "b" / name)
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_jsonl_lines_have_sorted_keys(tmp_path):
    write_documents(_docs(2), tmp_path / "x.jsonl")
    first = (tmp_path / "x.jsonl").read_text(encoding="utf-8").splitlines()[0]
    assert list(json.loads(first)) == ["id", "meta", "source", "text"]
    assert list(json.loads(first)["meta"]) == ["nested", "score", "toxic"]


def test_gzip_header_has_no_timestamp(tmp_path):
    write_documents(_docs(3), tmp_path / "x.jsonl.gz")
    raw = (tmp_path / "x.jsonl.gz").read_bytes()
    assert raw[4:8] == b"\x00\x00\x00\x00"  # MTIME field
    assert gzip.decompress(raw).count(b"\n") == 3


def test_unknown_suffix_refused(tmp_path):
    with pytest.raises(ValueError, match=r"out\.csv"):
        write_documents(_docs(1), tmp_path / "out.csv")
    assert not list(tmp_path.iterdir())


def test_write_corpus_manifest_and_shards(tmp_path):
    docs = _docs(25)
    man = write_corpus(iter(docs), tmp_path / "c", shard_size=10, extra={"composition": {"note": "x"}})
    files = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert files == ["corpus.json", "shard-00000.jsonl.gz", "shard-00001.jsonl.gz", "shard-00002.jsonl.gz"]
    assert man == read_corpus_manifest(tmp_path / "c")
    assert man["format_version"] == 1 and man["n_docs"] == 25
    assert [s["n_docs"] for s in man["shards"]] == [10, 10, 5]
    n_tokens = sum(len(d.text.split()) for d in docs)
    assert man["n_tokens"] == n_tokens == sum(s["n_tokens"] for s in man["shards"])
    assert man["sources"]["wiki"]["n_docs"] == 13 and man["sources"]["forum"]["n_docs"] == 12
    assert man["composition"] == {"note": "x"}
    shards = list(iter_shards(tmp_path / "c", shard_size=10))
    assert [s.name for s in shards] == [s["name"] for s in man["shards"]]
    assert [d.id for s in shards for d in s.docs] == [d.id for d in docs]


def test_write_corpus_rerun_identical_and_stale_shards_removed(tmp_path):
    write_corpus(_docs(30), tmp_path / "a", shard_size=10)
    write_corpus(_docs(30), tmp_path / "b", shard_size=10)
    for name in ("corpus.json", "shard-00000.jsonl.gz", "shard-00002.jsonl.gz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    write_corpus(_docs(12), tmp_path / "a", shard_size=10)
    assert sorted(p.name for p in (tmp_path / "a").glob("shard-*")) == ["shard-00000.jsonl.gz",
                                                                          "shard-00001.jsonl.gz"]
    assert len(list(read_documents(tmp_path / "a"))) == 12


def test_write_corpus_refuses_duplicate_ids(tmp_path):
    docs = _docs(3) + [_docs(1)[0]]
    with pytest.raises(ValueError, match="duplicate document id 'd000'"):
        write_corpus(docs, tmp_path / "c", shard_size=10)


def test_corpus_version_mismatch_is_clear(tmp_path):
    write_corpus(_docs(3), tmp_path / "c")
    man = json.loads((tmp_path / "c" / "corpus.json").read_text())
    man["format_version"] = 99
    (tmp_path / "c" / "corpus.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match="format_version 99"):
        list(read_documents(tmp_path / "c"))
    with pytest.raises(ValueError, match="format_version 99"):
        read_corpus_manifest(tmp_path / "c")


def test_missing_shard_named(tmp_path):
    write_corpus(_docs(12), tmp_path / "c", shard_size=5)
    (tmp_path / "c" / "shard-00001.jsonl.gz").unlink()
    with pytest.raises(FileNotFoundError, match="shard-00001.jsonl.gz"):
        list(read_documents(tmp_path / "c"))


def test_quarantine_summary_and_file(tmp_path, capsys):
    from rich.console import Console

    with Quarantine(tmp_path / "q.jsonl") as quar:
        quar.add("f.jsonl", 3, "bad_json", b'{"x', "detail")
        quar.add("f.jsonl", 9, "bad_json", "y" * 1000)
        quar.add("g.jsonl", 1, "empty_text", "")
        console = Console(file=None, force_terminal=False, width=80)
        quar.print_summary(console)
    out = capsys.readouterr().out
    assert "bad_json" in out and "empty_text" in out and "3" in out
    assert quar.counts() == {"bad_json": 2, "empty_text": 1} and len(quar) == 3
    entries = read_quarantine(tmp_path / "q.jsonl")
    assert [(e["file"], e["line"], e["reason"]) for e in entries] == [
        ("f.jsonl", 3, "bad_json"), ("f.jsonl", 9, "bad_json"), ("g.jsonl", 1, "empty_text")]
    assert len(entries[1]["preview"]) == 203
    with pytest.raises(RuntimeError):
        quar.add("f", 1, "bad_json")
