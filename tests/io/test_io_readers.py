"""Readers: every format, sharding, stable ids, and exact quarantine of injected bad records."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynacure.io.document import derive_id
from dynacure.io.quarantine import Quarantine, read_quarantine
from dynacure.io.readers import ReadStats, iter_shards, list_data_files, read_documents


def _jsonl(path: Path, recs: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    return path


def _recs(n: int, prefix: str = "doc") -> list[dict]:
    return [{"id": f"{prefix}-{i}", "text": f"{prefix} number {i} says hello"} for i in range(n)]


def test_jsonl_reads_ids_text_source_and_meta(tmp_path):
    f = _jsonl(tmp_path / "web.jsonl", [
        {"id": "a", "text": "alpha beta", "lang": "en"},
        {"text": "no id here", "source": "forum", "meta": {"score": 3}, "url": "http://x"},
        {"id": 7, "text": "integer id"},
    ])
    docs = list(read_documents(f))
    assert [d.id for d in docs] == ["a", derive_id("web.jsonl", 2), "7"]
    assert [d.source for d in docs] == ["web", "forum", "web"]
    assert docs[0].meta == {"lang": "en"}
    assert docs[1].meta == {"score": 3, "url": "http://x"}
    assert list(read_documents(f, source="crawl"))[0].source == "crawl"


def test_jsonl_gz_and_custom_fields(tmp_path):
    f = tmp_path / "c.jsonl.gz"
    with gzip.open(f, "wb") as fh:
        for i in range(5):
            fh.write(orjson.dumps({"uid": f"u{i}", "content": f"text {i}"}) + b"\n")
    docs = list(read_documents(f, text_field="content", id_field="uid"))
    assert [d.id for d in docs] == [f"u{i}" for i in range(5)]
    assert docs[3].text == "text 3" and docs[0].source == "c"


def test_bad_records_quarantined_with_reason_and_line(tmp_path):
    good = [b'{"id": "g1", "text": "first good"}', b'{"text": "second good"}',
            b'{"id": "g3", "text": "third good", "source": "x"}']
    lines = [
        good[0],                                   # 1
        b'{"id": "b1", "text": "unterminated',     # 2 bad json
        b'{"id": "b2", "body": "no text"}',        # 3 missing text
        b'{"id": "b3", "text": "caf\xe9 latin-1"}',  # 4 non-UTF-8
        good[1],                                   # 5
        b'{"id": "b4", "text": "   \\n "}',        # 6 empty
        b'{"id": "b5", "text": "' + b"y" * 500 + b'"}',  # 7 too long (max_chars=100)
        b'{"id": "g1", "text": "duplicate of line 1"}',  # 8 duplicate id
        b'["a", "list"]',                          # 9 not an object
        b'{"id": "b6", "text": 12}',               # 10 non-string text
        b"",                                       # 11 blank: not a record
        good[2],                                   # 12
    ]
    f = tmp_path / "mixed.jsonl"
    f.write_bytes(b"\n".join(lines) + b"\n")
    qpath = tmp_path / "q" / "quarantine.jsonl"
    stats = ReadStats()
    with Quarantine(qpath) as quar:
        shards = list(iter_shards(f, shard_size=2, quarantine=quar, max_chars=100, stats=stats))
    kept = [d for s in shards for d in s.docs]
    assert [d.text for d in kept] == ["first good", "second good", "third good"]
    entries = read_quarantine(qpath)
    assert [(e["line"], e["reason"]) for e in entries] == [
        (2, "bad_json"), (3, "missing_text"), (4, "non_utf8"), (6, "empty_text"), (7, "too_long"),
        (8, "duplicate_id"), (9, "not_object"), (10, "non_string_text")]
    assert all(e["file"] == str(f) for e in entries)
    assert entries[0]["preview"].startswith('{"id": "b1"')
    assert "\ufffd" in entries[2]["preview"]  # undecodable byte shown, not hidden
    assert quar.counts() == {"bad_json": 1, "duplicate_id": 1, "empty_text": 1, "missing_text": 1,
                             "non_string_text": 1, "non_utf8": 1, "not_object": 1, "too_long": 1}
    # every record accounted, per shard and in total
    for s in shards:
        assert s.n_read == len(s.docs) + s.n_quarantined
    assert stats.n_read == 11 and stats.n_kept == 3 and stats.n_quarantined == 8
    assert sum(s.n_read for s in shards) == 11
    assert not list(qpath.parent.glob(".*.tmp"))


def test_shard_sizes_and_names(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    _jsonl(folder / "b.jsonl", _recs(13, "b"))
    _jsonl(folder / "a.jsonl", _recs(12, "a"))
    shards = list(iter_shards(folder, shard_size=10))
    assert [len(s.docs) for s in shards] == [10, 10, 5]
    assert [s.name for s in shards] == ["shard-00000", "shard-00001", "shard-00002"]
    # files are read sorted by name: a.jsonl first
    assert shards[0].docs[0].id == "a-0" and shards[1].docs[2].id == "b-0"
    assert shards[1].files == [str(folder / "a.jsonl"), str(folder / "b.jsonl")]


def test_stable_derived_ids_across_runs_and_moves(tmp_path):
    for root in (tmp_path / "one", tmp_path / "two"):
        (root / "sub").mkdir(parents=True)
        _jsonl(root / "sub" / "x.jsonl", [{"text": f"t{i}"} for i in range(4)])
    ids1 = [d.id for d in read_documents(tmp_path / "one")]
    ids2 = [d.id for d in read_documents(tmp_path / "one")]
    ids3 = [d.id for d in read_documents(tmp_path / "two")]
    assert ids1 == ids2 == ids3
    assert ids1[0] == derive_id("sub/x.jsonl", 1) and len(set(ids1)) == 4


def test_plain_text_line_and_paragraph_modes(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("First paragraph line one.\nline two.\n\n\nSecond paragraph.\n\nThird\n", encoding="utf-8")
    lines = list(read_documents(f))
    assert [d.text for d in lines] == ["First paragraph line one.", "line two.", "Second paragraph.", "Third"]
    assert lines[2].id == derive_id("notes.txt", 5)
    paras = list(read_documents(f, text_mode="paragraph"))
    assert [d.text for d in paras] == ["First paragraph line one.\nline two.", "Second paragraph.", "Third"]
    assert [d.id for d in paras] == [derive_id("notes.txt", n) for n in (1, 5, 7)]
    assert paras[0].source == "notes"


def test_plain_text_non_utf8_paragraph_is_quarantined(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes(b"good para\n\nbad \xff line\nsecond line\n\nlast\n")
    quar = Quarantine()
    paras = list(read_documents(f, text_mode="paragraph", quarantine=quar))
    assert [d.text for d in paras] == ["good para", "last"]
    assert [(e["line"], e["reason"]) for e in quar.entries] == [(3, "non_utf8")]


def test_parquet_read_in_batches(tmp_path):
    f = tmp_path / "p.parquet"
    table = pa.table({"text": [f"row {i}" if i != 4 else "" for i in range(30)],
                      "label": list(range(30))})
    pq.write_table(table, f, row_group_size=7)
    quar = Quarantine()
    shards = list(iter_shards(f, shard_size=8, quarantine=quar, batch_size=5))
    docs = [d for s in shards for d in s.docs]
    assert len(docs) == 29 and [len(s.docs) for s in shards] == [8, 8, 8, 5]
    assert docs[0].id == derive_id("p.parquet", 1) and docs[5].meta == {"label": 6}
    assert [(e["line"], e["reason"]) for e in quar.entries] == [(5, "empty_text")]


def test_parquet_missing_text_column_is_clear_error(tmp_path):
    f = tmp_path / "p.parquet"
    pq.write_table(pa.table({"body": ["x"]}), f)
    with pytest.raises(ValueError, match=r"p\.parquet: no column 'text'.*body"):
        list(read_documents(f))


def _write_hf_split(folder: Path, texts: list[str], n_files: int = 2) -> None:
    """A folder laid out like ``datasets.Dataset.save_to_disk``: Arrow IPC streams + state/info json."""
    folder.mkdir(parents=True)
    chunks = [texts[i::n_files] for i in range(n_files)]
    files = []
    for i, chunk in enumerate(chunks):
        name = f"data-{i:05d}-of-{n_files:05d}.arrow"
        table = pa.table({"text": chunk, "label": [len(t) % 2 for t in chunk]})
        with pa.OSFile(str(folder / name), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
            for batch in table.to_batches(max_chunksize=3):
                w.write_batch(batch)
        files.append({"filename": name})
    (folder / "state.json").write_text(json.dumps({"_data_files": files, "_split": "train"}))
    (folder / "dataset_info.json").write_text(json.dumps({"features": {"text": {"dtype": "string"}}}))


def test_hf_saved_dataset_folder(tmp_path):
    texts = [f"sentence {i}" for i in range(10)]
    _write_hf_split(tmp_path / "mydata", texts)
    docs = list(read_documents(tmp_path / "mydata"))
    assert sorted(d.text for d in docs) == sorted(texts)
    assert {d.source for d in docs} == {"mydata"}
    assert docs[0].id == derive_id("data-00000-of-00002.arrow", 1)
    assert "label" in docs[0].meta
    # DatasetDict layout: split folders under a dataset_dict.json
    dd = tmp_path / "dd"
    _write_hf_split(dd / "train", texts[:6], n_files=1)
    _write_hf_split(dd / "test", texts[6:], n_files=1)
    (dd / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    docs = list(read_documents(dd))
    assert [d.source for d in docs] == ["dd/test"] * 4 + ["dd/train"] * 6


def test_folder_of_mixed_data_files_skips_other_files(tmp_path):
    _jsonl(tmp_path / "a.jsonl", _recs(2, "a"))
    pq.write_table(pa.table({"id": ["p1"], "text": ["from parquet"]}), tmp_path / "b.parquet")
    (tmp_path / "README.md").write_text("not data")
    (tmp_path / ".hidden.jsonl").write_text('{"text": "hidden temp file"}\n')
    root, files = list_data_files(tmp_path)
    assert [f.name for f in files] == ["a.jsonl", "b.parquet"]
    assert [d.id for d in read_documents(tmp_path)] == ["a-0", "a-1", "p1"]


def test_truncated_gzip_is_named_and_quarantined(tmp_path):
    f = tmp_path / "big.jsonl.gz"
    blob = gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in _recs(3000)))
    f.write_bytes(blob[: len(blob) // 2])
    quar = Quarantine()
    stats = ReadStats()
    docs = list(read_documents(f, quarantine=quar, stats=stats))
    assert 0 < len(docs) < 3000
    assert len(quar.entries) == 1
    entry = quar.entries[0]
    assert entry["file"] == str(f) and entry["reason"] == "unreadable_file"
    assert entry["line"] == len(docs) + 1 and "gzip" in entry["detail"]
    assert stats.n_read == stats.n_kept + stats.n_quarantined
    with pytest.raises(ValueError, match=r"big\.jsonl\.gz: truncated or corrupt gzip"):
        list(read_documents(f, on_file_error="raise"))


def test_corrupt_parquet_is_named(tmp_path):
    f = tmp_path / "broken.parquet"
    f.write_bytes(b"PAR1 this is not really parquet")
    quar = Quarantine()
    assert list(read_documents(f, quarantine=quar)) == []
    assert quar.entries[0]["file"] == str(f) and quar.entries[0]["reason"] == "unreadable_file"


def test_missing_path_and_unknown_format(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        list(read_documents(tmp_path / "nope"))
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"x\.csv: unsupported format"):
        list(read_documents(tmp_path / "x.csv"))
    with pytest.raises(FileNotFoundError, match="no data files"):
        list(read_documents(tmp_path))


def test_overlong_line_is_drained_not_buffered(tmp_path):
    f = tmp_path / "long.jsonl"
    f.write_bytes(b'{"text": "' + b"z" * 20_000 + b'"}\n{"text": "after"}\n')
    quar = Quarantine()
    docs = list(read_documents(f, quarantine=quar, max_chars=100, max_line_bytes=1000))
    assert [d.text for d in docs] == ["after"]
    assert quar.entries[0]["reason"] == "too_long" and quar.entries[0]["line"] == 1
    assert "1000 bytes" in quar.entries[0]["detail"]
    assert len(quar.entries[0]["preview"]) < 300
