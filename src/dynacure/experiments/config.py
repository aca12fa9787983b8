"""The experiment config: what to compare (strategies x seeds x budgets x reward weights) on which corpus,
with which learner and which evaluation suites. Loaded from TOML and checked before any work starts.

A config names everything a results table needs to be reproduced; presets ship as package data
(``dynacure/experiments/presets/<name>.toml``) and are loaded with :func:`load_preset`.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from dynacure.config import ConfigError, StrictModel, load_toml, validate_config
from dynacure.selectors.reward import RewardWeights

FORMAT_VERSION = 1



def known_strategies() -> list[str]:
    """Strategy names the selector registry knows, the loop's policies included."""
    from dynacure.pipeline.strategies import available_selectors

    return available_selectors()


def uses_reward(name: str) -> bool:
    """Whether strategy ``name`` reads the composite reward (its ``uses_reward`` trait), so that the weight
    axis applies to it; an unknown name counts as reading it (``check_strategies`` refuses it by name)."""
    from dynacure.pipeline.strategies import selector_class

    try:
        return selector_class(name).uses_reward
    except KeyError:
        return True


class DemoCorpusConfig(StrictModel):
    """Parameters of the built-in generated corpus (``dynacure.io.demo_corpus``)."""

    n_docs: int = Field(2000, ge=20, le=2_000_000)
    toxic_share: float = Field(0.1, ge=0.0, le=1.0)
    low_quality_share: float = Field(0.2, ge=0.0, le=1.0)
    seed: int = 0


class CorpusConfig(StrictModel):
    """Where the raw documents come from: a file/folder, the generated demo corpus, or the public pool."""

    kind: Literal["path", "demo", "pool"] = "demo"
    path: Path | None = None  # kind = "path": a corpus file or folder readable by dynacure.io.readers
    demo: DemoCorpusConfig = DemoCorpusConfig()
    data_dir: Path | None = None  # kind = "pool": the public datasets folder (default: ../shared/data)
    max_docs: int | None = Field(None, ge=10)  # keep a stable subsample of this many documents

    @model_validator(mode="after")
    def _path_needed(self) -> CorpusConfig:
        if self.kind == "path" and self.path is None:
            raise ValueError("corpus.kind = 'path' needs corpus.path (a corpus file or folder)")
        return self


class ScoringConfig(StrictModel):
    """The signals scored once per experiment into RUNS/attributes."""

    signals: list[str] = Field(
        default_factory=lambda: ["profanity", "quality", "toxicity_ngram", "alignment"], min_length=1
    )
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)  # per-signal constructor arguments
    # Train the reward scorer and the judge on disjoint generated data (needs no ../shared/data).
    demo_models: bool = False
    batch_size: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _params_for_known(self) -> ScoringConfig:
        extra = sorted(set(self.params) - set(self.signals))
        if extra:
            raise ValueError(f"scoring.params names signals that are not in scoring.signals: {extra}")
        return self


class StrategyConfig(StrictModel):
    """One selection strategy: its registry name, a label for tables (default: the name) and its params."""

    name: str
    label: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    # PII redacted from the kept documents' text before training, as ``dynacure curate --redact-pii``
    redact_pii: bool = False

    @property
    def key(self) -> str:
        return self.label or self.name


class WeightSet(RewardWeights):
    """A named set of the composite reward's weights ``w_s*safety + w_a*alignment + w_u*utility``: the
    selector layer's ``RewardWeights`` (same checks) with the name results tables show."""

    name: str = "default"

    def _what(self) -> str:
        return f"reward weights of set {self.name!r}"

    def reward_weights(self) -> RewardWeights:
        return RewardWeights(**self.as_dict())


