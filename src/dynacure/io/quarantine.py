"""Quarantine: records that cannot be read are set aside with their reason, never dropped silently.

Each entry names the file, the 1-based line (or row) where the record sits, a reason code and a preview
of the raw record. Entries stream to a JSONL file (written to a temporary sibling and renamed on
``close()``, so a half-written quarantine never looks complete); counts by reason are always kept.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson
from rich.console import Console
from rich.table import Table

from dynacure.io.atomic import public_file_mode

log = logging.getLogger(__name__)

# Reason codes (stable strings: tests, reports and users grep for them).
BAD_JSON = "bad_json"
NOT_OBJECT = "not_object"
MISSING_TEXT = "missing_text"
NON_STRING_TEXT = "non_string_text"
NON_UTF8 = "non_utf8"
EMPTY_TEXT = "empty_text"
TOO_LONG = "too_long"
DUPLICATE_ID = "duplicate_id"
BAD_ID = "bad_id"
UNREADABLE_FILE = "unreadable_file"

REASONS = (BAD_JSON, NOT_OBJECT, MISSING_TEXT, NON_STRING_TEXT, NON_UTF8, EMPTY_TEXT, TOO_LONG,
           DUPLICATE_ID, BAD_ID, UNREADABLE_FILE)

PREVIEW_CHARS = 200
# In-memory entries are only a convenience for small runs and tests; the file holds all of them.
MAX_KEPT_ENTRIES = 10_000


def preview(raw: bytes | str | Any, limit: int = PREVIEW_CHARS) -> str:
    """A short printable rendering of a raw record (bytes decoded with replacement characters)."""
    if isinstance(raw, bytes | bytearray):
        text = bytes(raw[: limit * 4]).decode("utf-8", errors="replace")
    elif isinstance(raw, str):
        text = raw
    else:
        text = repr(raw)
    text = text.rstrip("\r\n")
    return text if len(text) <= limit else text[:limit] + "..."


class Quarantine:
    """Collects unreadable records.

    ``path=None`` keeps entries in memory only (counts stay exact; at most ``MAX_KEPT_ENTRIES`` entries
    are kept). Use as a context manager, or call ``close()`` to move the JSONL file into place.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._counts: Counter[str] = Counter()
        self.entries: list[dict[str, Any]] = []
        self._fh: IO[bytes] | None = None
        self._tmp: Path | None = None
        self.closed = False
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            os.chmod(tmp, public_file_mode())  # mkstemp makes 0600; the file is for the user to read
            self._tmp = Path(tmp)
            self._fh = os.fdopen(fd, "wb")

    def add(self, file: str | os.PathLike[str], line: int, reason: str, raw: Any = "",
            detail: str = "") -> None:
        """Record one quarantined record: ``line`` is 1-based; ``detail`` says more than the reason code."""
        entry: dict[str, Any] = {"file": str(file), "line": int(line), "reason": reason,
                                 "preview": preview(raw)}
        if detail:
            entry["detail"] = detail
        self.add_entry(entry)

    def add_entry(self, entry: dict[str, Any]) -> None:
        """Record an entry another ``Quarantine`` made (a worker's, handed to the driver owning the file)."""
        if self.closed:
            raise RuntimeError("quarantine already closed")
        file, line, reason = entry["file"], entry["line"], entry["reason"]
        self._counts[reason] += 1
        if len(self.entries) < MAX_KEPT_ENTRIES:
            self.entries.append(entry)
        if self._fh is not None:
            self._fh.write(orjson.dumps(entry, option=orjson.OPT_SORT_KEYS) + b"\n")
        log.debug("quarantined %s:%d (%s)", file, line, reason)

    def counts(self) -> dict[str, int]:
        """Number of quarantined records by reason (sorted by reason)."""
        return dict(sorted(self._counts.items()))

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def __len__(self) -> int:
        return self.total

    def close(self) -> None:
        """Flush and move the quarantine file into place (an empty file when nothing was quarantined)."""
        if self.closed:
            return
        self.closed = True
        if self._fh is not None and self._tmp is not None and self.path is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            os.replace(self._tmp, self.path)

    def __enter__(self) -> Quarantine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten close() must not leave a stray temp file behind
        try:
            if not self.closed and self._fh is not None and self._tmp is not None:
                self._fh.close()
                self._tmp.unlink(missing_ok=True)
        except Exception:  # noqa: S110 - interpreter shutdown; nothing sensible left to do
            pass

    def summary_table(self, title: str = "Quarantined records") -> Table:
        table = Table(title=title)
        table.add_column("reason")
        table.add_column("records", justify="right")
        for reason, n in self.counts().items():
            table.add_row(reason, f"{n:,}")
        table.add_row("[bold]total[/]", f"[bold]{self.total:,}[/]")
        return table

    def print_summary(self, console: Console | None = None, title: str = "Quarantined records") -> None:
        """Print the counts by reason as a Rich table (and where the entries were written)."""
        console = console or Console(stderr=True)
        console.print(self.summary_table(title))
        if self.path is not None and self.total:
            console.print(f"quarantine entries: {self.path}")


def read_quarantine(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All entries of a quarantine JSONL file."""
    with open(path, "rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]
