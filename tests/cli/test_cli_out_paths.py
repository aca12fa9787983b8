"""Every command with an ``--out`` refuses an unusable output path before any work: one ``error:`` line on
stderr naming the path, exit code 2, nothing written.

Three bad paths per command: the wrong kind of thing already there (a file where the command writes a
folder, a folder where it writes a file), a parent that is a regular file (every command creates missing
parents, ``mkdir -p``, so a parent that cannot be a folder is the failing case), and a location where
nothing can be created. Tests may run as root, where ``chmod 555`` does not stop a write (and the command
rightly succeeds there); as root the unwritable location is ``/sys`` (sysfs: no file can be created in it,
not even by root; a create fails with EACCES while ``os.access`` says writable), elsewhere a ``chmod 555``
folder. Both are verified by a real create attempt before use, else the case is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dynacure.cli.main import app

# command -> (arguments before --out, kind of --out). Each gets minimal valid other arguments; the check
# runs first, so nothing is read or trained.
COMMANDS: dict[str, tuple[list[str], str]] = {
    "score": (["score", "{corpus}", "--signals", "profanity"], "dir"),
    "curate": (["curate", "{corpus}", "--strategy", "random", "--budget", "0.5"], "dir"),
    "train": (["train", "{corpus}", "--preset", "nano"], "dir"),
    "evaluate": (["evaluate", "{model}", "--suite", "perplexity"], "file"),
    "experiment": (["experiment", "--preset", "ci"], "dir"),
    "demo": (["demo", "--docs", "200"], "dir"),
    "report": (["report", "{runs}"], "file"),
    "audit": (["audit", "{runs}"], "file"),
    "adapt": (["adapt", "--steps", "2", "--switch-at", "2"], "dir"),
    "pool build": (["pool", "build"], "dir"),
    "train-scorer": (["train-scorer", "--which", "ngram"], "dir"),
    "pretrain": (["pretrain", "--tokens", "1000"], "dir"),
}


def _cannot_create_in(folder: Path) -> bool:
    try:
        fd, tmp = tempfile.mkstemp(dir=folder)
    except OSError:
        return True
    os.close(fd)
    os.unlink(tmp)
    return False


@pytest.fixture
def unwritable(tmp_path):
    """A folder in which nothing can be created (see the module docstring)."""
    if os.geteuid() != 0:
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
        yield ro
        ro.chmod(0o755)
        return
    sysfs = Path("/sys")
    if sysfs.is_dir() and _cannot_create_in(sysfs):
        yield sysfs
        return
    pytest.skip("running as root and /sys is not an unwritable folder here: no location refuses writes")


@pytest.fixture
def inputs(tmp_path):
    """Small valid inputs: a corpus, a model folder, a RUNS folder."""
    src = tmp_path / "inputs"
    src.mkdir()
    corpus = src / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": f"document number {i} of a tiny corpus"})
                              + "\n" for i in range(20)))
    model = src / "model"
    model.mkdir()
    (model / "learner.json").write_text(json.dumps({"kind": "tiny_gpt"}))
    runs = src / "runs"
    runs.mkdir()
    return {"corpus": str(corpus), "model": str(model), "runs": str(runs)}


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _bad_out(case: str, kind: str, tmp_path: Path, unwritable: Path | None) -> Path:
    if case == "wrong_kind":
        if kind == "dir":
            path = tmp_path / "a-file"
            path.write_text("not a folder")
        else:
            path = tmp_path / "a-folder"
            path.mkdir()
        return path
    if case == "parent_is_file":
        parent = tmp_path / "plain-file"
        parent.write_text("a file, not a folder")
        return parent / ("out" if kind == "dir" else "out.json")
    assert unwritable is not None
    return unwritable / ("dynacure-out" if kind == "dir" else "dynacure-out.json")


def _run(args: list[str], env_home: Path):
    env = {"DYNACURE_HOME": str(env_home / "home"), "DYNACURE_DATA": str(env_home / "no-data"),
           "HF_HUB_OFFLINE": "1"}
    return CliRunner().invoke(app, args, env=env)


def _check_one_error_line(res, out: Path) -> None:
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and str(out) in lines[0], lines[0]
    assert res.stdout == ""


@pytest.mark.parametrize("case", ["wrong_kind", "parent_is_file", "unwritable"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_out_is_one_error_line_exit_2_nothing_written(command, case, tmp_path, inputs, request):
    head, kind = COMMANDS[command]
    ro = request.getfixturevalue("unwritable") if case == "unwritable" else None
    out = _bad_out(case, kind, tmp_path, ro)
    args = [a.format(**inputs) for a in head] + ["--out", str(out)]
    before = _listing(tmp_path)
    before_ro = _listing(ro) if ro is not None and ro != Path("/sys") else None
    res = _run(args, tmp_path)
    _check_one_error_line(res, out)
    assert _listing(tmp_path) == before
    if ro is not None:
        assert not out.exists()
        if before_ro is not None:
            assert _listing(ro) == before_ro


def test_the_unwritable_location_really_refuses_writes(unwritable):
    """The premise of the third case: a create there fails (as root too), even where os.access says yes."""
    with pytest.raises(OSError):
        (unwritable / "probe").mkdir()
    assert _cannot_create_in(unwritable)


def test_check_out_path_accepts_what_commands_may_create(tmp_path):
    from dynacure.cli.paths import check_out_path

    assert check_out_path(tmp_path / "new" / "deeper", "dir") == tmp_path / "new" / "deeper"
    assert check_out_path(tmp_path, "dir") == tmp_path  # an existing folder is resumed / reused
    (tmp_path / "old.json").write_text("{}")
    assert check_out_path(tmp_path / "old.json", "file").name == "old.json"  # replaced atomically
    assert check_out_path(tmp_path / "a" / "b.json", "file").name == "b.json"
    assert sorted(os.listdir(tmp_path)) == ["old.json"]  # the checks created nothing
    with pytest.raises(ValueError, match="kind must be"):
        check_out_path(tmp_path, "folder")  # type: ignore[arg-type]
