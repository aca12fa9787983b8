"""Read a versioned JSON file (or check a parsed one) with one clear error naming the file.

Every artifact dynacure writes as JSON (learner and policy headers, checkpoints, model metadata, corpus
manifests, results) carries a ``format_version``; a reader refuses any other version before touching the
rest, so a file from another dynacure fails with the file, the version found and the versions read here,
instead of a ``KeyError`` deep inside a loader.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

VERSION_FIELD = "format_version"


class FormatError(ValueError):
    """A JSON file that is not the format this dynacure reads: bad JSON, not an object, another kind, or a
    missing or unsupported version. The message names the file (``path``); ``found`` is the version read
    (``None`` when absent) and ``supported`` the versions accepted."""

    def __init__(self, message: str, path: str, found: Any = None,
                 supported: frozenset[int] = frozenset()) -> None:
        super().__init__(message)
        self.path = path
        self.found = found
        self.supported = supported


class InvalidJSONError(FormatError):
    """The file is not valid JSON (or not UTF-8); the message gives the line and column."""


def _versions(supported: int | Collection[int]) -> frozenset[int]:
    return frozenset((supported,) if isinstance(supported, int) else supported)


def _reads(versions: frozenset[int]) -> str:
    listed = sorted(versions)
    if len(listed) == 1:
        return f"this dynacure reads version {listed[0]}"
    return "this dynacure reads versions " + ", ".join(str(v) for v in listed)


def check_version(data: Any, source: str | os.PathLike[str], supported: int | Collection[int], *,
                  what: str = "", kind: str | None = None, field: str = VERSION_FIELD,
                  hint: str = "") -> dict[str, Any]:
    """``data`` itself once it is a JSON object whose ``field`` is one of ``supported`` (and whose ``kind``
    field equals ``kind`` when given); otherwise :class:`FormatError`.

    ``source`` names where ``data`` came from (a path, or a label such as "feature encoder"), ``what`` says
    what the file is in the message ("policy format_version 2 is not supported"), and ``hint`` is appended
    to every message (what the user should do, e.g. "rebuild with `dynacure pretrain`").
    """
    src = str(source)
    versions = _versions(supported)
    tail = f"; {hint}" if hint else ""
    if not isinstance(data, Mapping):
        raise FormatError(f"{src}: expected a JSON object, found {type(data).__name__}{tail}", src,
                          supported=versions)
    if kind is not None and data.get("kind") != kind:
        raise FormatError(f"{src}: field kind is {data.get('kind')!r}, expected {kind!r}{tail}", src,
                          supported=versions)
    label = f"{what} {field}" if what else field
    if field not in data:
        raise FormatError(f"{src}: {label} missing ({_reads(versions)}){tail}", src, None, versions)
    found = data[field]
    # bool is an int in Python: ``True`` must not pass for version 1.
    if isinstance(found, bool) or not isinstance(found, int) or found not in versions:
        raise FormatError(f"{src}: {label} {found!r} is not supported ({_reads(versions)}){tail}", src,
                          found, versions)
    return data if isinstance(data, dict) else dict(data)


def read_versioned(path: str | os.PathLike[str], supported: int | Collection[int], *, what: str = "",
                   kind: str | None = None, field: str = VERSION_FIELD, hint: str = "") -> dict[str, Any]:
    """The JSON object in ``path``, checked by :func:`check_version`; bad JSON raises
    :class:`InvalidJSONError` with the line and column. A missing file raises the usual
    ``FileNotFoundError`` (callers that know what the folder should be say so themselves)."""
    p = Path(path)
    raw = p.read_bytes()
    tail = f"; {hint}" if hint else ""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidJSONError(f"{p}: not valid JSON (not UTF-8 at byte {exc.start}){tail}", str(p),
                               supported=_versions(supported)) from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise InvalidJSONError(f"{p}: not valid JSON ({where}): {exc.msg}{tail}", str(p),
                               supported=_versions(supported)) from None
    return check_version(data, p, supported, what=what, kind=kind, field=field, hint=hint)
