"""Output paths of the commands, checked before any work: a bad ``--out`` costs one line, not a traceback.

Every command that writes calls ``check_out_path(out, kind)`` first. ``kind="dir"``: the command writes a
folder (created with its parents, like ``mkdir -p``); ``kind="file"``: it writes one file (its parent
folders are created). Refused, with a ``ValueError`` that names the path and the problem (the CLI prints
it as one ``error:`` line, exit 2), before anything is created:

- a file where a folder is expected, or a folder where a file is expected;
- a parent that is a file (``out/x`` where ``out`` is a file): the folders cannot be created;
- a location where nothing can be created: the nearest existing folder is probed by creating and at once
  removing a temporary file in it. ``os.access`` is not enough: as root it says "writable" for a
  ``chmod 555`` folder (where root can write, so the command would succeed) and for ``/sys`` or ``/proc``
  (where nothing can be created, even by root, so the command would fail after its work).

The probe leaves nothing behind; no folder is created here.

Nothing overwritten without a word (issue 28, item 2): a command that writes an output folder calls
``claim_out_dir(out, command, request, overwrite=...)`` instead. ``request`` holds the options that define
its output (input paths made absolute). The folder's run records (``runinfo``) say which finished runs it
holds; a record of another command, or of the same command with another request, is another run's
finished output and is refused, naming the folder, that run and ``--overwrite``. The same request is the
same run: its re-run resumes (or redoes) it. With ``--overwrite`` the other run's records are removed
before the work, so an interrupted replacement is not taken for the old run; the command's own writing
replaces the rest. ``OutClaim.finish()`` stores the request in the new run's record. Records of commands
that write one file beside a folder's run (``evaluate``, ``audit``, ``report``) do not claim the folder.
A record of an older version has no request: its ``config`` is compared on the keys both have. A RUNS
folder is recognised by its ``experiment.json``; between ``experiment`` and ``demo`` the runner's own
config check decides (``cli.experiment.open_runs``, where ``--overwrite`` empties RUNS).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dynacure.runinfo import absolute, add_request, read_run_records

OutKind = Literal["dir", "file"]
# Commands whose record sits beside another run's output by design (one file written into its folder).
BESIDE_COMMANDS = frozenset({"evaluate", "audit", "report"})
OVERWRITE_HELP = "Replace another run's finished output in --out (refused otherwise)."
# `dynacure demo` runs an experiment: both write RUNS/experiment.json, whose config the runner checks.
EXPERIMENT_COMMANDS = frozenset({"experiment", "demo"})
EXPERIMENT_FILE = "experiment.json"


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (``lexists``: a dangling link counts as existing)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or ".")


def _cannot_create_in(folder: Path) -> str | None:
    """Why no file can be created in ``folder`` (None when one can): a real create-and-remove probe."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".dynacure-write-probe-", dir=folder)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    os.close(fd)
    os.unlink(tmp)
    return None


def check_out_path(path: str | os.PathLike[str], kind: OutKind, *, option: str = "--out") -> Path:
    """Refuse an output path that cannot be written as ``kind``; returns it as a ``Path``."""
    if kind not in ("dir", "file"):
        raise ValueError(f"check_out_path: kind must be 'dir' or 'file', not {kind!r}")
    p = Path(path)
    if str(p) == "":
        raise ValueError(f"{option}: empty path")
    if kind == "dir" and p.exists() and not p.is_dir():
        raise ValueError(f"{p}: {option} must be a folder, but a file exists there")
    if kind == "file" and p.is_dir():
        raise ValueError(f"{p}: {option} must be a file, but a folder exists there")
    # The folder that will receive new entries: the output folder itself, or the file's folder.
    folder = p if kind == "dir" else p.parent
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise ValueError(f"{p}: cannot create {option}: {existing} is a file, not a folder")
    reason = _cannot_create_in(existing)
    if reason is not None:
        raise ValueError(f"{p}: cannot write {option} there: {existing} is not writable ({reason})")
    return p


def make_request(paths: dict[str, str | os.PathLike[str] | None] | None = None, **options: Any
                 ) -> dict[str, Any]:
    """A run's request: ``options`` as JSON values, the input ``paths`` absolute (a path typed relative
    to another working folder is the same input), and which keys are paths (``_paths``)."""
    # in the command's order, inputs first: a refusal describes the run the way it was typed
    request: dict[str, Any] = {key: str(absolute(value)) if value is not None else None
                               for key, value in (paths or {}).items()}
    request.update(json.loads(json.dumps(options, default=str)))
    request["_paths"] = sorted(paths or {})
    return request


