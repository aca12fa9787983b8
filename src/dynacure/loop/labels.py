"""Active labelling with a person (or the pool's gold labels) as the expensive oracle (issue 26).

The strategy ``raft_labels`` ranks by RAFT's composite reward on the cheap scores and asks an oracle for
the labels that would help most (``loop/feedback.py`` ``ActiveQueries``: an exploration round, then value of
information at the budget threshold, a tree surrogate spreading the answers; or a baseline's rule). A label
is the document's toxicity as the oracle defines it (1 toxic, 0 not; a probability in [0, 1] is taken as
is); it replaces the cheap toxicity in the reward, ``reward + w_s * (cheap - label)``.

The oracle answers through files, the same for a person and for the simulation:

1. ``propose(N)`` writes ``LABELS_DIR/proposal-RR.jsonl``: N lines ``{"id", "text", "why", "round"}``, and
   records the round in ``LABELS_DIR/state.json``; the selection stops there (``LabelsProposed``);
2. the person writes a labels file, JSONL lines ``{"id": ..., "label": 0 or 1}`` (ids of any earlier
   proposal; one file may hold every round's labels);
3. a later call with that file replays the rounds in order (the same surrogate fits), then proposes the next
   round, or, without ``propose``, finishes the selection.

Resumable: a proposal is written once and never recomputed (a second ``propose`` before any of its
documents is labelled hands back the same file), and ``state.json`` holds a fingerprint of the run (budget,
seed, mode, the documents and their base scores) so that labels are never replayed onto another run. In an
experiment the oracle is a function that answers a proposal file with a labels file
(``experiments/labels.py``: the gold labels of the labelled sources), so the simulation runs this path.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from dynacure.io.atomic import write_json_atomic, write_text_atomic
from dynacure.loop.feedback import MODES, ActiveQueries, round_sizes
from dynacure.selectors import register_selector
from dynacure.selectors.base import Selection, SelectionContext
from dynacure.selectors.budget import check_budget, keep_reasons, top_to_budget, unit_weights
from dynacure.selectors.common import check_table, table_ids, token_counts
from dynacure.selectors.raft import RaftSelector
from dynacure.selectors.reward import RewardWeights, composite_reward, reward_components

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
STATE_VERSION = 1
# An oracle answers one proposal file by writing (or appending to) the labels file it is given.
Oracle = Callable[[Path, Path], None]


class LabelsProposed(Exception):  # noqa: N818  (a stop, not an error: the run waits for a person)
    """The selection stopped after writing a proposal; a person labels it, then the run goes on."""

    def __init__(self, path: Path, n: int, round_: int, reused: bool) -> None:
        self.path, self.n, self.round, self.reused = path, n, round_, reused
        what = "the same proposal as before (not recomputed)" if reused else "a new proposal"
        super().__init__(f"{path}: {n} documents to label, round {round_ + 1} ({what}); write their labels "
                         "as JSONL lines {\"id\": ..., \"label\": 0 or 1} and run again with --labels FILE")


def parse_label(value: Any) -> float | None:
    """A label as a toxicity in [0, 1] (true/false, 0/1, a probability); None when it is not one."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and np.isfinite(value) and 0.0 <= float(value) <= 1.0:
        return float(value)
    return None


