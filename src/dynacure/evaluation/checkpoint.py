"""Resuming an evaluation: finished suites and the chunks of a running suite are kept on disk.

``dynacure evaluate`` hands ``run_suites`` a :class:`Checkpoint` for its results file ``OUT``:

- after each suite, the results so far are written to ``OUT`` (``"complete": false`` until the last one),
  each suite with its *key*: a digest of what decides its figures (the suite, its options, the seed, the
  model's files, the judge). A re-run with the same key reuses the suite as it is and says so;
- inside a suite, the slow work is done in chunks (toxicity: a batch of prompts' generations; the
  likelihood suites: a few hundred scored continuations), each written atomically as a JSON file to
  ``OUT``'s parts folder (``.OUT.parts/<suite>-<key>/``) as soon as it is done. A re-run reuses every chunk
  there and computes only the missing ones; the folder goes once the results file is complete.

Each chunk is a deterministic function of its key and its position (generation is seeded per chunk, the
likelihood suites are deterministic), so an interrupted and resumed run gives the same figures as an
uninterrupted one. JSON keeps floats exact (shortest repr round-trips), so nothing is lost in a chunk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dynacure.io.atomic import write_json_atomic
from dynacure.io.digest import file_digest

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
T = TypeVar("T")
# The files of a saved learner that decide its outputs (the results and run records beside them do not).
MODEL_SUFFIXES = (".safetensors", ".bin", ".pt", ".model")
MODEL_JSON = ("learner.json", "config.json", "tokenizer.json", "tokenizer_config.json",
              "generation_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")


def digest(obj: Any, length: int = 16) -> str:
    """Stable short SHA-256 of a JSON-able object (keys sorted)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def model_fingerprint(model_dir: str | Path) -> str:
    """The model folder's identity: its resolved path and the name and bytes of each model file, so a model
    trained again into the same folder does not inherit the old model's checkpoints, while the same weights
    written again (a finished ``dynacure train`` run again resumes and re-saves them) keep their results."""
    root = Path(model_dir).resolve()
    files = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and (p.suffix in MODEL_SUFFIXES or p.name in MODEL_JSON):
            files.append([str(p.relative_to(root)), file_digest(p)])
    return digest({"path": str(root), "files": files})


class ChunkStore:
    """The chunks of one suite's work: ``get(name)`` / ``put(name, value)`` on atomic JSON files."""

    def __init__(self, folder: Path, suite: str, say: Callable[[str], None] | None = None) -> None:
        self.folder = folder
        self.suite = suite
        self.reused = 0
        self.written = 0
        self._say = say
        self._found = len(list(folder.glob("*.json"))) if folder.is_dir() else 0
        if self._found and say is not None:
            say(f"{suite}: resuming, {self._found} chunk(s) done earlier are reused from {folder}")

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def get(self, name: str) -> Any | None:
        path = self._path(name)
        if not path.is_file():
            return None
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:  # a damaged chunk is computed again, not trusted
            log.warning("%s: unreadable checkpoint chunk (%s); computing it again", path, exc)
            return None
        if not isinstance(rec, dict) or rec.get("version") != CHECKPOINT_VERSION or "value" not in rec:
            return None
        self.reused += 1
        return rec["value"]

    def put(self, name: str, value: Any) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self._path(name), {"version": CHECKPOINT_VERSION, "suite": self.suite,
                                             "value": value})
        self.written += 1

    def cached(self, name: str, compute: Callable[[], T], encode: Callable[[T], Any] = lambda v: v,
               decode: Callable[[Any], T] = lambda v: v) -> T:
        """The stored chunk ``name``, or ``compute()`` stored before it is returned."""
        got = self.get(name)
        if got is not None:
            return decode(got)
        value = compute()
        self.put(name, encode(value))
        return value


class Checkpoint:
    """Where an evaluation keeps what it has done: the results file and its parts folder (module doc)."""

    def __init__(self, out: str | Path, model_key: str, say: Callable[[str], None] | None = None,
                 header: dict[str, Any] | None = None) -> None:
        self.out = Path(out)
        self.model_key = model_key
        self.header = dict(header or {})  # written with every save (the model, the options)
        self.say = say or (lambda msg: log.info("%s", msg))
        self.parts = self.out.parent / f".{self.out.name}.parts"
        self.previous = self._read_previous()

    def _read_previous(self) -> dict[str, dict[str, Any]]:
        """Finished suites of an earlier run, by suite name (only those that carry their key)."""
        if not self.out.is_file():
            return {}
        try:
            old = json.loads(self.out.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}  # not ours, or damaged: nothing is reused and the file is replaced at the end
        keys = old.get("suite_keys") if isinstance(old, dict) else None
        if not isinstance(keys, dict) or not isinstance(old.get("suites"), dict):
            return {}
        return {n: {"key": keys[n], "result": r} for n, r in old["suites"].items() if n in keys}

    def suite_key(self, name: str, options: dict[str, Any] | None, seed: int, judge: dict[str, Any] | None
                  ) -> str:
        return digest({"version": CHECKPOINT_VERSION, "suite": name, "options": options or {}, "seed": seed,
                       "model": self.model_key, "judge": judge})

    def finished(self, name: str, key: str) -> dict[str, Any] | None:
        """The suite's result from an earlier run with the same key, if there is one."""
        prev = self.previous.get(name)
        if prev is None or prev["key"] != key:
            return None
        self.say(f"{name}: reused, finished earlier ({self.out})")
        return prev["result"]

    def store(self, name: str, key: str) -> ChunkStore:
        return ChunkStore(self.parts / f"{name}-{key}", name, say=self.say)

    def save(self, results: dict[str, Any], pending: list[str]) -> None:
        """Write the results so far (``complete`` false while suites are ``pending``)."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.out, {**results, **self.header, "complete": not pending,
                                     "suites_pending": pending})

    def suite_done(self, name: str, key: str) -> None:
        """The suite's chunks are no longer needed once its result is in the results file."""
        shutil.rmtree(self.parts / f"{name}-{key}", ignore_errors=True)

    def close(self) -> None:
        """Every suite finished: the parts folder goes (stale chunks of other keys with it)."""
        shutil.rmtree(self.parts, ignore_errors=True)
