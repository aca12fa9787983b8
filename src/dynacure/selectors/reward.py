"""The composite data reward shared by RAFT and the RL loop: R = w_s*safety + w_a*alignment + w_u*utility.

- safety = 1 - (calibrated) toxicity, the max over the toxicity categories present, so a document counts
  as toxic if it is toxic in any category;
- alignment = the alignment proxy's score;
- utility = the quality score, optionally times an information-density column.

All three are in [0, 1], so R is in [0, 1]. A component with weight 0 does not need its columns. A column
it needs that is missing, or holds any NaN (a signal that could not compute), is refused with an error
naming the column: never imputed, so no selection is built on a reward that silently lost a component.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
from pydantic import model_validator

from dynacure.config import StrictModel
from dynacure.selectors.common import TOXICITY_SIGNALS, apply_calibrator, toxicity_columns

_TOL = 1e-6
WEIGHT_KEYS = ("safety", "alignment", "utility")


class RewardWeights(StrictModel):
    """Weights of the three reward components; each in [0, 1] and together summing to 1. The one weights
    type: an experiment's weight sets (``experiments.config.WeightSet``) are RewardWeights with a name."""

    safety: float = 0.5
    alignment: float = 0.3
    utility: float = 0.2

    def _what(self) -> str:
        return "reward weights"

    @model_validator(mode="after")
    def _valid(self) -> Self:
        bad = [k for k in WEIGHT_KEYS if not (0.0 <= getattr(self, k) <= 1.0)]  # also refuses NaN
        if bad:
            raise ValueError(f"{self._what()} must be in [0, 1]; bad: "
                             + ", ".join(f"{k}={getattr(self, k)}" for k in bad))
        total = self.safety + self.alignment + self.utility
        if abs(total - 1.0) > _TOL:
            raise ValueError(
                f"{self._what()} must sum to 1 (safety+alignment+utility), got "
                f"{self.safety}+{self.alignment}+{self.utility} = {total:.6g}"
            )
        return self

    def as_dict(self) -> dict[str, float]:
        """The three weights by component name (what the strategies take as ``weights``)."""
        return {k: float(getattr(self, k)) for k in WEIGHT_KEYS}

    @classmethod
    def parse(cls, text: str) -> RewardWeights:
        """From ``"safety,alignment,utility"``, e.g. ``"0.5,0.3,0.2"``; ValueError when malformed."""
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) != 3:
            raise ValueError(
                f"--weights takes three comma-separated numbers safety,alignment,utility; got {text!r}"
            )
        try:
            s, a, u = (float(p) for p in parts)
        except ValueError:
            raise ValueError(f"--weights: not numbers: {text!r}") from None
        from pydantic import ValidationError

        try:
            return cls(safety=s, alignment=a, utility=u)
        except ValidationError as exc:
            msgs = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise ValueError(f"--weights {text!r}: {msgs}") from None


class RewardColumns(StrictModel):
    """Which attribute columns feed each component.

    ``toxicity`` None means every column of the toxicity signals present (``toxicity_ngram``,
    ``toxicity_minilm``, ``profanity``).
    """

    toxicity: list[str] | None = None
    alignment: str = "alignment__score"
    utility: str = "quality__score"
    density: str | None = None


def _column(table: pd.DataFrame, name: str) -> np.ndarray:
    values = pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=np.float64)
    bad = int(np.isnan(values).sum())
    if bad:
        # A NaN would silently become 0 or NaN in the reward and bias every selection built on it.
        what = " (all of them)" if bad == len(values) else ""
        raise ValueError(
            f"reward column {name!r} has {bad} missing/non-numeric values of {len(values)}{what}: the "
            f"signal {name.split('__')[0]!r} could not compute them; re-score with that signal working "
            "(e.g. give 'quality' a reference LM) or leave the column out of the reward (weight 0, or "
            "other RewardColumns)"
        )
    if len(values) and (values.min() < -_TOL or values.max() > 1 + _TOL):
        raise ValueError(
            f"reward column {name!r} must be in [0, 1]; found [{values.min():.4g}, {values.max():.4g}]"
        )
    return np.clip(values, 0.0, 1.0)


def reward_components(
    table: pd.DataFrame,
    weights: RewardWeights | None = None,
    columns: RewardColumns | None = None,
    calibrator: object = None,
) -> dict[str, np.ndarray]:
    """The three components (each in [0, 1]) for every row; only the ones with a nonzero weight."""
    weights = weights or RewardWeights()
    columns = columns or RewardColumns()
    tox_cols = columns.toxicity if columns.toxicity is not None else toxicity_columns(table)
    need: list[str] = []
    if weights.safety > 0:
        need += tox_cols if tox_cols else [f"{s}__*" for s in TOXICITY_SIGNALS]
    if weights.alignment > 0:
        need.append(columns.alignment)
    if weights.utility > 0:
        need.append(columns.utility)
        if columns.density:
            need.append(columns.density)
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(
            f"composite reward needs column(s) {missing} missing from the attributes; "
            f"score the corpus with the signals they come from"
        )
    out: dict[str, np.ndarray] = {}
    if weights.safety > 0:
        tox = np.max(
            np.vstack([apply_calibrator(calibrator, c, _column(table, c)) for c in tox_cols]), axis=0
        )
        out["safety"] = 1.0 - np.clip(tox, 0.0, 1.0)
    if weights.alignment > 0:
        out["alignment"] = _column(table, columns.alignment)
    if weights.utility > 0:
        util = _column(table, columns.utility)
        if columns.density:
            util = util * _column(table, columns.density)
        out["utility"] = util
    return out


def composite_reward(
    table: pd.DataFrame,
    weights: RewardWeights | None = None,
    columns: RewardColumns | None = None,
    calibrator: object = None,
) -> np.ndarray:
    """R = w_s*safety + w_a*alignment + w_u*utility per row of ``table``, in [0, 1].

    ``calibrator``: an ``IsotonicCalibrator`` (or a mapping toxicity column -> calibrator) applied to the
    raw toxicity scores before ``safety = 1 - toxicity``; None uses the raw scores.
    """
    weights = weights or RewardWeights()
    comps = reward_components(table, weights, columns, calibrator)
    reward = np.zeros(len(table), dtype=np.float64)
    for name, values in comps.items():
        reward += getattr(weights, name) * values
    return reward
