"""Bad input, fuzzed with hypothesis: readers (every format), the PII scrubber, the config loaders and the
CLI's refusal of bad settings.

Every failure must be a clear error naming the file (and line/field), or a quarantined record with its
file and line; never a traceback and never a silent drop: records read == documents + quarantined, and for
JSONL every non-blank line is one record.
"""

from __future__ import annotations

import gzip
import json
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dynacure.cli.main import app
from dynacure.config import ConfigError
from dynacure.experiments.config import load_experiment_config, preset_path
from dynacure.io.quarantine import REASONS, Quarantine
from dynacure.io.readers import ReadStats, iter_shards
from dynacure.signals.pii import card_ok, find_pii, luhn_ok, redact

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _read_all(path: Path, **kw: object) -> tuple[ReadStats, Quarantine, list]:
    """Read ``path`` fully; only a ValueError/FileNotFoundError naming the file may escape."""
    stats = ReadStats()
    quar = Quarantine()
    docs = []
    try:
        for shard in iter_shards(path, shard_size=7, quarantine=quar, stats=stats, **kw):
            assert shard.n_read == len(shard.docs) + shard.n_quarantined
            docs.extend(shard.docs)
    except (ValueError, FileNotFoundError) as exc:
        assert str(path) in str(exc), f"error does not name the file: {exc}"
        return stats, quar, docs
    assert stats.n_read == len(docs) + quar.total  # nothing dropped silently
    assert stats.n_quarantined == quar.total
    for e in quar.entries:
        assert e["reason"] in REASONS and e["line"] >= 1 and e["file"] == str(path)
    for d in docs:
        assert isinstance(d.text, str) and d.text.strip() and isinstance(d.id, str) and d.id
    assert len({d.id for d in docs}) == len(docs)
    return stats, quar, docs


def _non_blank_lines(data: bytes) -> int:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]
    return sum(1 for ln in lines if ln.strip())


# --- readers -------------------------------------------------------------------------------------

json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
record = st.fixed_dictionaries(
    {}, optional={"id": json_value, "text": json_value | st.text(min_size=1, max_size=40),
                  "source": json_value, "meta": json_value})
line_bytes = st.one_of(
    st.binary(max_size=60),  # random bytes: bad JSON, invalid UTF-8, stray newlines
    st.builds(lambda r: json.dumps(r).encode(), record),  # valid JSON, wrong field types
    st.text(max_size=30).map(lambda t: t.encode("utf-8")),
)


@FUZZ
@given(st.lists(line_bytes, max_size=25), st.booleans())
def test_jsonl_every_line_is_a_document_or_quarantined(lines: list[bytes], compress: bool) -> None:
    data = b"\n".join(lines)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("f.jsonl.gz" if compress else "f.jsonl")
        path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
        stats, quar, docs = _read_all(path)
        assert stats.n_read == _non_blank_lines(data)


@FUZZ
@given(st.lists(st.builds(lambda r: json.dumps(r).encode(), record), min_size=1, max_size=30),
       st.floats(0.0, 1.0))
def test_truncated_gzip_is_named_and_quarantined(lines: list[bytes], cut: float) -> None:
    blob = gzip.compress(b"\n".join(lines) + b"\n", mtime=0)
    keep = min(len(blob) - 1, max(1, int(len(blob) * cut)))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cut.jsonl.gz"
        path.write_bytes(blob[:keep])
        stats, quar, _ = _read_all(path)
        assert quar.counts().get("unreadable_file") == 1  # the cut is reported once, with file and line
        entry = next(e for e in quar.entries if e["reason"] == "unreadable_file")
        assert "gzip" in entry["detail"] or "cannot read" in entry["detail"]
        with pytest.raises(ValueError, match="cut.jsonl.gz"):
            list(iter_shards(path, quarantine=Quarantine(), on_file_error="raise"))


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([".jsonl", ".jsonl.gz", ".txt", ".txt.gz", ".parquet",
                                                 ".arrow"]))
