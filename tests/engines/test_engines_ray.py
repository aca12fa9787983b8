"""The Ray engine writes the same attribute tables as the local engine, and they resume each other."""

from __future__ import annotations

import pandas as pd
import pytest
from engines_corpus import write_jsonl_with_bad_lines

from dynacure.engines.local import score_corpus as score_local
from dynacure.io.attributes import read_attributes

ray = pytest.importorskip("ray", reason="ray is not installed; the Ray engine cannot be tested")

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_equals_local(tmp_path, ray_cluster):
    from dynacure.engines.ray import score_corpus as score_ray

    corpus = tmp_path / "c.jsonl"
    ids = write_jsonl_with_bad_lines(corpus, 250, seed=5, every=50)
    local, rayd = tmp_path / "local", tmp_path / "ray"
    sl = score_local(corpus, "profanity", local, shard_size=100, workers=1, progress=False)
    # Three shards on two Ray workers: each reads its own shard from the file and writes its own table.
    sr = score_ray(corpus, "profanity", rayd, shard_size=100, workers=2, progress=False)
    assert sr.accounting_errors() == [] and sr.n_docs == 250 and sr.n_quarantined == sl.n_quarantined == 5
    a, b = read_attributes(local), read_attributes(rayd)
    assert sorted(a["id"]) == sorted(ids)
    pd.testing.assert_frame_equal(a, b)
    files = sorted(p.relative_to(local) for p in local.glob("*/*.parquet"))
    assert files == sorted(p.relative_to(rayd) for p in rayd.glob("*/*.parquet")) and len(files) == 3
    for f in files:
        assert (local / f).read_bytes() == (rayd / f).read_bytes()
    # the local engine resumes a Ray run: nothing left to score
    again = score_local(corpus, "profanity", rayd, shard_size=100, workers=1, progress=False)
    assert again.scored_docs == {"profanity": 0}
    assert again.resumed_docs == {"profanity": 250}