def read_labels(path: str | Path, allowed: dict[str, int]) -> dict[int, float]:
    """Row -> label from a JSONL labels file; every id must be in ``allowed`` (id -> row: the documents
    proposed so far). Errors name the file, the line and the problem."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: labels file not found")
    out: dict[int, float] = {}
    with p.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{p} line {line_no}: not JSON ({exc.msg})") from None
            if not isinstance(rec, dict) or "id" not in rec or "label" not in rec:
                raise ValueError(f"{p} line {line_no}: needs an object with \"id\" and \"label\"")
            doc_id = str(rec["id"])
            if doc_id not in allowed:
                raise ValueError(f"{p} line {line_no}: id {doc_id!r} was not proposed for labelling (ids "
                                 "come from the proposal files of --propose-labels)")
            label = parse_label(rec["label"])
            if label is None:
                raise ValueError(f"{p} line {line_no}: label of {doc_id!r} must be 0 or 1 (or true/false, "
                                 f"or a probability in [0, 1]), got {rec['label']!r}")
            row = allowed[doc_id]
            if row in out and out[row] != label:
                raise ValueError(f"{p} line {line_no}: id {doc_id!r} labelled twice, differently "
                                 f"({out[row]:g} and {label:g})")
            out[row] = label
    return out


def _digest(values: np.ndarray) -> str:
    return hashlib.blake2b(np.round(np.asarray(values, dtype=np.float64), 9).tobytes(),
                           digest_size=12).hexdigest()


@register_selector("raft_labels")
class LabelledRaftSelector(RaftSelector):
    """RAFT on the cheap scores with an oracle's labels where they help most (module docstring)."""

    name: ClassVar[str] = "raft_labels"
    needs_text: ClassVar[bool] = True
    streaming: ClassVar[bool] = False

    def __init__(
        self,
        weights: RewardWeights | str | dict | None = None,
        toxicity_signals: list[str] | tuple[str, ...] | None = None,
        mode: str = "loop",
        label_share: float = 0.05,
        rounds: int = 4,
        label_sources: list[str] | None = None,
        oracle: str | None = None,
        labels_dir: str | None = None,
        propose_labels: int | None = None,
        labels_file: str | None = None,
    ) -> None:
        super().__init__(weights=weights, toxicity_signals=toxicity_signals)
        if self.toxicity_signals is not None:  # what curate scores when no attributes are stored
            self.signals = (*self.toxicity_signals, *(["alignment"] if self.weights.alignment else []),
                            *(["quality"] if self.weights.utility else []))
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not 0.0 < float(label_share) <= 1.0:
            raise ValueError(f"label_share must be in (0, 1], got {label_share!r}")
        if int(rounds) < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds!r}")
        if label_sources is not None and (isinstance(label_sources, str) or not label_sources):
            raise ValueError(f"label_sources must be a non-empty list of source names, got {label_sources!r}")
        if oracle not in (None, "gold"):
            raise ValueError(f"oracle must be 'gold' (the experiment's gold labels) or unset, got {oracle!r}")
        if propose_labels is not None and int(propose_labels) < 1:
            raise ValueError(f"propose_labels must be >= 1, got {propose_labels!r}")
        if (propose_labels is not None or labels_file is not None) and labels_dir is None:
            raise ValueError("propose_labels/labels_file need labels_dir (where the proposals are kept)")
        self.mode, self.label_share, self.rounds = mode, float(label_share), int(rounds)
        self.label_sources = list(label_sources) if label_sources is not None else None
        self.oracle, self.labels_dir = oracle, labels_dir
        self.propose_labels = int(propose_labels) if propose_labels is not None else None
        self.labels_file = labels_file
        # set by the caller: the real document ids of the table's rows (curate's table holds row positions)
        # and, for oracle="gold", the function answering a proposal file (experiments/labels.py)
        self.doc_ids: np.ndarray | None = None
        self.label_oracle: Oracle | None = None
        self.feedback_stats: dict[str, Any] | None = None  # the oracle's calls (the runner records them)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "mode": self.mode, "label_share": self.label_share, "rounds": self.rounds,
                "label_sources": self.label_sources, "oracle": self.oracle}

    # ---- the queries ---------------------------------------------------------------------------------------

    def _queries(self, table: pd.DataFrame, ctx: SelectionContext) -> ActiveQueries:
        from dynacure.loop.features import FeatureEncoder

        reward = composite_reward(table, self.weights, self._columns(table), self.calibrator)
        if self.weights.safety == 0:
            raise ValueError("raft_labels: the labels replace the reward's toxicity, so safety needs a "
                             "weight")
        safety_only = RewardWeights(safety=1.0, alignment=0.0, utility=0.0)
        cheap = 1.0 - reward_components(table, safety_only, self._columns(table), self.calibrator)["safety"]
        labelable = np.ones(len(table), dtype=bool)
        if self.label_sources is not None:
            check_table(table, ("source",))
            labelable = table["source"].astype(str).isin(self.label_sources).to_numpy()
        features = FeatureEncoder.fit(table, "scores").transform(table)
        return ActiveQueries(reward, cheap, features, token_counts(table), float(ctx.budget),
                             self.weights.safety, mode=self.mode, labelable=labelable, binary=True,
                             pessimistic=True,
                             seed=int(ctx.seed))

    def n_labels(self, aq: ActiveQueries) -> int:
        """The calls of the simulation: ``label_share`` of the documents that can be labelled."""
        return int(round(self.label_share * int(aq.labelable.sum())))

    def select(self, table: pd.DataFrame, ctx: SelectionContext) -> Selection:
        check_budget(ctx.budget)
        check_table(table, ("id", "n_tokens", "text"))
        if self.oracle == "gold":
            return self._simulate(table, ctx)
        if self.labels_dir is None:
            raise ValueError("raft_labels needs an oracle: a person (curate --propose-labels N, then "
                             "--labels FILE) or oracle='gold' in an experiment")
        return self._step(table, ctx, self.propose_labels, self.labels_file)

    def _simulate(self, table: pd.DataFrame, ctx: SelectionContext) -> Selection:
        """Every round through the files a person would use, the oracle answering each proposal."""
        if self.label_oracle is None or self.labels_dir is None:
            raise ValueError("raft_labels oracle='gold' needs the experiment runner (it hands in the gold "
                             "labels and a folder for the proposals)")
        labels = Path(self.labels_dir) / "labels.jsonl"
        sizes = round_sizes(self.n_labels(self._queries(table, ctx)), self.rounds)
        if self.mode == "all":
            sizes = [1]  # one proposal of every labelable document
        for k in sizes:
            try:
                self._step(table, ctx, k, str(labels) if labels.exists() else None)
            except LabelsProposed as stop:
                self.label_oracle(stop.path, labels)
            else:  # pragma: no cover - _step with a proposal size always stops
                raise RuntimeError("raft_labels: a proposal step did not stop")
        return self._step(table, ctx, None, str(labels) if labels.exists() else None)

    # ---- one step of the person's workflow -----------------------------------------------------------------

    def _ids(self, table: pd.DataFrame) -> np.ndarray:
        ids = self.doc_ids if self.doc_ids is not None else table["id"].to_numpy()
        if len(ids) != len(table):
            raise ValueError(f"raft_labels: {len(ids)} document ids for a table of {len(table)} rows")
        return np.asarray([str(v) for v in ids], dtype=object)

    def _fingerprint(self, aq: ActiveQueries, ctx: SelectionContext, ids: np.ndarray) -> dict[str, Any]:
        return {"strategy": self.name, "mode": self.mode, "budget": float(ctx.budget), "seed": int(ctx.seed),
                "n_documents": int(len(ids)),
                "ids": hashlib.blake2b("\n".join(ids).encode(), digest_size=12).hexdigest(),
                "base_scores": _digest(aq.base), "label_sources": self.label_sources}

    def _load_state(self, fingerprint: dict[str, Any]) -> dict[str, Any]:
        assert self.labels_dir is not None
        path = Path(self.labels_dir) / STATE_FILE
        if not path.exists():
            return {"format_version": STATE_VERSION, "fingerprint": fingerprint, "proposals": []}
        from dynacure.io.jsonfile import read_versioned

        state = read_versioned(path, STATE_VERSION, what="label proposals")
        if state.get("fingerprint") != fingerprint:
            old = state.get("fingerprint") or {}
            diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            raise ValueError(f"{path}: its proposals were made for another run (differs in "
                             f"{', '.join(diff)}); use the same corpus, attributes, strategy, budget and "
                             "seed, or another --out")
        return state

    def _step(self, table: pd.DataFrame, ctx: SelectionContext, propose: int | None,
              labels_file: str | None) -> Selection:
        assert self.labels_dir is not None
        folder = Path(self.labels_dir)
        aq = self._queries(table, ctx)
        ids = self._ids(table)
        state = self._load_state(self._fingerprint(aq, ctx, ids))
        row_of = {d: i for i, d in enumerate(ids)}
        rounds = [[row_of[d] for d in _proposal_ids(folder / r["file"])] for r in state["proposals"]]
        allowed = {ids[i]: i for rows in rounds for i in rows}
        labels = read_labels(labels_file, allowed) if labels_file is not None else {}
        for rows in rounds:  # replay: the same surrogate fits as when the proposals were made
            aq.n_proposals += 1
            done = [i for i in rows if i in labels]
            aq.tell(np.asarray(done, dtype=np.int64), np.asarray([labels[i] for i in done]))
        if propose is not None:
            last = rounds[-1] if rounds else None
            if last is not None and not any(i in labels for i in last):
                # resumable: the open proposal stands as written (nothing is recomputed)
                raise LabelsProposed(folder / state["proposals"][-1]["file"], len(last), len(rounds) - 1,
                                     True)
            self._propose(aq, ids, table, state, propose)
        return self._finish(table, ctx, aq, len(labels))

    def _propose(self, aq: ActiveQueries, ids: np.ndarray, table: pd.DataFrame, state: dict[str, Any],
                 k: int) -> None:
        assert self.labels_dir is not None
        folder = Path(self.labels_dir)
        r = len(state["proposals"])
        rows, why = aq.propose(None if self.mode == "all" else k)
        if len(rows) == 0:
            raise ValueError(f"{folder}: every document that can be labelled has been proposed already; "
                             "finish with --labels FILE")
        texts = table["text"].to_numpy()
        name = f"proposal-{r + 1:02d}.jsonl"
        lines = [json.dumps({"id": ids[i], "text": str(texts[i]), "why": w, "round": r + 1})
                 for i, w in zip(rows.tolist(), why, strict=True)]
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / name, "\n".join(lines) + "\n")
        state["proposals"].append({"file": name, "n": len(rows)})
        write_json_atomic(folder / STATE_FILE, state)  # after the proposal: state names only whole files
        raise LabelsProposed(folder / name, len(rows), r, False)

    def _finish(self, table: pd.DataFrame, ctx: SelectionContext, aq: ActiveQueries, n_labels: int
                ) -> Selection:
        res = aq.result()
        self.last_reward = res.score
        self.feedback_stats = {"signal": "labels", "mode": self.mode, "hidden_columns": [],
                               "n_documents": len(table), "labelable": int(aq.labelable.sum()),
                               "calls": float(n_labels), "seconds": 0.0, "flops": 0.0,
                               "share": n_labels / max(int(aq.labelable.sum()), 1), "rounds": res.rounds}
        kept = top_to_budget(res.score, token_counts(table), ctx.budget)
        return Selection(table_ids(table), kept.probability, unit_weights(len(table)), kept.keep,
                         keep_reasons(kept.keep, "top_reward"))


def _proposal_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: a proposal named in {STATE_FILE} is missing; remove the labels "
                                "folder to start the proposals again")
    out = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(str(json.loads(line)["id"]))
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ValueError(f"{path} line {line_no}: not a proposal line (edited by hand?)"
                                     ) from None
    return out
