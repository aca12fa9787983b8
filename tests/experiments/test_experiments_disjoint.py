"""The texts a learner is shaped by outside curation (the base's pre-training text, the clean target set of
DSIR / CoLoR-Filter / ICA) never overlap the pool or any evaluation text."""

from __future__ import annotations

from dynacure.experiments.runner import target_texts
from dynacure.io.pool import evaluation_lines, pool_documents, pretraining_documents


def test_target_and_pretraining_text_are_disjoint_from_pool_and_evaluation(shared_data):
    pool = pool_documents(shared_data, sources=["wikitext2", "ptb"])
    pool_texts = {d.text for d in pool}
    pool_lines = {ln.strip() for d in pool for ln in d.text.split("\n") if len(ln.split()) >= 8}
    evals = evaluation_lines(shared_data)
    pre = pretraining_documents(shared_data)
    target = target_texts(shared_data, 300)
    assert len(target) == 300 and len(pre) > 5000
    for name, texts in (("target", target), ("pretraining", [d.text for d in pre])):
        assert not pool_texts & set(texts), f"{name} text is in the pool"
        lines = {ln.strip() for t in texts for ln in t.split("\n") if len(ln.split()) >= 8}
        # a line the sources repeat verbatim in other articles may appear on both sides; nothing more
        assert len(lines & pool_lines) <= 0.005 * len(lines), f"{name} shares lines with the pool"
        assert not lines & evals, f"{name} shares lines with WikiText-2/PTB valid or test"


def test_pretraining_split_is_about_half_of_wikitext_and_ptb_train(shared_data):
    pre = pretraining_documents(shared_data)
    pool = pool_documents(shared_data, sources=["wikitext2", "ptb"])
    words_pre = sum(len(d.text.split()) for d in pre)
    words_pool = sum(len(d.text.split()) for d in pool)
    assert 0.35 < words_pre / (words_pre + words_pool) < 0.65
    # whole WikiText articles go one way: no title on both sides
    titles_pre = {d.meta["title"] for d in pre if d.source == "wikitext2"}
    titles_pool = {d.meta["title"] for d in pool if d.source == "wikitext2"}
    assert not titles_pre & titles_pool
