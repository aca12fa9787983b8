"""Selectors: strategies that turn attributes (and optionally the current model) into selection decisions.

``get_selector(name, **params)`` builds a registered strategy; ``available_selectors()`` lists them. The
built-in strategies (random, heuristic, classifier, raft, dsir, color, ica, source_filter) register on first
use. The RL policies (ppo, reinforce, bandit) live a layer up, in the loop, and register themselves when
``dynacure.loop.selectors`` is imported; the selector layer never imports the loop. Orchestrators that offer
every strategy import the registry through ``dynacure.pipeline.strategies``, which loads the loop first.

Every registered factory is a ``Selector`` subclass, so its traits (``kind``, ``needs_target``,
``uses_reward``...) can be read from ``selector_class(name)`` without building it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from dynacure.selectors.base import Selection, SelectionContext, Selector

__all__ = [
    "Selection",
    "SelectionContext",
    "Selector",
    "available_selectors",
    "get_selector",
    "register_selector",
    "selector_class",
]

_REGISTRY: dict[str, type[Selector]] = {}
_BUILTIN = ("random_select", "heuristic", "classifier", "raft", "dsir", "color_filter", "ica",
            "source_filter")

SelectorType = TypeVar("SelectorType", bound=type[Selector])


def register_selector(name: str) -> Callable[[SelectorType], SelectorType]:
    """Class decorator that makes a strategy available under ``name``."""

    def deco(factory: SelectorType) -> SelectorType:
        if not (isinstance(factory, type) and issubclass(factory, Selector)):
            raise TypeError(f"selector {name!r}: only Selector subclasses register (their traits are read)")
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"selector {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory

    return deco


def _load_builtin() -> None:
    for mod in _BUILTIN:
        importlib.import_module(f"dynacure.selectors.{mod}")


def available_selectors() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def selector_class(name: str) -> type[Selector]:
    """The registered class for ``name`` (without building it); KeyError listing the names otherwise."""
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown selection strategy {name!r}; available: {', '.join(sorted(_REGISTRY))}"
        ) from None


def get_selector(name: str, **params: Any) -> Selector:
    """Build the strategy ``name`` with ``params`` (bad params: ValueError naming the strategy)."""
    factory = selector_class(name)
    try:
        return factory(**params)
    except TypeError as exc:
        raise ValueError(f"selector {name!r}: bad parameters {sorted(params)}: {exc}") from None
