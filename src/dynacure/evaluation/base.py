"""The suite interface: a suite probes a learner and returns named figures, each with an interval."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dynacure.evaluation.checkpoint import ChunkStore
from dynacure.learners.base import Learner
from dynacure.stats import Estimate, Units


@dataclass
class SuiteResult:
    suite: str
    metrics: dict[str, Estimate] = field(default_factory=dict)
    skipped: str | None = None  # why the suite did not run (learner or data)
    details: dict[str, Any] = field(default_factory=dict)
    # per-unit values behind a metric (same key as in ``metrics``), for paired comparisons between cells
    units: dict[str, Units] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {"suite": self.suite, "skipped": self.skipped,
               "metrics": {k: v.to_dict() for k, v in self.metrics.items()}, "details": self.details}
        if self.units:
            out["units"] = {k: u.to_dict() for k, u in self.units.items()}
        return out


class Suite(ABC):
    name: ClassVar[str]
    # Where the suite keeps its finished chunks so an interrupted run resumes (set by ``run_suites`` when
    # it is given a Checkpoint; None: nothing is kept). Suites that do not chunk their work ignore it.
    checkpoint: ChunkStore | None = None

    @abstractmethod
    def run(self, learner: Learner, seed: int = 0) -> SuiteResult:
        """Evaluate ``learner``; deterministic for a given seed."""
