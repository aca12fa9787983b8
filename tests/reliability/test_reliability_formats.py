"""Safety of artifacts: no pickle where a user's file is loaded, and every saved artifact (learner, policy,
scorer model, calibrator, corpus folder) refuses another ``format_version`` with an error that names the
file, the version found and the version this dynacure reads."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dynacure.io.document import Document

SRC = Path(__file__).resolve().parents[2] / "src" / "dynacure"
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def pickle_uses(source: str, filename: str = "<src>") -> list[str]:
    """Lines that import a pickle-based module or call a loader that unpickles (AST, not grep)."""
    found: list[str] = []
    tree = ast.parse(source, filename=filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{filename}:{node.lineno}: import {a.name}" for a in node.names
                      if a.name.split(".")[0] in PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLE_MODULES:
            found.append(f"{filename}:{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            fn = ast.unparse(node.func)
            kw = {k.arg: ast.unparse(k.value) for k in node.keywords if k.arg}
            if fn.endswith("torch.load") or fn == "load" and "map_location" in kw:
                if kw.get("weights_only") != "True":
                    found.append(f"{filename}:{node.lineno}: {fn}(...) without weights_only=True")
            elif fn.endswith(("read_pickle", "to_pickle")):
                found.append(f"{filename}:{node.lineno}: {fn}")
            elif kw.get("allow_pickle") not in (None, "False"):
                found.append(f"{filename}:{node.lineno}: {fn}(allow_pickle={kw['allow_pickle']})")
            elif fn.endswith(("from_pretrained",)) and kw.get("use_safetensors") == "False":
                found.append(f"{filename}:{node.lineno}: {fn}(use_safetensors=False)")
    return found


def test_the_scanner_catches_what_it_looks_for() -> None:
    bad = ("import pickle\nfrom joblib import load\nimport torch\nx = torch.load(p)\n"
           "y = torch.load(p, weights_only=False)\nz = np.load(p, allow_pickle=True)\ndf.to_pickle(p)\n")
    assert len(pickle_uses(bad)) == 6
    ok = "import torch\nx = torch.load(p, weights_only=True)\nz = np.load(p)\nimport json\n"
    assert pickle_uses(ok) == []


def test_no_pickle_anywhere_in_the_package() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 50
    problems = [p for f in files for p in pickle_uses(f.read_text(encoding="utf-8"), str(f.relative_to(SRC)))]
    assert problems == [], "pickle-based loading found:\n" + "\n".join(problems)


def _bump(json_file: Path, key: str = "format_version", value: object = 99) -> None:
    data = json.loads(json_file.read_text())
    data[key] = value
    json_file.write_text(json.dumps(data))


def _assert_clear(exc: pytest.ExceptionInfo[BaseException], file: Path, found: object, expected: int) -> None:
    msg = str(exc.value)
    assert str(file) in msg, msg
    assert repr(found) in msg or str(found) in msg, msg
    assert str(expected) in msg.replace(str(file), ""), msg
    assert "format_version" in msg, msg


@pytest.mark.parametrize("other", [2, "1"])
def test_tiny_gpt_checkpoint_of_another_format_is_refused(tmp_path: Path, other: object) -> None:
    from dynacure.learners import load_learner
    from dynacure.learners.tiny_gpt import FORMAT_VERSION, TinyGPT

    torch.manual_seed(0)
    learner = TinyGPT.create(["a small text to train a tokenizer on"] * 4, preset="nano", seed=0)
    learner.save(tmp_path / "m")
    assert isinstance(load_learner(tmp_path / "m"), TinyGPT)  # the same version loads
    _bump(tmp_path / "m" / "learner.json", value=other)
    with pytest.raises(ValueError) as exc:
        load_learner(tmp_path / "m")
    _assert_clear(exc, tmp_path / "m" / "learner.json", other, FORMAT_VERSION)


def _table(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"id": [f"d{i}" for i in range(n)], "source": ["a", "b"] * (n // 2),
                         "n_tokens": rng.integers(5, 50, n), "profanity__profane": rng.random(n),
                         "quality__score": rng.random(n)})


@pytest.mark.parametrize("version", [0, 2])
def test_neural_policy_of_another_format_is_refused(tmp_path: Path, version: int) -> None:
    from dynacure.loop.features import FeatureEncoder
    from dynacure.loop.policy import (
        HEADER_FILE,
        POLICY_FORMAT_VERSION,
        SelectionPolicy,
        load_policy,
        save_neural_policy,
    )

    table = _table()
    enc = FeatureEncoder.fit(table)
    pol = SelectionPolicy(enc.dim, 3, 8, 0.01)
    save_neural_policy(tmp_path / "p", pol, enc, np.zeros(3))
    probs = load_policy(tmp_path / "p").probabilities(table)
    assert probs.shape == (len(table),) and np.all((probs >= 0) & (probs <= 1))
    _bump(tmp_path / "p" / HEADER_FILE, value=version)
    with pytest.raises(ValueError) as exc:
        load_policy(tmp_path / "p")
    _assert_clear(exc, tmp_path / "p" / HEADER_FILE, version, POLICY_FORMAT_VERSION)


def test_scorer_model_and_calibrator_of_another_format_are_refused(tmp_path: Path) -> None:
    from dynacure.signals.calibration import FORMAT_VERSION as CAL_VERSION
    from dynacure.signals.calibration import IsotonicCalibrator
    from dynacure.signals.models import FORMAT_VERSION, META_FILE
    from dynacure.signals.toxicity import NgramModel, train_demo_models

    paths = train_demo_models(tmp_path / "models", seed=0, n_docs=200)
    folder = next(Path(p) for p in paths.values() if (Path(p) / META_FILE).exists())
    meta = json.loads((folder / META_FILE).read_text())
    assert meta["format_version"] == FORMAT_VERSION
    assert not list(folder.glob("*.pkl")) and list(folder.glob("*.safetensors"))
    NgramModel.load(folder, which=folder.name)  # the same version loads
    for version in (0, FORMAT_VERSION + 1):
        _bump(folder / META_FILE, value=version)
        with pytest.raises(ValueError) as exc:
            NgramModel.load(folder, which=folder.name)
        _assert_clear(exc, folder / META_FILE, version, FORMAT_VERSION)

    rng = np.random.default_rng(0)
    scores = rng.random(200)
    cal = IsotonicCalibrator(n_folds=2).fit(scores, (scores + rng.normal(0, 0.2, 200) > 0.5).astype(int))
    cal.save(tmp_path / "cal.json")
    IsotonicCalibrator.load(tmp_path / "cal.json")
    _bump(tmp_path / "cal.json", value=CAL_VERSION + 1)
    with pytest.raises(ValueError) as exc:
        IsotonicCalibrator.load(tmp_path / "cal.json")
    _assert_clear(exc, tmp_path / "cal.json", CAL_VERSION + 1, CAL_VERSION)


def test_corpus_folder_of_another_format_is_refused(tmp_path: Path) -> None:
    from dynacure.io.readers import CORPUS_FORMAT_VERSION, read_documents
    from dynacure.io.writers import write_corpus

    write_corpus([Document("a", "some text", "s")], tmp_path / "c")
    assert [d.id for d in read_documents(tmp_path / "c")] == ["a"]
    _bump(tmp_path / "c" / "corpus.json", value=CORPUS_FORMAT_VERSION + 1)
    with pytest.raises(ValueError) as exc:
        list(read_documents(tmp_path / "c"))
    _assert_clear(exc, tmp_path / "c" / "corpus.json", CORPUS_FORMAT_VERSION + 1, CORPUS_FORMAT_VERSION)
