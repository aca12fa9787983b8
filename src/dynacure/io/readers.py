"""Streaming readers: JSONL(.gz), Parquet, Arrow (local Hugging Face dataset folders), plain text -> shards.

``iter_shards(path)`` walks a file or a folder (files sorted by relative path), parses each record, checks
it, and yields ``Shard``s of at most ``shard_size`` documents. Nothing is loaded whole: JSONL and text are
read line by line (with a byte cap per line), Parquet by record batches, Arrow IPC through a memory map.

Every record read is accounted for: it becomes a ``Document`` or a quarantine entry with its reason
(``dynacure.io.quarantine``). A file that breaks mid-way (truncated gzip, corrupt Parquet) gives one
quarantine entry naming the file and the line where reading stopped, or a ``ValueError`` naming the file
with ``on_file_error="raise"``.

Ids are stable: a record's own ``id`` if it has one, else ``derive_id(<path relative to the corpus root>,
<1-based line or row>)``. A folder written by ``dynacure.io.writers.write_corpus`` (with ``corpus.json``)
is read in the shard order its ``corpus.json`` lists.

The text of a record is its ``text`` field unless told otherwise: ``text_field=`` per call, or
``with text_field_default("content"):`` for every reader called inside the block without one (how the
commands' ``--text-field`` reaches the readers inside ``curate`` and the scoring engines).
``text_field_default(name, auto=True)`` (what ``score`` and ``curate`` use) also picks the field per file
when a file lacks ``name``: the first of ``TEXT_FIELD_CANDIDATES`` its Parquet/Arrow schema has, or the one
most of its first JSONL records hold as a string (``resolve_text_field``); a file that holds ``name`` keeps
it, so a folder mixing ``text`` JSONL and ``content`` Parquet reads both. The choices are collected in the
``TextFieldChoices`` the block yields, for the command to print.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import zlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from dynacure.io import quarantine as q
from dynacure.io.document import Document, derive_id
from dynacure.io.idset import IdSet
from dynacure.io.jsonfile import read_versioned
from dynacure.io.quarantine import Quarantine

log = logging.getLogger(__name__)

TextMode = Literal["line", "paragraph"]
OnFileError = Literal["quarantine", "raise"]

DEFAULT_MAX_CHARS = 1_000_000
CORPUS_FORMAT_VERSION = 1
CORPUS_MANIFEST = "corpus.json"
# Our own Parquet files carry this schema-metadata key; their ``meta`` column is then JSON text.
PARQUET_META_KEY = b"dynacure.documents"

_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_TEXT_SUFFIXES = (".txt", ".txt.gz")
_PARQUET_SUFFIXES = (".parquet",)
_ARROW_SUFFIXES = (".arrow",)
DATA_SUFFIXES = _JSONL_SUFFIXES + _TEXT_SUFFIXES + _PARQUET_SUFFIXES + _ARROW_SUFFIXES
# Files of a Hugging Face ``save_to_disk`` folder that describe it rather than hold rows.
_HF_MARKERS = ("state.json", "dataset_info.json", "dataset_dict.json")

DEFAULT_TEXT_FIELD = "text"
# Where corpora commonly keep their text, in order of preference (auto-detection per file).
TEXT_FIELD_CANDIDATES = ("text", "content", "document", "body", "contents", "raw_content", "article",
                         "passage", "paragraph", "story", "abstract", "review", "sentence", "doc")
_SNIFF_RECORDS = 100  # JSONL records looked at to pick a file's text field


@dataclass(frozen=True)
class FieldChoice:
    """The text field read from one file, and why when it is not the one asked for."""

    file: str
    field: str
    requested: str
    why: str = ""


class TextFieldChoices(dict[str, FieldChoice]):
    """file -> ``FieldChoice`` for every file read inside a ``text_field_default`` block."""

    def requested(self) -> str:
        return next(iter(self.values())).requested if self else DEFAULT_TEXT_FIELD

    def switched(self) -> list[FieldChoice]:
        """The files read with another field than the one asked for."""
        return [c for c in self.values() if c.field != c.requested]


# Context variables, not module globals: a default set for one command never leaks into another
# thread's (or a test's) readers, and it ends with the ``with`` block.
_TEXT_FIELD: ContextVar[str] = ContextVar("dynacure_text_field", default=DEFAULT_TEXT_FIELD)
_TEXT_FIELD_AUTO: ContextVar[bool] = ContextVar("dynacure_text_field_auto", default=False)
_CHOICES: ContextVar[TextFieldChoices | None] = ContextVar("dynacure_text_field_choices", default=None)


@contextlib.contextmanager
def text_field_default(name: str | None = None, *, auto: bool = False) -> Iterator[TextFieldChoices]:
    """Readers called inside the block without ``text_field`` take the text from field ``name``
    (``text`` when None); with ``auto``, a file without that field is read from the field it has
    (``resolve_text_field``). Yields the choices made per file (filled as files are read)."""
    name = DEFAULT_TEXT_FIELD if name is None else name
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"--text-field must name a field, got {name!r}")
    choices = TextFieldChoices()
    tokens = (_TEXT_FIELD.set(name), _TEXT_FIELD_AUTO.set(auto), _CHOICES.set(choices))
    try:
        yield choices
    finally:
        _CHOICES.reset(tokens[2])
        _TEXT_FIELD_AUTO.reset(tokens[1])
        _TEXT_FIELD.reset(tokens[0])


def current_text_field() -> str:
    """The text field readers use when none is passed (``text`` outside ``text_field_default``)."""
    return _TEXT_FIELD.get()


def current_text_field_auto() -> bool:
    """Whether readers called without ``text_field`` pick the field per file."""
    return _TEXT_FIELD_AUTO.get()


def _column_names(path: Path, suf: str | None) -> list[str] | None:
    """The columns of a Parquet/Arrow file (None when its schema cannot be read)."""
    try:
        if suf in _PARQUET_SUFFIXES:
            schema = pq.read_schema(path)
        else:
            source = pa.memory_map(str(path), "r")
            try:
                schema = pa.ipc.open_stream(source).schema
            except pa.ArrowInvalid:
                source.seek(0)
                schema = pa.ipc.open_file(source).schema
    except (pa.ArrowException, OSError):
        return None
    return list(schema.names)


def _jsonl_string_counts(path: Path, max_records: int = _SNIFF_RECORDS, exclude: tuple[str, ...] = (),
                         counts: dict[str, int] | None = None) -> tuple[dict[str, int], int]:
    """(field -> records holding a non-empty string there, records read) over the first ``max_records``
    JSONL records of ``path``, added to ``counts``; a broken file counts what came before the break."""
    counts = {} if counts is None else counts
    seen = 0
    if max_records <= 0:
        return counts, seen
    try:
        for _, rec, _raw in _iter_jsonl(path, 8 * DEFAULT_MAX_CHARS):
            if isinstance(rec, dict):
                for key, value in rec.items():
                    if isinstance(value, str) and value.strip() and key not in exclude:
                        counts[key] = counts.get(key, 0) + 1
                seen += 1
            if seen >= max_records:
                break
    except _FileBroken:
        pass
    return counts, seen


_RESOLVED: dict[tuple[str, int, int, str], tuple[str, str]] = {}


def resolve_text_field(path: str | os.PathLike[str], requested: str) -> tuple[str, str]:
    """(field, why) to read ``path``'s text from: ``requested`` when the file has it (a JSONL record of
    its first ``_SNIFF_RECORDS`` holding it as a string, a Parquet/Arrow column of that name), else the
    first of ``TEXT_FIELD_CANDIDATES`` it has (JSONL: the one most records hold); ``requested`` when none.
    The same file (path, size, mtime) always gets the same answer, so a worker re-reading a span agrees
    with the planning read."""
    f = Path(path)
    suf = data_suffix(f)
    if suf in _TEXT_SUFFIXES or suf is None:
        return requested, ""
    try:
        st = f.stat()
    except OSError:
        return requested, ""
    key = (str(f), st.st_size, st.st_mtime_ns, requested)
    if key in _RESOLVED:
        return _RESOLVED[key]
    if suf in _JSONL_SUFFIXES:
        counts, _ = _jsonl_string_counts(f)
        found = [c for c in TEXT_FIELD_CANDIDATES if counts.get(c)]
        if requested in counts or not found:
            out = (requested, "")
        else:
            best = max(found, key=lambda c: counts[c])  # max keeps the first (preferred) of equal counts
            out = (best, f"no record of the first {_SNIFF_RECORDS} has {requested!r}; "
                         f"{counts[best]} have {best!r}")
    else:
        names = _column_names(f, suf)
        found = [c for c in TEXT_FIELD_CANDIDATES if names is not None and c in names]
        if names is None or requested in names or not found:
            out = (requested, "")
        else:
            out = (found[0], f"no column {requested!r}; columns: {', '.join(names)}")
    _RESOLVED[key] = out
    return out


def _field_for(f: Path, text_field: str, auto: bool) -> str:
    """The field to read ``f`` with (``text_field`` unless ``auto`` picks another); noted in the block's
    ``TextFieldChoices`` when there is one."""
    chosen, why = resolve_text_field(f, text_field) if auto else (text_field, "")
    choices = _CHOICES.get()
    if choices is not None and str(f) not in choices:
        choices[str(f)] = FieldChoice(str(f), chosen, text_field, why)
        if chosen != text_field:
            log.info("%s: reading the text from %r (%s)", f, chosen, why)
    return chosen


def string_fields(path: str | os.PathLike[str], max_records: int = 200,
                  exclude: tuple[str, ...] = ("id", "source")) -> list[str]:
    """Fields holding non-empty strings in the first ``max_records`` JSONL records of ``path``, most
    frequent first: the candidates for ``--text-field`` when no record has the expected one."""
    counts: dict[str, int] = {}
    seen = 0
    _, files = list_data_files(path)
    for f in files:
        if data_suffix(f) not in _JSONL_SUFFIXES:
            continue
        _, n = _jsonl_string_counts(f, max_records - seen, exclude, counts)
        seen += n
        if seen >= max_records:
            break
    return sorted(counts, key=lambda k: (-counts[k], k))


@dataclass
class Shard:
    """A batch of documents read in order; ``n_read == len(docs) + n_quarantined``."""

    name: str
    docs: list[Document]
    n_read: int = 0
    n_quarantined: int = 0
    files: list[str] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)

    @property
    def n_kept(self) -> int:
        return len(self.docs)


@dataclass
class Span:
    """Records ``start..stop`` (1-based ordinals of the records a file yields) of one file.

    Read again by ``read_span_texts`` (in a worker). ``skip`` lists the ordinals of the span that the
    planning read quarantined (its run-wide duplicate-id check included), so a worker reading the span
    again neither re-checks them nor counts them twice.
    ``rel`` and ``source`` are what ``iter_shards`` derives ids and the default source from. ``stop=None``:
    to the end of the file (a plan from ``corpus.json`` ends each file's last span so, so records the
    file holds beyond its listed count are still read and accounted for).
    """

    file: str
    rel: str
    source: str
    start: int
    stop: int | None
    skip: list[int] = field(default_factory=list)
    text_field: str | None = None  # the field the planning read took the file's text from


@dataclass
class ReadStats:
    """Totals over one ``iter_shards`` run (filled while it runs)."""

    n_read: int = 0
    n_kept: int = 0
    n_quarantined: int = 0
    n_shards: int = 0
    files: list[str] = field(default_factory=list)


class _FileBroken(Exception):
    """A file stopped being readable part-way (position = 1-based line/row where reading failed)."""

    def __init__(self, position: int, detail: str) -> None:
        super().__init__(detail)
        self.position = position
        self.detail = detail


@dataclass(slots=True)
class _Bad:
    reason: str
    raw: Any
    detail: str = ""


# --- files ------------------------------------------------------------------------------------------

def data_suffix(path: Path) -> str | None:
    """The data-format suffix of ``path`` (``.jsonl.gz``, ``.parquet``, ...) or None if not a data file."""
    name = path.name.lower()
    for suf in sorted(DATA_SUFFIXES, key=len, reverse=True):
        if name.endswith(suf):
            return suf
    return None


def _stem(path: Path) -> str:
    suf = data_suffix(path)
    return path.name[: -len(suf)] if suf else path.stem


def list_data_files(path: str | os.PathLike[str]) -> tuple[Path, list[Path]]:
    """(corpus root, data files in reading order) for a file or a folder."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if p.is_file():
        if data_suffix(p) is None:
            raise ValueError(f"{p}: unsupported format (expected one of {', '.join(DATA_SUFFIXES)})")
        return p.parent, [p]
    manifest = p / CORPUS_MANIFEST
    if manifest.exists():
        return p, _files_from_manifest(p, manifest)
    files: list[Path] = []
    skipped: list[str] = []
    for f in sorted(p.rglob("*"), key=lambda x: x.relative_to(p).as_posix()):
        rel = f.relative_to(p)
        if any(part.startswith((".", "_")) for part in rel.parts) or not f.is_file():
            continue
        if data_suffix(f) is None:
            if f.name not in _HF_MARKERS:
                skipped.append(rel.as_posix())
            continue
        files.append(f)
    if skipped:
        log.info("%s: skipped %d non-data files (e.g. %s)", p, len(skipped), skipped[0])
    if not files:
        raise FileNotFoundError(f"{p}: no data files ({', '.join(DATA_SUFFIXES)}) in this folder")
    return p, files