def _same(key: str, old: Any, new: Any, path_keys: set[str]) -> bool:
    if key in path_keys and isinstance(old, str) and isinstance(new, str):
        return str(absolute(old)) == new  # an older record's relative path, read from here
    return bool(old == new)


def _comparable(old: Any, new: Any) -> bool:
    """Both plain values of one kind (numbers count as one kind; a bool is not a number here)."""
    def kind(v: Any) -> str:
        if isinstance(v, bool):
            return "bool"
        return "number" if isinstance(v, int | float) else "str" if isinstance(v, str) else "other"

    return kind(old) == kind(new) != "other"


def request_changes(record: dict[str, Any], request: dict[str, Any]) -> list[str]:
    """``key old -> new`` for each option in which ``request`` differs from the run of ``record``."""
    path_keys = set(request.get("_paths", []))
    old = record.get("request")
    if not isinstance(old, dict):
        # An older version's record: compare its config on the keys both have where both hold a plain
        # value of one kind; a config may record an option otherwise (curate's full strategy params for
        # the --param given, parsed weights for the string), and that must not refuse the same run.
        config = record.get("config", {}) if isinstance(record.get("config"), dict) else {}
        old = {k: v for k, v in config.items() if k in request and _comparable(v, request[k])}
        keys = sorted(old)
    else:
        keys = sorted((set(old) | set(request)) - {"_paths"})
    return [f"{k} {old.get(k)!r} -> {request.get(k)!r}" for k in keys
            if not _same(k, old.get(k), request.get(k), path_keys)]


def describe_run(record: dict[str, Any], limit: int = 5) -> str:
    """``dynacure CMD`` and its first options (from the request, else the config), for a message."""
    opts = record.get("request")
    if not isinstance(opts, dict):
        opts = record.get("config", {}) if isinstance(record.get("config"), dict) else {}
    shown = [f"{k}={v!r}" for k, v in opts.items() if k != "_paths" and v not in (None, "", [], {})]
    more = ", ..." if len(shown) > limit else ""
    return f"`dynacure {record.get('command')}`" + (f" ({', '.join(shown[:limit])}{more})" if shown else "")


def _experiment_record(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """A RUNS folder's ``experiment.json`` as a run record (an experiment writes no ``run.json`` there)."""
    path = folder / EXPERIMENT_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        info = None
    if not isinstance(info, dict):
        return []
    cfg = info.get("config") if isinstance(info.get("config"), dict) else {}
    return [(path, {"command": "experiment", "config": {"name": cfg.get("name")}})]


@dataclass
class OutClaim:
    """An output folder checked for ``command``; ``finish`` stores the request in the run's record."""

    out: Path
    command: str
    request: dict[str, Any]
    replaced: list[str]  # the finished runs ``--overwrite`` replaces (described), for the command to say

    def finish(self) -> None:
        add_request(self.out, self.command, self.request)


def claim_out_dir(out: str | os.PathLike[str], command: str, request: dict[str, Any], *,
                  overwrite: bool = False, option: str = "--out") -> OutClaim:
    """Check ``out`` as ``check_out_path(out, "dir")`` does, then refuse another run's finished output
    there unless ``overwrite`` (module docstring). Call it after the cheap checks of the other input,
    right before the work: with ``overwrite`` it removes the replaced runs' records."""
    path = check_out_path(out, "dir", option=option)
    conflicts = []
    for record_path, record in [*read_run_records(path), *_experiment_record(path)]:
        if record["command"] in EXPERIMENT_COMMANDS and command in EXPERIMENT_COMMANDS:
            continue  # an experiment checks its own config on resume (experiments.runner.open_workspace)
        other = record["command"]
        if other in BESIDE_COMMANDS:
            continue
        if other == command:
            changes = request_changes(record, request)
            if not changes:
                continue  # the same run: resume or redo it
            why = f"this run differs in {'; '.join(changes)}"
        else:
            why = f"`dynacure {command}` would write over it"
        conflicts.append((record_path, record, why))
    if conflicts and not overwrite:
        _, record, why = conflicts[0]
        raise ValueError(f"{path}: holds the finished output of another run, {describe_run(record)}; {why}. "
                         f"Pass --overwrite to replace it, or choose another {option} folder")
    for record_path, _, _ in conflicts:
        # --overwrite: the folder no longer claims to be that run, even if this one stops half way
        record_path.unlink()
    return OutClaim(path, command, request, [describe_run(r) for _, r, _ in conflicts])
