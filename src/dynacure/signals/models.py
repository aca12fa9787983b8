"""Where our trained scorers live and how they are stored: safetensors weights + a JSON metadata file.

A model is a folder ``MODEL_DIR/<name>/`` with ``weights.safetensors`` (numpy arrays only, no pickle) and
``meta.json`` (``format_version``, ``kind``, categories, feature parameters, training data description,
seed, held-out metrics). Loading a folder written with another ``format_version`` or of another ``kind``
is refused with a message that says what was found and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from dynacure.config import HOME_ENV, dynacure_home
from dynacure.io.atomic import atomic_path, write_json_atomic
from dynacure.io.jsonfile import read_versioned

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
META_FILE = "meta.json"

# Folder names of the models train-scorer writes (the signals and the judge look them up by these names).
TOXICITY_NGRAM = "toxicity_ngram"
TOXICITY_MINILM = "toxicity_minilm"
JUDGE = "judge"
ALIGNMENT = "alignment"


class ModelMissingError(FileNotFoundError):
    """A scorer's model folder is not there; the message says how to make it."""


def model_dir() -> Path:
    """``$DYNACURE_HOME/models`` if set, else ``~/.cache/dynacure/models``."""
    return dynacure_home() / "models"


def resolve(name: str, root: str | Path | None = None) -> Path:
    return (Path(root) if root is not None else model_dir()) / name


@dataclass
class SavedModel:
    """Arrays plus metadata of one scorer, as read from or written to disk."""

    kind: str
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)


def save_model(path: str | Path, model: SavedModel) -> Path:
    """Write ``weights.safetensors`` then ``meta.json``, atomically; a folder with meta is whole."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.ascontiguousarray(v) for k, v in model.arrays.items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(arrays, str(tmp))
    meta = dict(model.meta)
    meta["format_version"] = FORMAT_VERSION
    meta["kind"] = model.kind
    write_json_atomic(folder / META_FILE, meta)
    return folder


def train_scorer_hint(folder: Path, which: str) -> str:
    """The `dynacure train-scorer` command that builds the model ``folder`` should hold, with absolute paths
    (the data folder found from here, the model root), so it works when pasted in any folder."""
    from dynacure.io.public_data import default_data_dir
    from dynacure.runinfo import command_line

    return command_line("train-scorer", "--data-dir", default_data_dir(), "--out", Path(folder).parent,
                        "--which", which)


def missing_message(folder: Path, which: str) -> str:
    return (f"{folder}: no trained {which!r} model found; run `{train_scorer_hint(folder, which)}` "
            f"(or set {HOME_ENV})")


def load_model(path: str | Path, kind: str, which: str | None = None) -> SavedModel:
    """Read a model folder and check its ``format_version`` and ``kind`` before touching the weights."""
    folder = Path(path)
    meta_path = folder / META_FILE
    if not meta_path.exists():
        raise ModelMissingError(missing_message(folder, which or kind))
    meta = read_versioned(meta_path, FORMAT_VERSION, kind=kind,
                          hint="retrain it with `dynacure train-scorer`")
    weights = folder / WEIGHTS_FILE
    if not weights.exists():
        raise ModelMissingError(f"{weights}: weights file missing next to {META_FILE}; retrain the model")
    return SavedModel(kind=kind, arrays=load_file(str(weights)), meta=meta)
