"""Every selection strategy, the loop's included: the registry as the orchestrators use it.

The selector layer cannot import the loop (the loop sits above it), so the loop's policies register
themselves when ``dynacure.loop.selectors`` is imported; this module imports it, then hands out the one
registry. Use these names, not ``dynacure.selectors``', wherever a user may name any strategy.
"""

from __future__ import annotations

import dynacure.loop.labels  # noqa: F401  (registers raft_labels)
import dynacure.loop.selectors  # noqa: F401  (registers ppo, reinforce, bandit)
from dynacure.selectors import available_selectors, get_selector, selector_class

__all__ = ["available_selectors", "get_selector", "selector_class"]
