"""Selectors: strategies that turn attributes (and optionally the current model) into selection decisions.

``get_selector(name, **params)`` builds a registered strategy; ``available_selectors()`` lists them. The
built-in strategies (random, heuristic, classifier, raft, dsir, color, ica, source_filter) register on first
use; the RL policies (ppo, reinforce, bandit) register from ``dynacure.loop.selectors``, imported lazily when
a name is unknown so the selector layer never imports the loop at import time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

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

_REGISTRY: dict[str, Callable[..., Selector]] = {}
_BUILTIN = ("random_select", "heuristic", "classifier", "raft", "dsir", "color_filter", "ica",
            "source_filter")
_EXTERNAL = ("dynacure.loop.selectors",)


def register_selector(name: str) -> Callable[[Callable[..., Selector]], Callable[..., Selector]]:
    """Class decorator (or factory decorator) that makes a strategy available under ``name``."""

    def deco(factory: Callable[..., Selector]) -> Callable[..., Selector]:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"selector {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory

    return deco


def _load_builtin() -> None:
    for mod in _BUILTIN:
        importlib.import_module(f"dynacure.selectors.{mod}")


def _load_external() -> None:
    for mod in _EXTERNAL:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            # Only "the loop is not built" is tolerated; a broken import inside it must surface.
            if exc.name is None or not mod.startswith(exc.name):
                raise


def available_selectors() -> list[str]:
    _load_builtin()
    _load_external()
    return sorted(_REGISTRY)


def selector_class(name: str) -> Callable[..., Selector]:
    """The registered factory for ``name`` (without building it); KeyError listing the names otherwise."""
    _load_builtin()
    if name not in _REGISTRY:
        _load_external()
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
