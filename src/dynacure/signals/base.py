"""The signal interface and registry.

A signal is a small class with one batched method, ``score(texts) -> {column: array}``, and declared
resources (NeMo Curator style) that the engines use to size batches and place work.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0
    batch_size: int = 256


class Signal(ABC):
    """Scores a batch of texts. Subclasses set ``name`` and ``columns`` and implement ``score``.

    Every returned column must have one value per input text, in input order.
    """

    name: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    resources: ClassVar[Resources] = Resources()

    @abstractmethod
    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Return ``{column: values}`` for ``texts``."""

    def params(self) -> dict[str, Any]:
        """What identifies this signal's configuration (written next to its attribute tables)."""
        return {}


_REGISTRY: dict[str, Callable[..., Signal]] = {}


def register_signal(name: str) -> Callable[[Callable[..., Signal]], Callable[..., Signal]]:
    def deco(factory: Callable[..., Signal]) -> Callable[..., Signal]:
        if name in _REGISTRY:
            raise ValueError(f"signal {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory

    return deco


def available_signals() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_signal(name: str, **kwargs: Any) -> Signal:
    _load_builtin()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown signal {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None
    return factory(**kwargs)


def _load_builtin() -> None:
    # Importing the modules registers their signals; kept lazy so `import dynacure` stays light.
    import importlib

    for mod in ("toxicity", "alignment", "utility", "pii", "embedding", "hf_classifier"):
        try:
            importlib.import_module(f"dynacure.signals.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"dynacure.signals.{mod}":
                raise
