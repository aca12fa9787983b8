"""What every run writes next to its results: config, seed, package versions, host and timings.

A folder's run record is ``run.json``. When a command writes into a folder whose ``run.json`` belongs to
another command (``dynacure evaluate MODEL --out MODEL/eval.json`` writes beside ``train``'s record), its
record is ``run.<command>.json`` instead (``run.evaluate.json``, ``run.pool-build.json``), so no command
clobbers another's; ``find_run_info`` finds a command's record under either name.

Paths that travel (issue 28, item 7): an input path a record keeps (``paths=`` of ``write_run_info``) is
stored absolute in ``config`` and, in ``relative_paths``, relative to the output folder. ``stored_path``
resolves it relative to the folder first (the folder moved together with its inputs), then absolute (the
folder alone moved), so a folder can be read from any working folder; when neither exists the error names
both and the option that overrides the stored path (``--corpus``).

A CLI run also stores its ``request`` (the options that define its output, ``add_request``): how
``cli.paths.claim_out_dir`` tells a re-run of the same run, which may resume or replace it, from another
run, which may not without ``--overwrite``. ``command_line`` writes the commands that hints suggest with
absolute paths, so that a suggestion works when pasted in any folder (item 4).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import random
import shlex
import sys
import time
from collections.abc import Iterable
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


def absolute(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute against the working folder, ``..`` folded, links kept (what a user typed,
    only made independent of where the command ran)."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def portable_paths(config: dict[str, Any], out_dir: str | Path, keys: Iterable[str]
                   ) -> tuple[dict[str, Any], dict[str, str]]:
    """(``config`` with the path values under ``keys`` made absolute, {key: path relative to
    ``out_dir``}); keys absent or None are left alone."""
    out = absolute(out_dir)
    config = dict(config)
    relative: dict[str, str] = {}
    for key in keys:
        value = config.get(key)
        if not isinstance(value, str | os.PathLike) or os.fspath(value) == "":
            continue
        path = absolute(value)
        config[key] = str(path)
        relative[key] = os.path.relpath(path, out)
    return config, relative


def write_run_info(out_dir: str | Path, command: str, config: dict[str, Any], seed: int | None,
                   extra: dict[str, Any] | None = None, paths: Iterable[str] = ()) -> Path:
    """Write ``command``'s run record in ``out_dir`` (atomically; see ``run_info_path`` for its name).

    ``paths``: the config keys that hold input paths; stored absolute and relative to ``out_dir``
    (module docstring), so the folder can be read from anywhere and moved."""
    config, relative = portable_paths(config, out_dir, paths)
    info = {
        "command": command,
        "config": config,
        "seed": seed,
        "versions": versions(),
        "host": {"cpus": os.cpu_count()},
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if relative:
        info["relative_paths"] = relative
    if extra:
        info.update(extra)
    path = run_info_path(out_dir, command)
    write_json_atomic(path, info)
    return path


def read_run_records(out_dir: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every readable run record in ``out_dir`` (``run.json``, ``run.<command>.json``), sorted by name."""
    folder = Path(out_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if not (is_run_record_name(path.name) and path.is_file()):
            continue
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # not a record this version can read; nothing to protect or resolve from it
        if isinstance(info, dict) and isinstance(info.get("command"), str):
            found.append((path, info))
    return found


def add_request(out_dir: str | Path, command: str, request: dict[str, Any]) -> Path | None:
    """Store ``request`` in ``command``'s record in ``out_dir`` (written by the run just finished); None
    when the run wrote no record there."""
    for path in (Path(out_dir) / RUN_FILE, Path(out_dir) / command_run_file(command)):
        if path.is_file() and _record_command(path) == command:
            info = json.loads(path.read_text(encoding="utf-8"))
            info["request"] = request
            write_json_atomic(path, info)
            return path
    return None


def stored_path(record: dict[str, Any], key: str, folder: str | Path, option: str) -> Path:
    """The input path ``key`` of a run record read in ``folder``: relative to the folder first, then the
    absolute path (a record of an older version: the path as stored, relative to the working folder).

    Raises ``FileNotFoundError`` naming the paths tried and ``option``, which overrides the stored path."""
    value = record.get("config", {}).get(key)
    if not isinstance(value, str) or not value:
        raise FileNotFoundError(f"{folder}: its {record.get('command', 'run')} record stores no {key}; "
                                f"pass {option}")
    tried: list[Path] = []
    relative = record.get("relative_paths", {}).get(key)
    if isinstance(relative, str):
        tried.append(absolute(Path(folder) / relative))
    tried.append(Path(value) if Path(value).is_absolute() else absolute(value))
    for path in tried:
        if path.exists():
            return path
    names = list(dict.fromkeys(str(p) for p in tried))
    where = f"neither {' nor '.join(names)} exists" if len(names) > 1 else f"{names[0]} does not exist"
    raise FileNotFoundError(f"{folder}: the {key} its {record.get('command', 'run')} run read is not found "
                            f"({where}); pass {option} PATH")


def command_line(*words: str | os.PathLike[str]) -> str:
    """A ``dynacure ...`` command to suggest, pasteable in any folder: ``Path`` words are made absolute,
    every word is shell-quoted where needed."""
    parts = ["dynacure"]
    for word in words:
        parts.append(str(absolute(word)) if isinstance(word, os.PathLike) else str(word))
    return shlex.join(parts)
