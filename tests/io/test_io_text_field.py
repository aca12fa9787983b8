"""Per-file text-field detection (issue 28 item 6): which field each file is read from, that a worker
re-reading a span agrees with the planning read, and that outside an ``auto`` block readers stay strict."""

from __future__ import annotations

import dataclasses
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynacure.io.quarantine import Quarantine
from dynacure.io.readers import (
    iter_shards,
    read_documents,
    read_span_texts,
    resolve_text_field,
    text_field_default,
)


def _folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text("".join(json.dumps({"id": f"a{i}", "text": f"jsonl text {i}"}) + "\n"
                                          for i in range(5)))
    pq.write_table(pa.table({"id": [f"b{i}" for i in range(4)], "title": ["t"] * 4,
                             "body": [f"parquet body {i}" for i in range(4)]}), data / "b.parquet")
    # most records hold "document"; one also has a short "content" string
    rows = [{"id": f"c{i}", "document": f"document text {i}"} for i in range(3)]
    rows[0]["content"] = "x"
    (data / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def test_each_file_is_read_from_the_field_it_has(tmp_path):
    data = _folder(tmp_path)
    assert resolve_text_field(data / "a.jsonl", "text") == ("text", "")
    field, why = resolve_text_field(data / "b.parquet", "text")
    assert field == "body" and "columns: id, title, body" in why
    assert resolve_text_field(data / "c.jsonl", "text")[0] == "document"  # held by most records
    with text_field_default(None, auto=True) as choices:
        docs = {d.id: d.text for d in read_documents(data)}
    assert docs["a0"] == "jsonl text 0" and docs["b3"] == "parquet body 3" and docs["c2"] == "document text 2"
    assert len(docs) == 12
    assert {c.file.rsplit("/", 1)[-1]: c.field for c in choices.switched()} == {"b.parquet": "body",
                                                                                 "c.jsonl": "document"}


def test_a_worker_rereading_a_span_takes_the_planned_field(tmp_path):
    data = _folder(tmp_path)
    with text_field_default("body", auto=True):
        shards = list(iter_shards(data, shard_size=100))
        spans = shards[0].spans
        assert [s.text_field for s in spans] == ["text", "body", "document"]
        texts = [t for s in spans for t in read_span_texts(s, Quarantine(), set())[1]]
        # a span planned without a field (a corpus.json plan) is resolved the same way
        bare = [t for s in spans for t in read_span_texts(dataclasses.replace(s, text_field=None),
                                                         Quarantine(), set())[1]]
    assert texts == bare == [d.text for d in shards[0].docs] and len(texts) == 12


def test_outside_an_auto_block_the_readers_stay_strict(tmp_path):
    data = _folder(tmp_path)
    quar = Quarantine()
    with pytest.raises(ValueError, match=r"b\.parquet: no column 'text'"):
        list(read_documents(data, quarantine=quar))
    with text_field_default("text"):  # a named field without auto: as before
        assert [d.id for d in read_documents(data / "a.jsonl")] == [f"a{i}" for i in range(5)]
        assert list(read_documents(data / "c.jsonl", quarantine=quar)) == []
