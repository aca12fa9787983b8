"""The grid of an experiment: one cell per strategy x seed x budget x reward-weight set, each with a stable
id (its folder name under RUNS/cells) and the files that mark it done."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dynacure.experiments.config import ExperimentConfig, uses_reward

CELL_FILES = ("manifest.parquet", "metrics.json", "train_log.json", "run.json")
DONE = "DONE"
# `dynacure experiment --keep-models`: the cell's trained learner (safetensors + config + tokenizer), saved by
# the learner's own save, so `load_learner(<cell>/model)` opens it
MODEL_DIR = "model"


@dataclass(frozen=True)
class Cell:
    strategy: str  # label (unique in the experiment)
    strategy_name: str  # registry name
    params: dict[str, Any] = field(hash=False, compare=False)
    seed: int = 0
    budget: float = 0.5
    weights_name: str = "default"
    weights: dict[str, float] = field(default_factory=dict, hash=False, compare=False)
    redact_pii: bool = False  # the kept texts are PII-redacted before training (StrategyConfig.redact_pii)

    @property
    def cell_id(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.strategy).strip("-") or "s"
        wslug = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.weights_name).strip("-") or "w"
        # The hash keeps ids distinct when two labels slug to the same text; params are part of identity.
        digest = hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[
            :6
        ]
        return f"{slug}__b{self.budget:g}__w-{wslug}__s{self.seed}__{digest}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not self.redact_pii:  # cells without redaction keep the ids (and folders) they had before it
            del d["redact_pii"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cell:
        return cls(**d)


def expand_grid(cfg: ExperimentConfig) -> list[Cell]:
    """All cells, in a stable order (strategy, budget, weights, seed)."""
    cells: list[Cell] = []
    for strat in cfg.strategies:
        # A reward-free strategy gets one cell per seed x budget: more would repeat identical work.
        weight_sets = cfg.weights if uses_reward(strat.name) else cfg.weights[:1]
        for budget in cfg.budgets:
            for ws in weight_sets:
                for seed in cfg.seeds:
                    cells.append(
                        Cell(
                            strategy=strat.key,
                            strategy_name=strat.name,
                            params=dict(strat.params),
                            seed=seed,
                            budget=float(budget),
                            weights_name=ws.name,
                            weights=ws.as_dict(),
                            redact_pii=strat.redact_pii,
                        )
                    )
    return cells


def cell_dir(runs: str | Path, cell: Cell) -> Path:
    return Path(runs) / "cells" / cell.cell_id


def is_done(runs: str | Path, cell: Cell) -> bool:
    d = cell_dir(runs, cell)
    return (d / DONE).exists() and all((d / f).exists() for f in CELL_FILES)


def has_model(runs: str | Path, cell: Cell) -> bool:
    """Whether the cell's trained learner was kept (a whole save: ``learner.json`` is written last)."""
    return (cell_dir(runs, cell) / MODEL_DIR / "learner.json").exists()
