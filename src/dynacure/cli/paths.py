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
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

OutKind = Literal["dir", "file"]


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
