"""``hf_classifier``: score with any local Hugging Face sequence-classification folder the user trusts.

A corpus builder often has a classifier of their own (toxicity, quality, a house policy) saved as a
Hugging Face folder (``config.json``, safetensors weights, tokenizer files). This signal loads it with
``AutoTokenizer`` + ``AutoModelForSequenceClassification`` from that folder only (``local_files_only``,
safetensors only: nothing is downloaded, nothing is unpickled) and emits:

- ``label_<label>``: the probability of each label of ``config.id2label`` (softmax over the labels, or a
  sigmoid per label when ``config.problem_type`` is ``multi_label_classification`` or the model has a
  single logit); ``<label>`` is lower-cased with every run of other characters than ``a-z0-9`` made ``_``;
- ``toxicity``: the combined probability of the unsafe labels, the column that plays the toxicity role
  (the composite reward's safety term, the ``classifier`` strategy, the loop's safety axis and probes),
  like ``toxicity_ngram__toxicity``. Single-label models: the sum of the unsafe labels' probabilities
  (they exclude each other); multi-label models: their maximum (toxic in any one category counts, as the
  strategies do with several categories).

Which labels are unsafe: ``unsafe_labels`` (comma-separated or a JSON list of label names), else every
label matching ``DEFAULT_UNSAFE`` (toxic, unsafe, hate, offensive, insult, threat, obscene, abusive,
harmful; a label starting with ``non``/``not``/``no_`` never matches), else ``LABEL_1`` of a binary model
whose labels are the default ``LABEL_0``/``LABEL_1`` (or the one label of a single-logit model); anything
else is an error naming the labels.

Arguments (``--signal-arg hf_classifier.KEY=VALUE``): ``model`` (the folder, required), ``unsafe_labels``,
``batch_size`` (texts per forward pass, 32), ``max_length`` (tokens per text, 512 capped by the model's
positions), ``device`` (``auto``: cuda when available, else cpu). ``params()`` carries a digest of the
folder's files, so a resumed scoring run notices a changed model. Module imports stay light: torch and
transformers load when a signal is built.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dynacure.io.digest import folder_digest
from dynacure.signals.base import Resources, Signal, register_signal

HF_CLASSIFIER = "hf_classifier"
KIND = "hf_sequence_classification"
TOXICITY_COLUMN = "toxicity"  # the column of the combined unsafe probability (the toxicity role)
LABEL_PREFIX = "label_"
# Labels counted as unsafe when ``unsafe_labels`` is not given (searched anywhere in the lower-cased label).
DEFAULT_UNSAFE = re.compile(r"toxic|unsafe|hate|offensive|insult|threat|obscene|abusive|harmful")
# "non-toxic", "not_offensive", "no hate": negations of an unsafe word are the safe class.
_NEGATED = re.compile(r"^(non|not)[-_ ]?|^no[-_ ]")
# How a user gives the arguments (named in errors); the judge passes its own (``--judge``).
MODEL_ARG = f"--signal-arg {HF_CLASSIFIER}.model"
UNSAFE_ARG = f"--signal-arg {HF_CLASSIFIER}.unsafe_labels"
CHARS_PER_TOKEN = 32  # texts are cut to max_length * this many characters before tokenizing


def label_column(label: str) -> str:
    """The column of one label: ``label_`` + the label lower-cased, other characters runs made ``_``."""
    return LABEL_PREFIX + (re.sub(r"[^a-z0-9]+", "_", str(label).lower()).strip("_") or "empty")


def default_unsafe(labels: Sequence[str]) -> list[str]:
    """The labels counted as unsafe when the user names none (see the module docstring)."""
    found = [lb for lb in labels if not _NEGATED.match(lb.lower()) and DEFAULT_UNSAFE.search(lb.lower())]
    if not found and len(labels) == 1:  # a single logit: its one label is the positive class
        found = list(labels)
    if not found and len(labels) == 2 and sorted(labels) == ["LABEL_0", "LABEL_1"]:
        found = ["LABEL_1"]  # an unnamed binary head: by convention label 1 is the positive (unsafe) class
    return found


def parse_unsafe(value: str | Sequence[str] | None, labels: Sequence[str], folder: Path,
                 arg: str = UNSAFE_ARG) -> list[str]:
    """The unsafe labels from the ``unsafe_labels`` argument (exact names, else case-insensitive); ``arg``
    is how the user gives it (named in the errors)."""
    if value is None or value == "":
        found = default_unsafe(labels)
        if not found:
            raise ValueError(f"{folder}: cannot tell which of the labels {list(labels)} are unsafe; give "
                             f"them with {arg}=LABEL[,LABEL...]")
        return found
    names = [s.strip() for s in value.split(",")] if isinstance(value, str) else [str(s) for s in value]
    out = []
    for name in (n for n in names if n):
        match = name if name in labels else next((lb for lb in labels if lb.lower() == name.lower()), None)
        if match is None:
            raise ValueError(f"{arg}: {name!r} is not a label of the model in {folder}; its labels are "
                             f"{list(labels)}")
        out.append(match)
    if not out:
        raise ValueError(f"{arg} is empty; name at least one of {list(labels)}")
    return list(dict.fromkeys(out))


def pick_device(device: str | None) -> str:
    """``auto``/None: cuda when torch sees a GPU, else cpu; anything else as given."""
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{HF_CLASSIFIER}: device {device!r} asked for, but torch sees no GPU here "
                         "(use device=auto or cpu)")
    return str(device)


def check_folder(model: str | Path | None, arg: str = MODEL_ARG) -> Path:
    """The model folder, or an error naming the argument that should give it."""
    if model is None or str(model).strip() == "":
        raise ValueError(f"{HF_CLASSIFIER} needs a local Hugging Face model folder: {arg}=DIR")
    folder = Path(str(model)).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{arg}={model}: no such folder (a local Hugging Face sequence-"
                                "classification folder: config.json, safetensors weights, tokenizer)")
    if not (folder / "config.json").is_file():
        raise ValueError(f"{arg}={model}: not a Hugging Face model folder (no config.json)")
    return folder


def _load(folder: Path) -> tuple[Any, Any]:
    """Model and tokenizer from the folder alone (safetensors weights), a pad token ensured."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    # transformers draws a "Loading weights" bar per load: one per scoring worker is noise, not progress
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(folder), local_files_only=True,
                                                                   use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{folder}: cannot load a sequence-classification model and tokenizer "
                         f"(safetensors weights only): {first}") from None
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        # GPT-style classifiers ship no pad token; batches need one (the model reads the last real token)
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.pad_token is None:
        raise ValueError(f"{folder}: the tokenizer has neither a pad nor an EOS token to pad batches with")
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


