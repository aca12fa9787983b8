"""Raw pool from ../shared/data: only pool parts, held-out halves absent, plausible composition, CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dynacure.io import public_data as P
from dynacure.io.pool import build_pool, ptb_documents, wikitext_documents
from dynacure.io.readers import iter_shards, read_documents

MAX_PER_SOURCE = 400


@pytest.fixture(scope="module")
def pool(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("pool")
    summary = build_pool(shared_data, out, seed=3, shard_size=500, max_docs_per_source=MAX_PER_SOURCE)
    return summary, out, list(read_documents(out))


def test_pool_has_every_source_and_the_manifest(pool):
    summary, out, docs = pool
    by_source = {s.source: s for s in summary.sources}
    assert set(by_source) == {"wikitext2", "ptb", "hh_rlhf_harmless", "hh_rlhf_helpful",
                              "tweeteval_offensive", "tweeteval_hate", "davidson", "jigsaw"}
    assert all(s.n_docs == MAX_PER_SOURCE for s in summary.sources)
    assert len(docs) == summary.n_docs == 8 * MAX_PER_SOURCE
    assert len({d.id for d in docs}) == len(docs)
    man = json.loads((out / "corpus.json").read_text())
    assert man["n_docs"] == len(docs) and man["kind"] == "raw_pool"
    comp = {s["source"]: s for s in man["pool"]["sources"]}
    assert comp["davidson"]["n_toxic"] == by_source["davidson"].n_toxic
    assert comp["wikitext2"]["toxic_share"] is None


def test_only_pool_parts_enter(pool):
    _, _, docs = pool
    labeled = [d for d in docs if "toxic" in d.meta]
    assert len(labeled) == 4 * MAX_PER_SOURCE
    # recompute the fixed split independently of the pool code
    assert all(P.part_of(d.meta["dataset"], d.meta["row"]) == "pool" for d in labeled)
    assert {d.meta["dataset"] for d in labeled} == {"tweeteval_offensive_train", "tweeteval_hate_train",
                                                   "davidson", "jigsaw_train"}
    hh = [d for d in docs if d.meta.get("dataset") == "hh_rlhf"]
    assert all(P.stable_fraction(f"hh:{d.meta['subset']}:{d.meta['row']}") < 0.5 for d in hh)
    assert {d.meta["response"] for d in hh} == {"chosen", "rejected"}
    assert {d.meta.get("split") for d in docs if d.source in ("wikitext2", "ptb")} == {"train"}


def test_held_out_text_absent(pool, shared_data):
    _, _, docs = pool
    texts = {d.text for d in docs}
    for subset in P.HH_SUBSETS:
        ev = P.hh_rlhf(subset, "eval", data_dir=shared_data)
        held_out = {t.strip() for t in ev["chosen"]} | {t.strip() for t in ev["rejected"]}
        assert not texts & held_out
    assert not texts & {t.strip() for t in P.jigsaw("test", shared_data)["text"]}
    judge = P.davidson(shared_data)
    assert not texts & {t.strip() for t in judge[judge["part"] != "pool"]["text"]}


def test_toxic_share_plausible_and_labels(pool):
    summary, _, docs = pool
    share = {s.source: s.toxic_share for s in summary.sources}
    assert share["davidson"] > 0.7
    assert 0.2 < share["tweeteval_offensive"] < 0.5
    assert 0.25 < share["tweeteval_hate"] < 0.6
    assert 0.4 < share["jigsaw"] < 0.75
    assert share["wikitext2"] is None and share["ptb"] is None
    dav = [d for d in docs if d.source == "davidson"]
    assert all((d.meta["davidson_class"] != "neither") == bool(d.meta["toxic"]) for d in dav)
    jig = [d for d in docs if d.source == "jigsaw"]
    assert all(bool(d.meta["toxic"]) == any(d.meta[f"jigsaw_{k}"] for k in P.JIGSAW_LABELS) for d in jig)
    assert 0 < summary.toxic_token_share < summary.toxic_doc_share < 0.5


def test_shards_are_mixed(pool):
    _, out, _ = pool
    shards = list(iter_shards(out, shard_size=500))
    assert [len(s.docs) for s in shards] == [500] * 6 + [200]
    assert all(len({d.source for d in s.docs}) == 8 for s in shards[:6])


def test_clean_docs_are_paragraph_sized(pool):
    _, _, docs = pool
    wiki = [len(d.text.split()) for d in docs if d.source == "wikitext2"]
    ptb = [len(d.text.split()) for d in docs if d.source == "ptb"]
    assert min(wiki) >= 20 and max(wiki) <= 350 and 150 < sorted(wiki)[len(wiki) // 2] < 280
    assert max(ptb) <= 200 and sorted(ptb)[len(ptb) // 2] >= 100


def test_wikitext_grouping_rules():
    para = " ".join(["word"] * 60) + " . "
    lines = [" = Article One = ", " ", para, para, " = = Section = = ", para, para, para,
             " = Article Two = ", " tiny caption ", para]
    docs = list(wikitext_documents(lines))
    titles = [m["title"] for _, _, m in docs]
    assert titles == ["Article One", "Article One", "Article Two"]
    assert [len(t.split()) for _, t, _ in docs] == [122, 183, 61 + 2]
    assert docs[1][2]["section"] == "Section"


def test_ptb_grouping_rules():
    lines = [" ".join(["w"] * 40)] * 10
    docs = list(ptb_documents(lines))
    assert [len(t.split()) for _, t, _ in docs] == [160, 160, 80]
    assert [pos for pos, _, _ in docs] == [0, 4, 8]


def test_rerun_byte_identical_and_seed_changes_order(shared_data, tmp_path):
    kw = {"shard_size": 100, "max_docs_per_source": 60, "sources": ["davidson", "ptb", "hh_rlhf_helpful"]}
    build_pool(shared_data, tmp_path / "a", seed=1, **kw)
    build_pool(shared_data, tmp_path / "b", seed=1, **kw)
    build_pool(shared_data, tmp_path / "c", seed=2, **kw)
    for name in ("corpus.json", "shard-00000.jsonl.gz", "shard-00001.jsonl.gz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "shard-00000.jsonl.gz").read_bytes() != (tmp_path / "c" / "shard-00000.jsonl.gz"
                                                                       ).read_bytes()


def test_cli_pool_build(shared_data, tmp_path):
    from dynacure.cli.main import app

    out = tmp_path / "clipool"
    res = CliRunner().invoke(app, ["pool", "build", "--data-dir", str(shared_data), "--out", str(out),
                                   "--max-docs-per-source", "50", "--source", "jigsaw", "--source", "ptb",
                                   "--shard-size", "40"])
    assert res.exit_code == 0, res.output
    assert "jigsaw" in res.output and "Raw pool composition" in res.output
    man = json.loads((out / "corpus.json").read_text())
    assert man["n_docs"] == 100 and [s["n_docs"] for s in man["shards"]] == [40, 40, 20]
    assert (out / "run.json").exists()
    bad = CliRunner().invoke(app, ["pool", "build", "--data-dir", str(tmp_path / "missing"), "--out",
                                   str(tmp_path / "x")])
    assert bad.exit_code == 2 and "missing" in bad.output
    bad = CliRunner().invoke(app, ["pool", "build", "--data-dir", str(shared_data), "--out",
                                   str(tmp_path / "x"), "--source", "c4"])
    assert bad.exit_code == 2 and "unknown pool source" in bad.output
