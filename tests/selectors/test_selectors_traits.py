"""Every registered strategy declares its traits; the orchestrators read them instead of name lists."""

from __future__ import annotations

from dynacure.experiments.config import uses_reward
from dynacure.pipeline.strategies import available_selectors, selector_class

# What each strategy is, written out once here so a changed trait is a visible decision.
EXPECTED = {
    "random": ("rule", False, False), "heuristic": ("rule", False, False),
    "source_filter": ("rule", False, False), "classifier": ("score", False, False),
    "raft": ("score", False, True), "dsir": ("score", True, False), "color": ("model", True, False),
    "ica": ("model", True, False), "ppo": ("loop", False, True), "reinforce": ("loop", False, True),
    "bandit": ("loop", False, True), "raft_labels": ("score", False, True),
}


def test_every_strategy_declares_kind_target_and_reward() -> None:
    assert sorted(available_selectors()) == sorted(EXPECTED)
    for name, (kind, target, reward) in EXPECTED.items():
        cls = selector_class(name)
        assert (cls.kind, cls.needs_target, cls.uses_reward) == (kind, target, reward), name
        assert uses_reward(name) is reward
    assert selector_class("ica").optional_signals == ("embedding",)
    assert selector_class("heuristic").signals == ("profanity",)
    assert selector_class("dsir").needs_text and not selector_class("classifier").needs_text


def test_an_unknown_name_counts_as_reading_the_reward() -> None:
    assert uses_reward("no_such_strategy")