def test_random_bytes_in_any_format_never_traceback(blob: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"random{suffix}"
        path.write_bytes(blob)
        _read_all(path)
        if suffix.startswith(".txt"):
            _read_all(path, text_mode="paragraph")


@FUZZ
@given(st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=20)), min_size=1,
                max_size=20),
       st.lists(st.one_of(st.none(), st.text(max_size=10)), min_size=20, max_size=20))
def test_parquet_with_wrong_types_quarantines_rows(texts: list, ids: list) -> None:
    n = len(texts)
    text_col = (pa.array([str(t) if t is not None else None for t in texts])
                if any(isinstance(t, str) for t in texts) else pa.array(texts))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.parquet"
        pq.write_table(pa.table({"text": text_col, "id": pa.array(ids[:n], pa.string())}), path)
        stats, quar, docs = _read_all(path)
        assert stats.n_read == n


def test_empty_files_and_folders(tmp_path: Path) -> None:
    for suffix in (".jsonl", ".txt"):
        p = tmp_path / f"empty{suffix}"
        p.write_bytes(b"")
        stats, quar, docs = _read_all(p)
        assert stats.n_read == 0 and not docs
    p = tmp_path / "empty.parquet"
    p.write_bytes(b"")
    stats, quar, _ = _read_all(p)
    assert quar.counts() == {"unreadable_file": 1}
    (tmp_path / "nothing").mkdir()
    with pytest.raises(FileNotFoundError, match="no data files"):
        list(iter_shards(tmp_path / "nothing"))


def test_huge_line_is_quarantined_without_holding_it(tmp_path: Path) -> None:
    p = tmp_path / "huge.jsonl"
    p.write_bytes(b'{"text": "' + b"x" * 3_000_000 + b'"}\n{"text": "small"}\n')
    stats, quar, docs = _read_all(p, max_line_bytes=1_000_000)
    assert quar.counts() == {"too_long": 1} and [d.text for d in docs] == ["small"]
    assert len(quar.entries[0]["preview"]) < 1000


# --- the PII scrubber ----------------------------------------------------------------------------

pii_alphabet = st.sampled_from(list("0123456789 -.()+@:/abcXYZ_\n\t") + ["é", "٣", "\u200b", "[EMAIL]"])


@FUZZ
@given(st.one_of(st.text(max_size=200), st.lists(pii_alphabet, max_size=200).map("".join)))
def test_redaction_never_raises_and_is_idempotent(text: str) -> None:
    once, counts = redact(text)
    assert all(v >= 0 for v in counts.values())
    again, counts2 = redact(once)
    assert again == once and sum(counts2.values()) == 0
    assert find_pii(once) == []


@settings(max_examples=10, deadline=None)
@given(st.text(alphabet="0123456789 -.:+@a", min_size=1, max_size=24).map(lambda t: (t * 3000)[:5000]))
def test_redaction_has_no_catastrophic_backtracking(text: str) -> None:
    t0 = time.perf_counter()
    redact(text)
    assert time.perf_counter() - t0 < 2.0


def _luhn_check_digit(body: str) -> str:
    for d in "0123456789":
        if luhn_ok(body + d):
            return d
    raise AssertionError("no Luhn digit")


@FUZZ
@given(st.text(alphabet="0123456789", min_size=12, max_size=18), st.integers(1, 9))
def test_luhn_valid_cards_redacted_invalid_kept(body: str, shift: int) -> None:
    good = body + _luhn_check_digit(body)
    bad = body + str((int(_luhn_check_digit(body)) + shift) % 10)
    assert luhn_ok(good) and not luhn_ok(bad)
    if len(set(good)) > 1:
        assert card_ok(good)
        assert redact(f"card {good} here")[1]["credit_card"] == 1
    assert not card_ok(bad)
    assert redact(f"card {bad} here")[1]["credit_card"] == 0


# --- config loaders and the CLI's refusal of bad settings ----------------------------------------

def _preset_dict(name: str = "ci") -> dict:
    import tomllib

    return tomllib.loads(preset_path(name).read_text())


