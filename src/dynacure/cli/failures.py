"""What a failed run leaves behind, and why no document was readable.

``start_clean_run(out, command)`` notes, before a command writes into ``out``, what is already there. On a
failure of the input, ``failed(reason)`` removes what the run created: ``out`` and any parent folders it
made, or, in a folder that existed, the entries that are new; an earlier run's files stay, marked by
``out/FAILED`` with the reason (removed when the next run starts). An interrupted run (Ctrl-C) is not a
failure: its files stay so that a rerun resumes.

``explain_no_documents`` turns a quarantine file into one line: the top reasons with the first place each
occurred, and the ``--text-field`` to pass when the records hold their text in another field.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAILED_FILE = "FAILED"
# Failures of the input, which cli_errors reports in one line (ConfigError is a ValueError).
INPUT_ERRORS = (ValueError, KeyError, FileNotFoundError, PermissionError, FileExistsError,
                IsADirectoryError, NotADirectoryError)


def _first_missing(out: Path) -> Path | None:
    """The outermost folder a run into ``out`` will create (``out`` or a missing parent); None if ``out``
    exists."""
    if os.path.lexists(out):
        return None
    top = out
    while not os.path.lexists(top.parent):
        top = top.parent
    return top


@dataclass
class CleanRun:
    """What ``out`` held before a run, so that a failure can remove exactly what the run added."""

    out: Path
    command: str
    created: Path | None  # the outermost folder this run creates, when ``out`` did not exist
    before: set[str]

    def failed(self, reason: str) -> None:
        if self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)
            return
        if not self.out.is_dir():
            return
        for name in set(os.listdir(self.out)) - self.before:
            path = self.out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if self.before:  # an earlier run's files stay; say that this folder is not a finished run
            from dynacure.io.atomic import write_text_atomic

            write_text_atomic(self.out / FAILED_FILE, f"dynacure {self.command} failed: {reason}\n")


def start_clean_run(out: Path, command: str) -> CleanRun:
    """Note what ``out`` holds before ``command`` writes there (an earlier failure's mark is removed)."""
    before = set(os.listdir(out)) if out.is_dir() else set()
    if FAILED_FILE in before:  # this run retries: its own outcome replaces the mark
        (out / FAILED_FILE).unlink()
        before.discard(FAILED_FILE)
    return CleanRun(out, command, _first_missing(out), before)


def quarantine_reasons(qpath: Path, top: int = 3) -> tuple[int, str]:
    """(records quarantined, "N reason (detail; first: FILE:LINE), ...") for the ``top`` reasons."""
    from dynacure.io.quarantine import read_quarantine

    entries = read_quarantine(qpath) if qpath.is_file() else []
    counts = Counter(e["reason"] for e in entries)
    first: dict[str, dict[str, Any]] = {}
    for e in entries:
        first.setdefault(e["reason"], e)
    parts = []
    for reason, n in counts.most_common(top):
        e = first[reason]
        detail = f"{e['detail']}; " if e.get("detail") else ""
        parts.append(f"{n:,} {reason} ({detail}first: {e['file']}:{e['line']})")
    if len(counts) > top:
        parts.append(f"{sum(n for _, n in counts.most_common()[top:]):,} other")
    return len(entries), ", ".join(parts)


def explain_no_documents(corpus: Path, qpath: Path, text_field: str) -> str:
    """Why no document of ``corpus`` was readable: the top quarantine reasons and, when the text is in
    another field, the ``--text-field`` to pass."""
    from dynacure.io import quarantine as q
    from dynacure.io.readers import string_fields

    n, reasons = quarantine_reasons(qpath)
    if n == 0:
        return f"{corpus}: no documents: the corpus holds no records"
    msg = f"{corpus}: no readable documents: {n:,} records quarantined: {reasons}"
    candidates = [f for f in string_fields(corpus) if f != text_field]
    if q.MISSING_TEXT in reasons and candidates:
        fields = ", ".join(repr(f) for f in candidates[:5])
        msg += f"; the records have string field(s) {fields}: pass --text-field {candidates[0]}"
    return msg