def _files_from_manifest(root: Path, manifest: Path) -> list[Path]:
    info = read_versioned(manifest, CORPUS_FORMAT_VERSION, what="corpus")
    files = []
    for i, shard in enumerate(info.get("shards", [])):
        if not isinstance(shard, dict) or not isinstance(shard.get("file"), str):
            raise ValueError(f"{manifest}: field shards[{i}].file missing or not a string")
        f = root / shard["file"]
        if not f.exists():
            raise FileNotFoundError(f"{f}: shard listed in {manifest} is missing")
        files.append(f)
    return files


def _hf_dataset_name(file: Path, root: Path) -> str | None:
    """For an Arrow file inside a ``save_to_disk`` folder, that folder's name (better than 'data-00000')."""
    folder = file.parent
    if any((folder / m).exists() for m in _HF_MARKERS):
        if folder == root:
            return root.name
        parent = folder.parent
        # A DatasetDict's split folders: name them '<dataset>/<split>'.
        if (parent / "dataset_dict.json").exists():
            return f"{parent.name}/{folder.name}"
        return folder.name
    return None


# --- raw record streams (position, record-or-_Bad) -------------------------------------------------

def _open_binary(path: Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _iter_raw_lines(path: Path, max_line_bytes: int) -> Iterator[tuple[int, bytes, bool]]:
    """(1-based line number, bytes, overflowed) with at most ``max_line_bytes`` kept per line."""
    lineno = 0
    try:
        with _open_binary(path) as fh:
            while True:
                chunk = fh.readline(max_line_bytes)
                if not chunk:
                    return
                lineno += 1
                overflow = False
                if not chunk.endswith(b"\n") and len(chunk) >= max_line_bytes:
                    overflow = True
                    while True:  # drain the rest of an over-long line without keeping it
                        more = fh.readline(max_line_bytes)
                        if not more or more.endswith(b"\n"):
                            break
                if lineno == 1 and chunk.startswith(b"\xef\xbb\xbf"):
                    chunk = chunk[3:]
                yield lineno, chunk, overflow
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise _FileBroken(lineno + 1, f"truncated or corrupt gzip file: {exc}") from None
    except OSError as exc:
        raise _FileBroken(lineno + 1, f"cannot read file: {exc}") from None


def _iter_jsonl(path: Path, max_line_bytes: int) -> Iterator[tuple[int, dict[str, Any] | _Bad, Any]]:
    for lineno, raw, overflow in _iter_raw_lines(path, max_line_bytes):
        if overflow:
            yield lineno, _Bad(q.TOO_LONG, raw, f"line longer than {max_line_bytes} bytes"), raw
            continue
        if not raw.strip():
            continue  # blank lines separate nothing in JSONL and hold no record
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield lineno, _Bad(q.NON_UTF8, raw, f"invalid UTF-8 at byte {exc.start}"), raw
            continue
        try:
            rec = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield lineno, _Bad(q.BAD_JSON, raw, str(exc)), raw
            continue
        if not isinstance(rec, dict):
            yield lineno, _Bad(q.NOT_OBJECT, raw, f"JSON {type(rec).__name__}, expected an object"), raw
            continue
        yield lineno, rec, raw


def _iter_text(path: Path, mode: TextMode, text_field: str,
               max_line_bytes: int) -> Iterator[tuple[int, dict[str, Any] | _Bad, Any]]:
    """Plain text: one record per non-blank line, or per blank-line separated paragraph."""
    if mode not in ("line", "paragraph"):
        raise ValueError(f"text_mode must be 'line' or 'paragraph', not {mode!r}")
    para: list[str] = []
    para_raw: list[bytes] = []
    start = 0
    bad: _Bad | None = None

    def flush() -> tuple[int, dict[str, Any] | _Bad, Any] | None:
        if not para_raw:
            return None
        item: dict[str, Any] | _Bad = bad if bad is not None else {text_field: "\n".join(para)}
        return start, item, b"".join(para_raw)

    for lineno, raw, overflow in _iter_raw_lines(path, max_line_bytes):
        problem: _Bad | None = None
        line = ""
        if overflow:
            problem = _Bad(q.TOO_LONG, raw, f"line longer than {max_line_bytes} bytes")
        else:
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                problem = _Bad(q.NON_UTF8, raw, f"invalid UTF-8 at byte {exc.start}")
        blank = problem is None and not line.strip()
        if mode == "line":
            if problem is not None:
                yield lineno, problem, raw
            elif not blank:
                yield lineno, {text_field: line}, raw
            continue
        if blank:
            out = flush()
            if out is not None:
                yield out
            para, para_raw, bad = [], [], None
            continue
        if not para_raw:
            start = lineno
        para_raw.append(raw)
        para.append(line)
        if problem is not None and bad is None:
            bad = _Bad(problem.reason, b"".join(para_raw), f"line {lineno}: {problem.detail}")
    if mode == "paragraph":
        out = flush()
        if out is not None:
            yield out


def _rows_from_batches(path: Path, batches: Iterator[pa.RecordBatch], own_format: bool
                       ) -> Iterator[tuple[int, dict[str, Any] | _Bad, Any]]:
    row = 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise _FileBroken(row + 1, f"cannot decode record batch: {exc}") from None
        for rec in batch.to_pylist():
            row += 1
            if own_format and isinstance(rec.get("meta"), str):
                try:
                    rec["meta"] = orjson.loads(rec["meta"])
                except orjson.JSONDecodeError:
                    yield row, _Bad(q.BAD_JSON, rec, "meta column is not JSON"), rec
                    continue
            yield row, rec, rec


def _check_schema(path: Path, schema: pa.Schema, text_field: str) -> None:
    if text_field not in schema.names:
        raise ValueError(f"{path}: no column {text_field!r} (columns: {', '.join(schema.names)}); "
                         "name the text column with --text-field")


def _iter_parquet(path: Path, text_field: str, batch_size: int
                  ) -> Iterator[tuple[int, dict[str, Any] | _Bad, Any]]:
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise _FileBroken(1, f"unreadable Parquet file: {exc}") from None
    _check_schema(path, schema, text_field)
    own = bool(schema.metadata and PARQUET_META_KEY in schema.metadata)
    yield from _rows_from_batches(path, pf.iter_batches(batch_size=batch_size), own)


def _iter_arrow(path: Path, text_field: str) -> Iterator[tuple[int, dict[str, Any] | _Bad, Any]]:
    """Arrow IPC: ``datasets.save_to_disk`` writes the streaming format; the file format is accepted too."""
    try:
        source = pa.memory_map(str(path), "r")
        try:
            reader: Any = pa.ipc.open_stream(source)
            batches: Iterator[pa.RecordBatch] = iter(reader)
        except pa.ArrowInvalid:
            source.seek(0)
            reader = pa.ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        schema = reader.schema
    except (pa.ArrowException, OSError) as exc:
        raise _FileBroken(1, f"unreadable Arrow file: {exc}") from None
    _check_schema(path, schema, text_field)
    own = bool(schema.metadata and PARQUET_META_KEY in schema.metadata)
    yield from _rows_from_batches(path, batches, own)


def _iter_records(path: Path, text_field: str, text_mode: TextMode, max_line_bytes: int,
                  batch_size: int) -> Iterator[tuple[int, dict[str, Any] | _Bad, Any]]:
    suf = data_suffix(path)
    if suf in _JSONL_SUFFIXES:
        return _iter_jsonl(path, max_line_bytes)
    if suf in _TEXT_SUFFIXES:
        return _iter_text(path, text_mode, text_field, max_line_bytes)
    if suf in _PARQUET_SUFFIXES:
        return _iter_parquet(path, text_field, batch_size)
    if suf in _ARROW_SUFFIXES:
        return _iter_arrow(path, text_field)
    raise ValueError(f"{path}: unsupported format")


# --- records -> documents ----------------------------------------------------------------------------

def _record_to_doc(rec: dict[str, Any], *, rel: str, position: int, text_field: str, id_field: str,
                   default_source: str, max_chars: int) -> Document | _Bad:
    checked = _id_and_text(rec, rel=rel, position=position, text_field=text_field, id_field=id_field,
                           max_chars=max_chars)
    if isinstance(checked, _Bad):
        return checked
    doc_id, text = checked
    src = rec.get("source")
    source = src if isinstance(src, str) and src else default_source
    meta_in = rec.get("meta")
    meta: dict[str, Any] = dict(meta_in) if isinstance(meta_in, dict) else {}
    if meta_in is not None and not isinstance(meta_in, dict):
        meta["meta"] = meta_in
    for k, v in rec.items():
        if k not in (text_field, id_field, "source", "meta"):
            meta[k] = v
    return Document(id=doc_id, text=text, source=source, meta=meta)


def _id_and_text(rec: dict[str, Any], *, rel: str, position: int, text_field: str, id_field: str,
                 max_chars: int) -> tuple[str, str] | _Bad:
    """A record's id and text, or why it cannot be a document (every check a reader makes of a record)."""
    if text_field not in rec or rec[text_field] is None:
        return _Bad(q.MISSING_TEXT, rec, f"field {text_field!r} missing")
    text = rec[text_field]
    if not isinstance(text, str):
        return _Bad(q.NON_STRING_TEXT, rec, f"field {text_field!r} is {type(text).__name__}, not a string")
    if not text.strip():
        return _Bad(q.EMPTY_TEXT, rec, f"field {text_field!r} is empty or whitespace")
    if len(text) > max_chars:
        return _Bad(q.TOO_LONG, rec, f"text has {len(text):,} characters (max_chars={max_chars:,})")
    raw_id = rec.get(id_field)
    if raw_id is None:
        doc_id = derive_id(rel, position)
    elif isinstance(raw_id, str) and raw_id.strip():
        doc_id = raw_id
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
        doc_id = str(raw_id)
    else:
        return _Bad(q.BAD_ID, rec, f"field {id_field!r} must be a non-empty string or an integer")
    return doc_id, text


def _iter_docs(path: str | os.PathLike[str], quarantine: Quarantine, stats: ReadStats, *, text_field: str,
               id_field: str, source: str | None, text_mode: TextMode, max_chars: int,
               on_file_error: OnFileError, batch_size: int,
               max_line_bytes: int | None,
               check_ids: bool = True, auto_text_field: bool = False,
               ) -> Iterator[tuple[Document | None, str, int, str, str, str]]:
    """(document, file, ordinal, rel, source, text field) for each kept record, (None, ...) for each
    quarantined one.

    ``ordinal`` counts the records the file yielded so far (1-based), which ``read_span_texts`` counts alike.
    """
    if on_file_error not in ("quarantine", "raise"):
        raise ValueError(f"on_file_error must be 'quarantine' or 'raise', not {on_file_error!r}")
    root, files = list_data_files(path)
    # JSON escapes (\uXXXX) can make a record's bytes several times its characters.
    max_line_bytes = max_line_bytes or 8 * max_chars + (1 << 20)
    seen = IdSet()  # ~8 bytes per id: reading memory does not grow with the corpus
    for f in files:
        rel = f.relative_to(root).as_posix()
        stats.files.append(str(f))
        default_source = source or _hf_dataset_name(f, root) or _stem(f)
        field_name = _field_for(f, text_field, auto_text_field)
        records = _iter_records(f, field_name, text_mode, max_line_bytes, batch_size)
        ordinal = 0
        try:
            for ordinal, (position, rec, raw) in enumerate(records, start=1):
                item = rec if isinstance(rec, _Bad) else _record_to_doc(
                    rec, rel=rel, position=position, text_field=field_name, id_field=id_field,
                    default_source=default_source, max_chars=max_chars)
                if isinstance(item, Document):
                    if not check_ids or seen.add(item.id):
                        yield item, str(f), ordinal, rel, default_source, field_name
                        continue
                    item = _Bad(q.DUPLICATE_ID, rec, f"id {item.id!r} already read in this run")
                _quarantine_bad(quarantine, f, position, item, raw)
                yield None, str(f), ordinal, rel, default_source, field_name
        except _FileBroken as exc:
            if on_file_error == "raise":
                raise ValueError(f"{f}: {exc.detail} (at line/row {exc.position})") from None
            log.error("%s: %s (at line/row %d); rest of file quarantined", f, exc.detail, exc.position)
            quarantine.add(f, exc.position, q.UNREADABLE_FILE, "", exc.detail)
            yield None, str(f), ordinal + 1, rel, default_source, field_name


def _quarantine_bad(quarantine: Quarantine, f: Path, position: int, item: _Bad, raw: Any) -> None:
    if isinstance(raw, dict):  # a Parquet/Arrow row: show it as JSON
        raw = orjson.dumps(raw, default=str, option=orjson.OPT_NON_STR_KEYS)
    quarantine.add(f, position, item.reason, raw, item.detail)


def iter_shards(path: str | os.PathLike[str], shard_size: int = 10000, quarantine: Quarantine | None = None,
                text_field: str | None = None, id_field: str = "id", source: str | None = None,
                text_mode: TextMode = "line", *, max_chars: int = DEFAULT_MAX_CHARS,
                on_file_error: OnFileError = "quarantine", batch_size: int = 1024,
                max_line_bytes: int | None = None, stats: ReadStats | None = None,
                check_ids: bool = True, auto_text_field: bool | None = None) -> Iterator[Shard]:
    """Stream ``path`` (a file or a folder) as shards of at most ``shard_size`` documents.

    Shards are named ``shard-00000``, ``shard-00001``, ... in reading order; only the last may be smaller.
    Quarantined records are counted in the shard being filled when they were read, so
    ``n_read == len(docs) + n_quarantined`` for every shard. Without a ``quarantine``, entries are kept in
    memory and a warning says how many there were. ``stats`` (if given) receives the run's totals.
    Lines longer than ``max_line_bytes`` (default ``8 * max_chars + 1 MiB``) are quarantined as
    ``too_long`` without being held in memory. ``text_field`` defaults to ``current_text_field()``.
    ``check_ids=False`` skips the run-wide duplicate-id check (8 bytes per id held) for a caller that checks
    the ids itself in bounded memory (``pipeline.streaming``). ``auto_text_field`` (default: the block's
    setting when ``text_field`` is not given, else False) picks the field per file (``resolve_text_field``).
    """
    if auto_text_field is None:
        auto_text_field = current_text_field_auto() if text_field is None else False
    text_field = text_field if text_field is not None else current_text_field()
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, not {shard_size}")
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, not {max_chars}")
    own_quarantine = quarantine is None
    quar = quarantine if quarantine is not None else Quarantine()
    stats = stats if stats is not None else ReadStats()

    def new(i: int) -> Shard:
        return Shard(name=f"shard-{i:05d}", docs=[])

    def emit(s: Shard) -> Shard:
        stats.n_shards += 1
        return s

    index = 0
    cur = new(index)
    events = _iter_docs(path, quar, stats, text_field=text_field, id_field=id_field, source=source,
                        text_mode=text_mode, max_chars=max_chars, on_file_error=on_file_error,
                        batch_size=batch_size, max_line_bytes=max_line_bytes, check_ids=check_ids,
                        auto_text_field=auto_text_field)
    for doc, file, ordinal, rel, src, field_name in events:
        # A full shard is handed out only when the next document arrives, so quarantined records
        # that follow it are still counted in it (and the last shard is never empty).
        if doc is not None and len(cur.docs) >= shard_size:
            yield emit(cur)
            index += 1
            cur = new(index)
        cur.n_read += 1
        stats.n_read += 1
        if not cur.files or cur.files[-1] != file:
            cur.files.append(file)
            cur.spans.append(Span(file, rel, src, ordinal, ordinal, text_field=field_name))
        cur.spans[-1].stop = ordinal
        if doc is None:
            cur.n_quarantined += 1
            stats.n_quarantined += 1
            cur.spans[-1].skip.append(ordinal)
        else:
            cur.docs.append(doc)
            stats.n_kept += 1
    if cur.n_read:
        yield emit(cur)
    if own_quarantine and quar.total:
        log.warning("%s: %d records quarantined (%s); pass a Quarantine(path) to keep the entries",
                    path, quar.total, ", ".join(f"{k}={v}" for k, v in quar.counts().items()))


def manifest_spans(path: str | os.PathLike[str], shard_size: int) -> list[list[Span]] | None:
    """The spans of each shard ``iter_shards(path, shard_size)`` gives, from ``corpus.json`` alone.

    None unless ``path`` is a folder with a ``corpus.json`` listing every file's ``n_docs`` (a
    ``write_corpus`` folder, whose records are all valid documents with unique ids): then no record needs
    reading to know where each shard starts. ``read_span_texts`` still checks every record it reads.
    """
    root = Path(path)
    manifest = root / CORPUS_MANIFEST
    if not root.is_dir() or not manifest.exists():
        return None
    files = _files_from_manifest(root, manifest)
    counts = [s.get("n_docs") if isinstance(s, dict) else None
              for s in orjson.loads(manifest.read_bytes()).get("shards", [])]
    if len(counts) != len(files) or not all(isinstance(c, int) and c >= 0 for c in counts):
        return None
    shards: list[list[Span]] = []
    room = 0
    for f, n in zip(files, counts, strict=True):
        rel = f.relative_to(root).as_posix()
        source = _hf_dataset_name(f, root) or _stem(f)
        start = 1
        while start <= n:
            if room == 0:
                shards.append([])
                room = shard_size
            take = min(room, n - start + 1)
            stop = start + take - 1
            shards[-1].append(Span(str(f), rel, source, start, stop if stop < n else None))
            start += take
            room -= take
    return shards


def read_span_texts(span: Span, quarantine: Quarantine, seen: set[str], *, text_field: str | None = None,
                    id_field: str = "id", text_mode: TextMode = "line", max_chars: int = DEFAULT_MAX_CHARS,
                    batch_size: int = 1024, max_line_bytes: int | None = None,
                    auto_text_field: bool | None = None) -> tuple[list[str], list[str], int]:
    """(ids, texts, records read) of one ``Span``; skipped ordinals are neither read nor counted.

    How a worker reads its own shard: the same parsing and checks as ``iter_shards`` over the span's
    records only, keeping only what scoring needs (no ``Document``, source or meta). A record that is
    unusable now but was not skipped (the span was planned from a ``corpus.json``, or the file changed
    since it was planned) goes to ``quarantine``; the duplicate-id check covers the ids in ``seen`` (the
    worker's shard), the run-wide check is the planner's. Records before ``span.start`` are parsed and passed
    over: a shard in the middle of a long file costs reading the file up to it (a ``write_corpus`` folder has
    one file per shard). The text field is the one the planning read chose (``span.text_field``), else as
    ``iter_shards`` picks it.
    """
    if auto_text_field is None:
        auto_text_field = current_text_field_auto() if text_field is None else False
    text_field = text_field if text_field is not None else current_text_field()
    f = Path(span.file)
    if span.text_field is not None:
        text_field = span.text_field
    elif auto_text_field:
        text_field = resolve_text_field(f, text_field)[0]
    max_line_bytes = max_line_bytes or 8 * max_chars + (1 << 20)
    skip = set(span.skip)
    ids: list[str] = []
    texts: list[str] = []
    n_read = 0
    ordinal = 0
    try:
        for ordinal, (position, rec, raw) in enumerate(
                _iter_records(f, text_field, text_mode, max_line_bytes, batch_size), start=1):
            if ordinal < span.start or ordinal in skip:
                continue
            if span.stop is not None and ordinal > span.stop:
                break
            n_read += 1
            item = rec if isinstance(rec, _Bad) else _id_and_text(
                rec, rel=span.rel, position=position, text_field=text_field, id_field=id_field,
                max_chars=max_chars)
            if not isinstance(item, _Bad):
                if item[0] not in seen:
                    seen.add(item[0])
                    ids.append(item[0])
                    texts.append(item[1])
                    continue
                item = _Bad(q.DUPLICATE_ID, rec, f"id {item[0]!r} already read in this run")
            _quarantine_bad(quarantine, f, position, item, raw)
    except _FileBroken as exc:
        if ordinal + 1 not in skip and (span.stop is None or ordinal < span.stop):  # one entry: the rest
            n_read += 1
            quarantine.add(f, exc.position, q.UNREADABLE_FILE, "", exc.detail)
    return ids, texts, n_read


def read_documents(path: str | os.PathLike[str], **kwargs: Any) -> Iterator[Document]:
    """Every kept document of ``path`` in reading order (same options as ``iter_shards``)."""
    for shard in iter_shards(path, **kwargs):
        yield from shard.docs
