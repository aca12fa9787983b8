import numpy as np
import pytest

from dynacure.audit.disparity import removal_disparity
from dynacure.audit.groups import group_membership
from dynacure.audit.mitigation import cap_disparity


def test_group_membership_whole_words_and_dialect_threshold():
    texts = [
        "Muslims pray",
        "the islamic art museum",
        "a gayety of colors",
        "I'm finna go, y'all coming?",
        "dis is fine",
    ]
    m = group_membership(texts)
    assert m["muslim"].tolist() == [True, True, False, False, False]
    assert not m["lgbtq"][2]  # "gayety" is not the word "gay"
    assert m["aae_markers"].tolist() == [False, False, False, True, False]  # one marker is not enough


def test_disparity_ratio_known_answer():
    # 100 docs, 20 removed overall (rate 0.2); group of 10 with 6 removed (rate 0.6) -> ratio 3.
    removed = np.zeros(100, bool)
    removed[:6] = True
    removed[10:24] = True
    grp = np.zeros(100, bool)
    grp[:10] = True
    df = removal_disparity(removed, {"g": grp, "rest": ~grp}, n_boot=500, seed=1)
    row = df.set_index("group").loc["g"]
    assert row.removal_rate == pytest.approx(0.6)
    assert row.overall_rate == pytest.approx(0.2)
    assert row.ratio == pytest.approx(3.0)
    assert row.ratio_low < 3.0 < row.ratio_high
    assert df.iloc[0].group == "g"  # worst first


def test_cap_disparity_readmits_and_keeps_budget():
    rng = np.random.default_rng(0)
    n = 200
    grp = np.zeros(n, bool)
    grp[:40] = True
    keep = np.ones(n, bool)
    keep[:30] = False  # 75% of the group removed
    keep[40:60] = False  # 12.5% of the rest removed
    priority = rng.random(n)
    tokens = np.full(n, 10.0)
    new_keep, back = cap_disparity(keep, priority, tokens, {"g": grp}, max_ratio=1.25)
    overall = 1 - new_keep.mean()
    assert (1 - new_keep[grp].mean()) <= 1.25 * overall + 1 / 40
    assert tokens[new_keep].sum() <= tokens[keep].sum()
    assert back.sum() > 0 and back[~grp].sum() == 0
    # re-admitted members are the group's most preferred dropped documents
    dropped_before = np.flatnonzero(grp & ~keep)
    top = set(dropped_before[np.argsort(-priority[dropped_before])][: back.sum()])
    assert set(np.flatnonzero(back)) == top