class LearnerConfig(StrictModel):
    """The model every cell trains on its curated data, at the same number of tokens."""

    preset: str = "nano"  # a TinyGPT preset name
    # "scratch": every cell trains a fresh TinyGPT of `preset` on its data (tokenizer from the pool);
    # "pretrained": every cell fine-tunes the base pre-trained by `dynacure pretrain` (preset `preset`,
    # BaseConfig fields in `base_options`) and uses its tokenizer
    base: Literal["scratch", "pretrained"] = "scratch"
    base_options: dict[str, Any] = Field(default_factory=dict)
    hf_path: Path | None = None  # a local Hugging Face causal LM folder (overrides preset)
    max_tokens: int = Field(20_000, ge=100)  # training budget in learner tokens, equal for every cell
    device: str = "cpu"
    batch_size: int | None = Field(None, ge=1)  # default: the preset's
    lr: float | None = Field(None, gt=0.0)
    # default: the preset's for a scratch learner, FINETUNE_WARMUP steps when fine-tuning the base
    warmup_steps: int | None = Field(None, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)  # passed to the training function
    # false: a curation-only experiment (composition, audit and selection cost of every strategy); no
    # learner is trained and the evaluation suites are not run
    train: bool = True

    @model_validator(mode="after")
    def _base_options(self) -> LearnerConfig:
        if self.base_options and self.base != "pretrained":
            raise ValueError("learner.base_options is set but learner.base is not \"pretrained\"")
        if self.base == "pretrained":
            from dynacure.learners.pretrain import BaseConfig

            if self.hf_path is not None:
                raise ValueError("learner.base = \"pretrained\" is the TinyGPT base; it cannot be combined "
                                 "with learner.hf_path (a Hugging Face model is already pre-trained)")
            BaseConfig.model_validate({"preset": self.preset, **self.base_options})
        return self

    def base_config(self) -> Any:
        """The BaseConfig of the pre-trained base this learner fine-tunes."""
        from dynacure.learners.pretrain import BaseConfig

        return BaseConfig.model_validate({"preset": self.preset, **self.base_options})

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v != "cpu" and not v.startswith("cuda") and v != "mps":
            raise ValueError(f"learner.device must be 'cpu', 'cuda', 'cuda:N' or 'mps', not {v!r}")
        return v


class EvaluationConfig(StrictModel):
    """Which suites to run on every trained learner, and how much of each."""

    suites: list[str] = Field(default_factory=lambda: ["toxicity", "perplexity"], min_length=1)
    max_prompts: int | None = Field(50, ge=1)
    samples: int = Field(25, ge=1)  # continuations per toxicity prompt
    max_new_tokens: int = Field(20, ge=1)
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)  # per-suite extra options
    # A local Hugging Face sequence-classification folder as the toxicity judge (``dynacure evaluate
    # --judge``); None: the trained judge. ``judge_unsafe_labels``: its unsafe labels (default: those
    # ``dynacure.signals.hf_classifier`` picks).
    judge: str | None = None
    judge_unsafe_labels: list[str] | None = None

    @model_validator(mode="after")
    def _options_for_known(self) -> EvaluationConfig:
        extra = sorted(set(self.options) - set(self.suites))
        if extra:
            raise ValueError(f"evaluation.options names suites that are not in evaluation.suites: {extra}")
        if self.judge_unsafe_labels is not None and self.judge is None:
            raise ValueError("evaluation.judge_unsafe_labels is set but evaluation.judge (the folder) is not")
        return self