class HFClassifier:
    """A loaded sequence-classification model: per-label probabilities and the combined unsafe one."""

    def __init__(self, model: str | Path | None, unsafe_labels: str | Sequence[str] | None = None,
                 batch_size: int = 32, max_length: int = 512, device: str | None = "auto",
                 args: tuple[str, str] = (MODEL_ARG, UNSAFE_ARG)) -> None:
        """``args``: how the caller's user names the model folder and the unsafe labels (for errors)."""
        self.folder = check_folder(model, args[0])
        if int(batch_size) < 1 or int(max_length) < 2:
            raise ValueError(f"{HF_CLASSIFIER}: batch_size must be >= 1 and max_length >= 2, got "
                             f"{batch_size} and {max_length}")
        self.device = pick_device(device)  # a GPU asked for and absent: said before any loading
        self.model, self.tokenizer = _load(self.folder)
        cfg = self.model.config
        n = int(cfg.num_labels)
        id2label = {int(k): str(v) for k, v in (cfg.id2label or {}).items()}
        self.labels = [id2label.get(i, f"LABEL_{i}") for i in range(n)]
        self.columns = [label_column(lb) for lb in self.labels]
        if len(set(self.columns)) != n:  # two labels that differ only in case or punctuation
            self.columns = [f"{c}_{i}" for i, c in enumerate(self.columns)]
        self.multi_label = cfg.problem_type == "multi_label_classification" or n == 1
        self.unsafe = parse_unsafe(unsafe_labels, self.labels, self.folder, args[1])
        self._unsafe_idx = [self.labels.index(lb) for lb in self.unsafe]
        positions = getattr(cfg, "max_position_embeddings", None) or max_length
        # RoBERTa-style position ids start after the padding index: 514 positions hold 512 tokens.
        limit = min(int(positions) - (2 if getattr(cfg, "model_type", "") in ("roberta", "xlm-roberta")
                                      else 0), int(getattr(self.tokenizer, "model_max_length", positions)))
        self.max_length = max(2, min(int(max_length), limit))
        self.batch_size = int(batch_size)
        self.model.to(self.device).eval()
        self.digest = folder_digest(self.folder)

    def _logits(self, texts: list[str]) -> np.ndarray:
        import torch

        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if not texts:
            return out
        # Only a prefix is tokenized: a token covers at least one character, so the cut changes nothing
        # unless that prefix is mostly whitespace, and a huge document costs no huge tokenizing.
        cut = [(t if isinstance(t, str) else "")[: self.max_length * CHARS_PER_TOKEN] for t in texts]
        ids = self.tokenizer(cut, truncation=True, max_length=self.max_length)["input_ids"]
        lengths = [len(s) for s in ids]
        order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start: start + self.batch_size]
                enc = self.tokenizer([cut[i] for i in idx], truncation=True, max_length=self.max_length,
                                     padding=True, return_tensors="pt").to(self.device)
                out[idx] = self.model(**enc).logits.float().cpu().numpy()
        return out

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """[n, labels] probabilities: softmax over the labels, or a sigmoid per label (multi-label)."""
        z = self._logits(list(texts)).astype(np.float64)
        if self.multi_label:
            p = 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
        else:
            e = np.exp(z - z.max(axis=1, keepdims=True)) if len(z) else z
            p = e / e.sum(axis=1, keepdims=True) if len(z) else z
        return p.astype(np.float32)

    def unsafe_probability(self, proba: np.ndarray) -> np.ndarray:
        """The combined unsafe probability from ``predict_proba`` output (sum, or max when multi-label)."""
        part = proba[:, self._unsafe_idx].astype(np.float64)
        combined = part.max(axis=1) if self.multi_label else part.sum(axis=1)
        return np.clip(combined, 0.0, 1.0).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        """What identifies the model and how it is read (params of the signal, provenance of a judge)."""
        return {"kind": KIND, "model": str(self.folder.resolve()), "digest": self.digest,
                "labels": list(self.labels), "unsafe_labels": list(self.unsafe),
                "multi_label": bool(self.multi_label), "max_length": self.max_length}


@register_signal(HF_CLASSIFIER)
class HFClassifierSignal(Signal):
    """P(label) per label of a local Hugging Face classifier, and the combined unsafe probability."""

    name = HF_CLASSIFIER
    columns = (TOXICITY_COLUMN,)  # the label columns are known once the folder is read
    # The column that plays the toxicity role (selectors.common reads this declaration): the label
    # columns may hold safe classes, whose probability must never count as toxicity.
    toxicity_role = (TOXICITY_COLUMN,)
    resources = Resources(cpus=1.0, gpus=0.0, batch_size=256)

    def __init__(self, model: str | Path | None = None, unsafe_labels: str | Sequence[str] | None = None,
                 batch_size: int = 32, max_length: int = 512, device: str | None = "auto") -> None:
        self.model = HFClassifier(model, unsafe_labels, batch_size, max_length, device)
        self.columns = (TOXICITY_COLUMN, *self.model.columns)  # type: ignore[misc]

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        p = self.model.predict_proba(list(texts))
        out = {TOXICITY_COLUMN: self.model.unsafe_probability(p)}
        out.update({c: p[:, i] for i, c in enumerate(self.model.columns)})
        return out

    def params(self) -> dict[str, Any]:
        return self.model.describe()