scalar = st.one_of(st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=8), st.lists(st.integers(-3, 3), max_size=3),
                   st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


def _paths(d: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for k, v in d.items():
        out.append((*prefix, k))
        if isinstance(v, dict):
            out.extend(_paths(v, (*prefix, k)))
    return out


@FUZZ
@given(st.data())
def test_mutated_experiment_config_only_raises_config_error(data: st.DataObject) -> None:
    cfg = _preset_dict()
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(cfg) + [("typo_key",), ("learner", "tpyo")]))
        node = cfg
        for k in path[:-1]:
            if not isinstance(node.get(k), dict):
                node[k] = {}  # an earlier mutation replaced this table by a value
            node = node[k]
        if data.draw(st.booleans()) and path[-1] in node:
            del node[path[-1]]
        else:
            node[path[-1]] = data.draw(scalar)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "exp.toml"
        p.write_text(tomli_w.dumps(cfg))
        try:
            load_experiment_config(p)
        except ConfigError as exc:
            assert str(p) in str(exc)


BAD_EXPERIMENTS = [
    ({"weights": [{"name": "w", "safety": 0.5, "alignment": 0.5, "utility": 0.5}]}, "sum to 1"),
    ({"budgets": [0.0]}, "budgets"),
    ({"budgets": [1.5]}, "budgets"),
    ({"strategies": [{"name": "no-such-strategy"}]}, "unknown strategy"),
    ({"seeds": [1, 1]}, "seeds"),
    ({"learner": {"preset": "nano", "max_tokens": 15000, "device": "tpu"}}, "learner.device"),
]


@pytest.mark.parametrize(("change", "needle"), BAD_EXPERIMENTS)
def test_bad_experiment_config_refused_before_any_output(tmp_path: Path, change: dict, needle: str) -> None:
    cfg = _preset_dict()
    cfg.update(change)
    (tmp_path / "bad.toml").write_text(tomli_w.dumps(cfg))
    runs = tmp_path / "runs"
    res = CliRunner().invoke(app, ["experiment", str(tmp_path / "bad.toml"), "--out", str(runs)],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "error:" in res.output and needle in res.output and "bad.toml" in res.output
    assert "Traceback" not in res.output
    assert not runs.exists(), "work started before the config was refused"


BAD_CURATE = [
    (["-b", "0"], "budget"),
    (["-b", "1.5"], "budget"),
    (["-b", "nan"], "budget"),
    (["-b", "-0.2"], "budget"),
    (["-b", "0.5", "--weights", "0.5,0.5,0.5"], "sum to 1"),
    (["-b", "0.5", "--weights", "0.5,0.5"], "three"),
    (["-b", "0.5", "--weights", "a,b,c"], "not numbers"),
    (["-b", "0.5", "--weights", "1.2,-0.1,-0.1"], "weights"),
    (["-b", "0.5", "-s", "no-such-strategy"], "no-such-strategy"),
    (["-b", "0.5", "--param", "bogus=1"], "bogus"),
    (["-b", "0.5", "--param", "novalue"], "KEY=VALUE"),
    (["-b", "0.5", "--shard-size", "0"], "shard-size"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_CURATE)
def test_bad_curate_settings_refused_before_any_output(tmp_path: Path, args: list[str], needle: str) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "a document"}\n')
    out = tmp_path / "out"
    full = ["curate", str(corpus), "-o", str(out), *args]
    if "-s" not in args:
        full += ["-s", "random"]
    res = CliRunner().invoke(app, full, env={"COLUMNS": "200"})
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "error:" in res.output and needle in res.output
    assert not out.exists(), "output written before the settings were refused"


def test_missing_corpus_and_unreadable_config_are_named(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["curate", str(tmp_path / "nope"), "-s", "random", "-b", "0.5",
                                   "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "nope" in res.output
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00garbage")
    res = CliRunner().invoke(app, ["experiment", str(tmp_path / "bin.toml"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "bin.toml" in res.output and not (tmp_path / "r").exists()