class ExperimentConfig(StrictModel):
    """The comparison grid and everything shared by its cells."""

    format_version: int = FORMAT_VERSION
    name: str = "experiment"
    corpus: CorpusConfig = CorpusConfig()
    scoring: ScoringConfig = ScoringConfig()
    strategies: list[StrategyConfig] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    budgets: list[float] = Field(default_factory=lambda: [0.5], min_length=1)
    weights: list[WeightSet] = Field(default_factory=lambda: [WeightSet()], min_length=1)
    learner: LearnerConfig = LearnerConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    # Cells run in parallel processes; "auto" sizes the pool by cores (1 on a 2-core machine).
    workers: int | Literal["auto"] = "auto"
    # Clean target texts for DSIR / CoLoR / ICA / the loop's probes: how many to draw.
    target_size: int = Field(200, ge=1)

    @field_validator("format_version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v != FORMAT_VERSION:
            raise ValueError(
                f"format_version {v} is not supported by this dynacure (expects {FORMAT_VERSION})"
            )
        return v

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, v: list[float]) -> list[float]:
        bad = [b for b in v if not (0.0 < b <= 1.0)]
        if bad:
            raise ValueError(f"every budget is a share of the pool's tokens in (0, 1]; bad: {bad}")
        if len(set(v)) != len(v):
            raise ValueError(f"budgets repeat: {v}")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds repeat: {v}")
        if any(s < 0 for s in v):
            raise ValueError(f"seeds must be >= 0: {v}")
        return v

    @field_validator("workers")
    @classmethod
    def _workers(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError("workers must be >= 1 or 'auto'")
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> ExperimentConfig:
        keys = [s.key for s in self.strategies]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"strategy labels repeat: {dup} (give each variant its own 'label')")
        # A reward component with weight > 0 reads its signal's columns: refuse now, not mid-experiment.
        needs = {"alignment": "alignment", "utility": "quality"}
        reads_reward = any(uses_reward(st.name) for st in self.strategies)
        for ws in self.weights if reads_reward else []:
            for comp, signal in needs.items():
                if getattr(ws, comp) > 0 and signal not in self.scoring.signals:
                    raise ValueError(
                        f"reward weight set {ws.name!r} has {comp}={getattr(ws, comp)} but signal "
                        f"{signal!r} is not in scoring.signals"
                    )
        names = [w.name for w in self.weights]
        dupw = sorted({k for k in names if names.count(k) > 1})
        if dupw:
            raise ValueError(f"reward weight set names repeat: {dupw}")
        self._judge_is_not_a_scorer()
        return self

    def _judge_is_not_a_scorer(self) -> None:
        """A model curated by a scorer must not be graded by the same model (Goodhart): refuse a judge
        folder that is also the ``hf_classifier`` scoring folder."""
        scorer = self.scoring.params.get("hf_classifier", {}).get("model")
        if self.evaluation.judge is None or scorer is None or "hf_classifier" not in self.scoring.signals:
            return
        if Path(str(scorer)).expanduser().resolve() == Path(self.evaluation.judge).expanduser().resolve():
            raise ValueError(f"evaluation.judge {self.evaluation.judge!r} is the folder the corpus is scored "
                             "with (scoring.params.hf_classifier.model); the judge must be another model")

    def resolved_workers(self, n_cells: int) -> int:
        return resolve_workers(self.workers, n_cells)


def resolve_workers(workers: int | str, n_cells: int) -> int:
    """Size of the process pool: explicit, or one process per two cores (each keeps two torch threads);
    a 2-core machine gets 1."""
    if isinstance(workers, int):
        return max(1, min(workers, n_cells))
    cores = os.cpu_count() or 1
    return max(1, min(cores // 2 if cores > 2 else 1, n_cells))


def check_strategies(cfg: ExperimentConfig, origin: str = "<config>") -> None:
    """Refuse unknown strategy names before any work, listing what exists."""
    known = known_strategies()
    unknown = [(i, s.name) for i, s in enumerate(cfg.strategies) if s.name not in known]
    if unknown:
        where = ", ".join(f"strategies.{i}.name = {n!r}" for i, n in unknown)
        raise ConfigError(f"{origin}: unknown strategy: {where}; known strategies: {', '.join(known)}")


def load_experiment_config(path: str | Path) -> ExperimentConfig:
    cfg = load_toml(path, ExperimentConfig)
    check_strategies(cfg, origin=str(path))
    return cfg


def experiment_config_from_dict(data: dict[str, Any], origin: str = "<config>") -> ExperimentConfig:
    cfg = validate_config(data, ExperimentConfig, origin=origin)
    check_strategies(cfg, origin=origin)
    return cfg


def preset_names() -> list[str]:
    root = resources.files("dynacure.experiments") / "presets"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def preset_path(name: str) -> Path:
    root = resources.files("dynacure.experiments") / "presets"
    p = root / f"{name}.toml"
    if not p.is_file():
        raise ConfigError(f"unknown preset {name!r}; presets shipped: {', '.join(preset_names())}")
    return Path(str(p))


def load_preset(name: str) -> ExperimentConfig:
    return load_experiment_config(preset_path(name))
