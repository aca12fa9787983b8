"""What every run writes next to its results: config, seed, package versions, host and timings."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from dynacure.io.atomic import write_json_atomic

_PACKAGES = ("dynacure", "torch", "numpy", "pandas", "pyarrow", "scikit-learn", "tokenizers", "transformers",
             "alt-profanity-check", "gymnasium", "ray")


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; returns a NumPy generator for code that takes one explicitly."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # torch is a hard dependency, but io-only tools should not need it loaded
        pass
    return np.random.default_rng(seed)


def write_run_info(out_dir: str | Path, command: str, config: dict[str, Any], seed: int | None,
                   extra: dict[str, Any] | None = None) -> Path:
    """Write ``run.json`` in ``out_dir`` (atomically)."""
    info = {
        "command": command,
        "config": config,
        "seed": seed,
        "versions": versions(),
        "host": {"cpus": os.cpu_count()},
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if extra:
        info.update(extra)
    path = Path(out_dir) / "run.json"
    write_json_atomic(path, info)
    return path
