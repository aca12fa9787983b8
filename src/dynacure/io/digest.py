"""Digests of files and model folders: one definition of "the same bytes" for resumes and provenance."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path


def _update(h: hashlib._Hash, path: Path) -> None:
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def file_digest(path: Path) -> str:
    """BLAKE2b-16 hex of a file's bytes (not its mtime: a re-save of the same weights is the same file)."""
    h = hashlib.blake2b(digest_size=16)
    _update(h, path)
    return h.hexdigest()


def folder_digest(folder: Path, keep: Callable[[Path], bool] | None = None) -> str:
    """BLAKE2b-16 hex over the folder's file names and bytes, hidden files left out (and those ``keep``
    rejects): changes with any file."""
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if keep is not None and not keep(path):
            continue
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        _update(h, path)
    return h.hexdigest()
