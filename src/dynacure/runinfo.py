"""What every run writes next to its results: config, seed, package versions, host and timings.

A folder's run record is ``run.json``. When a command writes into a folder whose ``run.json`` belongs to
another command (``dynacure evaluate MODEL --out MODEL/eval.json`` writes beside ``train``'s record), its
record is ``run.<command>.json`` instead (``run.evaluate.json``, ``run.pool-build.json``), so no command
clobbers another's; ``find_run_info`` finds a command's record under either name.
"""

from __future__ import annotations

import importlib.metadata
import json
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


RUN_FILE = "run.json"


def command_run_file(command: str) -> str:
    """The command-keyed record name: ``run.<command>.json`` (spaces as dashes: ``run.pool-build.json``)."""
    return f"run.{'-'.join(command.split())}.json"


def is_run_record_name(name: str) -> bool:
    """True for ``run.json`` and ``run.<command>.json``: names reserved for run records."""
    return name == RUN_FILE or (name.startswith("run.") and name.endswith(".json") and len(name) > 9)


def _record_command(path: Path) -> str | None:
    """The ``command`` of the record at ``path``; None when absent or unreadable."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return info.get("command") if isinstance(info, dict) else None


def run_info_path(out_dir: str | Path, command: str) -> Path:
    """Where ``command``'s record goes in ``out_dir``: ``run.json`` when that is free or already this
    command's, else ``run.<command>.json`` (a foreign or unreadable ``run.json`` is never overwritten)."""
    base = Path(out_dir) / RUN_FILE
    if not base.exists() or _record_command(base) == command:
        return base
    return Path(out_dir) / command_run_file(command)


def find_run_info(out_dir: str | Path, command: str) -> dict[str, Any] | None:
    """``command``'s run record in ``out_dir`` (under either name), or None."""
    folder = Path(out_dir)
    for path in (folder / RUN_FILE, folder / command_run_file(command)):
        if path.is_file() and _record_command(path) == command:
            return json.loads(path.read_text(encoding="utf-8"))
    return None


def write_run_info(out_dir: str | Path, command: str, config: dict[str, Any], seed: int | None,
                   extra: dict[str, Any] | None = None) -> Path:
    """Write ``command``'s run record in ``out_dir`` (atomically; see ``run_info_path`` for its name)."""
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
    path = run_info_path(out_dir, command)
    write_json_atomic(path, info)
    return path
