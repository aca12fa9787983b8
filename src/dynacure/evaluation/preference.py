"""HH-RLHF preference accuracy of a plain LM on the held-out ``eval`` half of the test dialogues.

A pair counts as right when the learner gives the chosen final assistant reply a higher log-likelihood than
the rejected one after the same dialogue prefix (ties count half). The length-normalised variant compares
mean log-prob per token instead, so a short reply is not favoured just for being short.

Every accuracy carries its per-pair Units (kind "mean", values 1 / 0.5 / 0, ids ``<subset>:<row>`` with the
row of the test file), so two learners evaluated on the same pairs compare by a paired bootstrap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dynacure.config import StrictModel
from dynacure.evaluation.base import Suite, SuiteResult
from dynacure.evaluation.common import ProgressFn, batched_logprob, fixed_subset, mean_ci, parse_options
from dynacure.io import public_data
from dynacure.learners.base import Learner
from dynacure.stats import Units


class PreferenceOptions(StrictModel):
    subsets: list[str] = list(public_data.HH_SUBSETS)
    data_dir: str | None = None
    max_pairs: int | None = None  # per subset
    batch_size: int = 16


def pair_wins(lp_chosen: np.ndarray, lp_rejected: np.ndarray) -> np.ndarray:
    """1 where chosen scores higher, 0.5 on ties, 0 otherwise."""
    return np.where(lp_chosen > lp_rejected, 1.0, np.where(lp_chosen == lp_rejected, 0.5, 0.0))


class PreferenceSuite(Suite):
    name: ClassVar[str] = "preference"

    def __init__(self, progress: ProgressFn | None = None, **options: Any):
        self.opts: PreferenceOptions = parse_options(PreferenceOptions, options, self.name)
        self.progress = progress

    def run(self, learner: Learner, seed: int = 0) -> SuiteResult:
        base = Path(self.opts.data_dir) if self.opts.data_dir else public_data.default_data_dir()
        frames = []
        for sub in self.opts.subsets:
            df = public_data.hh_rlhf(sub, half="eval", data_dir=self.opts.data_dir)
            frames.append(df.iloc[fixed_subset(len(df), self.opts.max_pairs)])
        total = 2 * sum(len(f) for f in frames)
        done = 0
        plain_all, norm_all, ids_all = [], [], []
        metrics = {}
        units: dict[str, Units] = {}
        details: dict[str, Any] = {"half": "eval", "data_files": [], "pairs": {}}
        for sub, df in zip(self.opts.subsets, frames, strict=True):
            prefixes = df["prefix"].tolist()
            conts = df["chosen_reply"].tolist() + df["rejected_reply"].tolist()
            lp, n = batched_logprob(learner, prefixes + prefixes, conts, batch_size=self.opts.batch_size,
                                    progress=self.progress, suite=self.name, done_offset=done, total=total,
                                    store=self.checkpoint, key=sub)
            done += len(conts)
            m = len(df)
            plain = pair_wins(lp[:m], lp[m:])
            norm = pair_wins(lp[:m] / np.maximum(n[:m], 1), lp[m:] / np.maximum(n[m:], 1))
            metrics[f"{sub}_accuracy"] = mean_ci(plain, seed)
            metrics[f"{sub}_accuracy_length_normalised"] = mean_ci(norm, seed)
            # the row of the test file names the pair: the same for every learner, whatever max_pairs keeps
            ids = [f"{sub}:{r}" for r in df["row"].tolist()]
            units[f"{sub}_accuracy"] = Units("mean", plain, ids=ids)
            units[f"{sub}_accuracy_length_normalised"] = Units("mean", norm, ids=ids)
            plain_all.append(plain)
            norm_all.append(norm)
            ids_all.extend(ids)
            path = base / "hh-rlhf" / sub / "test.jsonl.gz"
            details["data_files"].append(str(path.resolve()))
            details["pairs"][sub] = {"n": m, "ties": int((plain == 0.5).sum()),
                                     "chosen_longer_share": float((n[:m] > n[m:]).mean()) if m else None}
        if len(frames) > 1:
            metrics["accuracy"] = mean_ci(np.concatenate(plain_all), seed)
            metrics["accuracy_length_normalised"] = mean_ci(np.concatenate(norm_all), seed)
            # pooled over subsets (micro mean), as the Estimate above
            units["accuracy"] = Units("mean", np.concatenate(plain_all), ids=ids_all)
            units["accuracy_length_normalised"] = Units("mean", np.concatenate(norm_all), ids=list(ids_all))
        return SuiteResult(self.name, metrics, None, details, units)
