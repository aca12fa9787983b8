"""Utility signal ``quality``: C4/Gopher-style text-quality heuristics and information density.

The heuristics follow Gopher (Rae et al. 2021, "MassiveText quality filter") with its published thresholds;
``score`` is the share of those rules a document passes and ``gopher_pass`` is 1 when it passes them all.

Information density uses a reference language model: a word-bigram model with interpolated Kneser-Ney
smoothing over a hashed vocabulary (no vocabulary file, any text scores), trained on a clean reference set
(WikiText-2 *valid*, or texts passed in). ``ref_ppl`` is the per-word perplexity of a document under it.
``density`` is high for moderate perplexity (prose like the reference) and low at both ends: gibberish has a
very high perplexity, and boilerplate repetition is caught by the document's own zlib compression ratio,
which a static bigram model cannot see. The model is saved as safetensors arrays + JSON metadata.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dynacure.io.jsonfile import check_version
from dynacure.signals.base import Resources, Signal, register_signal

log = logging.getLogger(__name__)

# --- heuristics -----------------------------------------------------------------------------------

# Gopher's required stop words: a real English document contains at least two of them.
GOPHER_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})

# A small English stop-word list for the stop-word share (function words only, lowercase).
STOP_WORDS = frozenset({
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at",
    "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could",
    "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has",
    "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if",
    "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor",
    "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out",
    "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs",
    "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too",
    "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who",
    "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself", "yourselves",
})

BULLETS = ("•", "●", "○", "◦", "▪", "▫", "‣", "⁃", "·", "*", "-", "–", "—", "+", "►", "✓", "✔")
ELLIPSES = ("...", "…")
_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~«»“”‘’…–—•·")
_ALPHA = re.compile(r"[^\W\d_]")

# (column, comparison, threshold) of the Gopher rules; the published values.
GOPHER_RULES: tuple[tuple[str, str, float], ...] = (
    ("n_words", ">=", 50),
    ("n_words", "<=", 100_000),
    ("mean_word_length", ">=", 3),
    ("mean_word_length", "<=", 10),
    ("symbol_to_word", "<=", 0.1),
    ("bullet_line_frac", "<=", 0.9),
    ("ellipsis_line_frac", "<=", 0.3),
    ("alpha_word_frac", ">=", 0.8),
    ("gopher_stop_words", ">=", 2),
    ("dup_line_frac", "<=", 0.3),
    ("top2gram_frac", "<=", 0.2),
    ("top3gram_frac", "<=", 0.18),
)


def _top_ngram_frac(words: Sequence[str], n: int, total_chars: int) -> float:
    """Share of word characters inside the most frequent word n-gram (Gopher); 0 if no n-gram repeats."""
    if len(words) < n or total_chars == 0:
        return 0.0
    counts = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    gram, count = counts.most_common(1)[0]
    if count <= 1:
        return 0.0
    return min(1.0, sum(len(w) for w in gram) * count / total_chars)


def heuristics(text: str) -> dict[str, float]:
    """The Gopher quality measurements of one document (see ``GOPHER_RULES`` for how they are judged)."""
    raw_words = text.split()
    # Gopher counts words that are not pure punctuation (a lone "-" or "|" is not a word).
    words = [w for w in raw_words if any(ch not in _PUNCT for ch in w)]
    n_words = len(words)
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    n_lines = len(lines)
    lower = [w.lower().strip("".join(_PUNCT)) for w in words]
    word_chars = sum(len(w) for w in words)
    n_symbols = text.count("#") + text.count("...") + text.count("…")
    out: dict[str, float] = {
        "n_words": float(n_words),
        "mean_word_length": word_chars / n_words if n_words else 0.0,
        "symbol_to_word": n_symbols / n_words if n_words else (1.0 if n_symbols else 0.0),
        "ellipsis_line_frac": (sum(ln.endswith(ELLIPSES) for ln in lines) / n_lines) if n_lines else 0.0,
        "bullet_line_frac": (sum(ln.startswith(BULLETS) for ln in lines) / n_lines) if n_lines else 0.0,
        "dup_line_frac": ((n_lines - len(set(lines))) / n_lines) if n_lines else 0.0,
        "top2gram_frac": _top_ngram_frac(lower, 2, word_chars),
        "top3gram_frac": _top_ngram_frac(lower, 3, word_chars),
        "stopword_share": (sum(w in STOP_WORDS for w in lower) / n_words) if n_words else 0.0,
        "alpha_word_frac": (sum(bool(_ALPHA.search(w)) for w in raw_words) / len(raw_words))
        if raw_words else 0.0,
        "gopher_stop_words": float(len(GOPHER_STOP_WORDS.intersection(lower))),
    }
    return out


def rule_results(h: dict[str, float]) -> list[bool]:
    ops = {">=": float.__ge__, "<=": float.__le__}
    return [ops[op](float(h[col]), float(thr)) for col, op, thr in GOPHER_RULES]


# --- reference language model ---------------------------------------------------------------------

LM_KIND = "ref_bigram_kn"
LM_FORMAT_VERSION = 1
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_DIGIT = re.compile(r"\d")
_BOS = "<s>"  # cannot come out of the tokenizer (no '<' in a word), so it never collides with text


def lm_words(text: str) -> list[str]:
    """Lowercased word tokens with every digit mapped to 0 (numbers are one family, not 10^k types)."""
    return [_DIGIT.sub("0", w) for w in _WORD.findall(text.lower())]


def clean_wikitext(lines: Iterable[str]) -> list[str]:
    """WikiText-2 lines -> paragraphs of plain text: no headings, no <unk>, the @-@ joiners undone."""
    out = []
    for line in lines:
        s = line.strip()
        if not s or (s.startswith("=") and s.endswith("=")):
            continue
        s = s.replace("<unk>", " ").replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
        out.append(s)
    return out


class ReferenceLM:
    """Word-bigram LM, interpolated Kneser-Ney, hashed vocabulary of ``2**bits`` buckets.

    P(w|v) = max(c(v,w) - d, 0)/c(v) + d * N1+(v.)/c(v) * Pcont(w); Pcont(w) = (N1+(.w) + a) / (N1+(..) + a*V)
    (add-``a`` on the continuation distribution so words never seen in the reference keep a small mass).
    """

    def __init__(self, bits: int, discount: float, alpha: float, keys: np.ndarray, counts: np.ndarray,
                 ctx_count: np.ndarray, ctx_types: np.ndarray, cont_types: np.ndarray,
                 meta: dict[str, Any] | None = None) -> None:
        self.bits = bits
        self.size = 1 << bits
        self.discount = float(discount)
        self.alpha = float(alpha)
        self.keys = keys.astype(np.int64)
        self.counts = counts.astype(np.float64)
        self.ctx_count = ctx_count.astype(np.float64)
        self.ctx_types = ctx_types.astype(np.float64)
        total = float(cont_types.sum())
        self.p_cont = (cont_types.astype(np.float64) + self.alpha) / (total + self.alpha * self.size)
        self._cont_types = cont_types
        self.meta: dict[str, Any] = dict(meta or {})
        self._bucket_cache: dict[str, int] = {}
        self.bos = self._bucket(_BOS)

    # hashing: crc32 is stable across processes and Python versions (unlike hash()).
    def _bucket(self, word: str) -> int:
        b = self._bucket_cache.get(word)
        if b is None:
            b = zlib.crc32(word.encode("utf-8")) & (self.size - 1)
            if len(self._bucket_cache) < 500_000:
                self._bucket_cache[word] = b
        return b

    @classmethod
    def train(cls, texts: Iterable[str], bits: int = 18, alpha: float = 0.1,
              description: str = "") -> ReferenceLM:
        size = 1 << bits
        prev_l: list[int] = []
        cur_l: list[int] = []
        probe = cls(bits, 0.75, alpha, np.zeros(0, np.int64), np.zeros(0), np.zeros(size), np.zeros(size),
                    np.zeros(size))
        n_tokens = 0
        for text in texts:
            ids = [probe._bucket(w) for w in lm_words(text)]
            if not ids:
                continue
            n_tokens += len(ids)
            prev_l.append(probe.bos)
            prev_l.extend(ids[:-1])
            cur_l.extend(ids)
        if not cur_l:
            raise ValueError("reference language model: the reference texts contain no words")
        prev = np.asarray(prev_l, dtype=np.int64)
        cur = np.asarray(cur_l, dtype=np.int64)
        keys, counts = np.unique(prev * size + cur, return_counts=True)
        n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
        discount = n1 / (n1 + 2 * n2) if n1 + n2 > 0 else 0.75
        ctx_count = np.bincount(prev, minlength=size)
        ctx_types = np.bincount(keys // size, minlength=size)
        cont_types = np.bincount(keys % size, minlength=size)
        meta = {"n_tokens": n_tokens, "n_bigram_types": int(len(keys)), "reference": description}
        return cls(bits, discount, alpha, keys, counts.astype(np.int64), ctx_count, ctx_types, cont_types,
                   meta)

    def log_probs(self, words: Sequence[str]) -> np.ndarray:
        """Natural-log probability of each word given the previous one (the first given <s>)."""
        if not words:
            return np.zeros(0)
        cur = np.fromiter((self._bucket(w) for w in words), dtype=np.int64, count=len(words))
        prev = np.empty_like(cur)
        prev[0] = self.bos
        prev[1:] = cur[:-1]
        return self._log_probs(prev, cur)

    def _log_probs(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        key = prev * self.size + cur
        pos = np.searchsorted(self.keys, key)
        pos_c = np.minimum(pos, len(self.keys) - 1)
        found = self.keys[pos_c] == key
        c = np.where(found, self.counts[pos_c], 0.0)
        cv = self.ctx_count[prev]
        pc = self.p_cont[cur]
        seen = cv > 0
        safe = np.where(seen, cv, 1.0)
        p = np.where(seen, np.maximum(c - self.discount, 0.0) / safe
                     + self.discount * self.ctx_types[prev] / safe * pc, pc)
        return np.log(p)

    def perplexities(self, texts: Sequence[str]) -> np.ndarray:
        """Per-word perplexity of each text; NaN for a text without words. Batched: one lookup per batch."""
        toks = [lm_words(t) for t in texts]
        lens = np.array([len(t) for t in toks], dtype=np.int64)
        out = np.full(len(texts), np.nan)
        if lens.sum() == 0:
            return out
        cur = np.fromiter((self._bucket(w) for t in toks for w in t), dtype=np.int64, count=int(lens.sum()))
        prev = np.empty_like(cur)
        prev[1:] = cur[:-1]
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        nz = lens > 0
        prev[starts[nz]] = self.bos
        lp = self._log_probs(prev, cur)
        sums = np.add.reduceat(lp, starts[nz])
        out[nz] = np.exp(-sums / lens[nz])
        return out

    # --- persistence: safetensors + JSON, no pickle -------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        from dynacure.signals.models import SavedModel, save_model

        meta = dict(self.meta)
        meta.update({"bits": self.bits, "discount": self.discount, "alpha": self.alpha,
                     "lm_format_version": LM_FORMAT_VERSION})
        arrays = {"keys": self.keys, "counts": self.counts.astype(np.int64),
                  "ctx_count": self.ctx_count.astype(np.int64), "ctx_types": self.ctx_types.astype(np.int64),
                  "cont_types": self._cont_types.astype(np.int64)}
        return save_model(folder, SavedModel(kind=LM_KIND, arrays=arrays, meta=meta))

    @classmethod
    def load(cls, folder: str | Path) -> ReferenceLM:
        from dynacure.signals.models import load_model

        saved = load_model(folder, LM_KIND)
        m = check_version(saved.meta, Path(folder) / "meta.json", LM_FORMAT_VERSION,
                          field="lm_format_version")
        a = saved.arrays
        return cls(int(m["bits"]), float(m["discount"]), float(m["alpha"]), a["keys"], a["counts"],
                   a["ctx_count"], a["ctx_types"], a["cont_types"], meta=m)


def compress_ratio(text: str) -> float:
    """zlib-compressed bytes / raw bytes: English prose ~0.35-0.6, boilerplate repetition far lower."""
    raw = text.encode("utf-8")
    if not raw:
        return 1.0
    return len(zlib.compress(raw, 6)) / len(raw)


def fit_density(lm: ReferenceLM, heldout: Sequence[str]) -> None:
    """Centre the density on the reference's own held-out paragraphs: mean and spread of log-perplexity."""
    ppl = lm.perplexities([t for t in heldout if lm_words(t)])
    logp = np.log(ppl[np.isfinite(ppl)])
    if len(logp) < 2:
        raise ValueError("reference language model: need at least 2 held-out texts with words")
    lm.meta["log_ppl_mean"] = float(logp.mean())
    lm.meta["log_ppl_std"] = float(logp.std())
    lm.meta["n_heldout"] = int(len(logp))


def reference_lm_from_texts(texts: Sequence[str], bits: int = 18, heldout_every: int = 10,
                            description: str = "texts passed in") -> ReferenceLM:
    """Train on all texts but every ``heldout_every``-th, and centre the density on those held out."""
    texts = [t for t in texts if t.strip()]
    held = texts[::heldout_every]
    train = [t for i, t in enumerate(texts) if i % heldout_every]
    if not train or len(held) < 2:
        raise ValueError(f"reference language model: need at least {2 * heldout_every} reference texts, "
                         f"got {len(texts)}")
    lm = ReferenceLM.train(train, bits=bits, description=description)
    fit_density(lm, held)
    return lm


def wikitext_reference_lm(data_dir: str | Path | None = None, bits: int = 18) -> ReferenceLM:
    """The default reference: WikiText-2 *valid* paragraphs (raises FileNotFoundError when absent)."""
    from dynacure.io.public_data import wikitext2

    paras = clean_wikitext(wikitext2("valid", data_dir=data_dir))
    return reference_lm_from_texts(paras, bits=bits, description="wikitext-2 valid")


REFERENCE_LM = "reference_lm"  # folder name of a saved reference LM next to the other demo models
DEMO_REFERENCE_DOCS = 1500


def train_demo_reference_lm(out_dir: str | Path, seed: int, n_docs: int = DEMO_REFERENCE_DOCS) -> Path:
    """A reference LM from clean generated demo text (no public data), saved to ``out_dir/reference_lm``.

    The demo's stand-in for WikiText-2: ``seed`` should differ from the pool's, so the reference is
    prose of the same kinds as the pool's clean documents but not the pool itself.
    """
    from dynacure.io.demo_corpus import generate_demo_corpus

    docs = generate_demo_corpus(n_docs=n_docs, toxic_share=0.0, low_quality_share=0.0, seed=seed)
    desc = f"generate_demo_corpus(n_docs={n_docs}, toxic_share=0, low_quality_share=0, seed={seed})"
    lm = reference_lm_from_texts([d.text for d in docs], description=desc)
    lm.meta["seed"] = seed
    return lm.save(Path(out_dir) / REFERENCE_LM)


# --- the signal -----------------------------------------------------------------------------------

QUALITY_COLUMNS = ("n_words", "mean_word_length", "symbol_to_word", "ellipsis_line_frac", "bullet_line_frac",
                   "dup_line_frac", "top2gram_frac", "top3gram_frac", "stopword_share", "alpha_word_frac",
                   "gopher_pass", "score", "ref_ppl", "compress_ratio", "density")
LM_COLUMNS = ("ref_ppl", "density")  # the columns that need a reference language model


@register_signal("quality")
class QualitySignal(Signal):
    """Gopher heuristics + information density under a reference LM.

    The reference LM comes from, in order: ``lm_path`` (a saved model folder), ``reference_texts``, or
    WikiText-2 valid under ``data_dir``. Without any of them the signal leaves the columns that need it
    (``LM_COLUMNS``) out of its output by name, with a warning and in ``params()["dropped_columns"]``, so
    the heuristics still work on a machine without the public data and no all-NaN column reaches a
    selector or a policy's features.
    """

    name = "quality"
    columns = QUALITY_COLUMNS
    resources = Resources(cpus=1.0, batch_size=512)

    def __init__(self, lm_path: str | None = None, reference_texts: Sequence[str] | None = None,
                 data_dir: str | None = None, density_width: float = 1.5, min_compress_ratio: float = 0.3,
                 min_density_chars: int = 200) -> None:
        # density_width floors the log-ppl spread (nats): web text is further from Wikipedia than
        # Wikipedia's own paragraphs are from each other, and should not be punished for that alone.
        self.density_width = float(density_width)
        self.min_compress_ratio = float(min_compress_ratio)
        self.min_density_chars = int(min_density_chars)
        self._source = "none"
        self.lm: ReferenceLM | None = None
        self.dropped: tuple[str, ...] = ()
        if lm_path is not None:
            self.lm = ReferenceLM.load(lm_path)
            self._source = f"model:{lm_path}"
        elif reference_texts is not None:
            self.lm = reference_lm_from_texts(list(reference_texts))
            self._source = f"texts:{len(reference_texts)}"
        else:
            try:
                self.lm = wikitext_reference_lm(data_dir)
                self._source = "wikitext-2 valid"
            except FileNotFoundError as exc:
                self.dropped = LM_COLUMNS
                self.columns = tuple(c for c in QUALITY_COLUMNS if c not in LM_COLUMNS)  # type: ignore[misc]
                log.warning(
                    "quality: no reference language model (%s); columns %s left out (give the signal "
                    "lm_path=<saved reference_lm folder>, reference_texts or data_dir=<folder with "
                    "wikitext-2>)", exc, ", ".join(f"quality__{c}" for c in LM_COLUMNS))

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"reference": self._source, "density_width": self.density_width,
                             "min_compress_ratio": self.min_compress_ratio,
                             "min_density_chars": self.min_density_chars,
                             "dropped_columns": list(self.dropped)}
        if self.lm is not None:
            p.update({k: self.lm.meta.get(k) for k in ("log_ppl_mean", "log_ppl_std", "n_tokens")})
        return p

    def density(self, ppl: np.ndarray, ratios: np.ndarray, n_chars: np.ndarray) -> np.ndarray:
        """exp(-z^2/2) on log-perplexity relative to the reference, times a repetition factor from zlib."""
        assert self.lm is not None
        mu = float(self.lm.meta["log_ppl_mean"])
        sigma = max(float(self.lm.meta["log_ppl_std"]), self.density_width)
        with np.errstate(invalid="ignore"):
            z = (np.log(ppl) - mu) / sigma
            fit = np.exp(-0.5 * z**2)
        # Short texts barely compress whatever they say (zlib's header), so the factor only applies
        # once there is enough text for the ratio to mean something.
        rep = np.clip(ratios / self.min_compress_ratio, 0.0, 1.0)
        rep = np.where(n_chars >= self.min_density_chars, rep, 1.0)
        return np.where(np.isfinite(fit), fit * rep, 0.0)

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        n = len(texts)
        cols: dict[str, np.ndarray] = {c: np.zeros(n, dtype=np.float64) for c in QUALITY_COLUMNS}
        for i, text in enumerate(texts):
            h = heuristics(text)
            passed = rule_results(h)
            for c in QUALITY_COLUMNS[:10]:
                cols[c][i] = h[c]
            cols["gopher_pass"][i] = float(all(passed))
            cols["score"][i] = sum(passed) / len(passed)
        cols["n_words"] = cols["n_words"].astype(np.int64)
        cols["gopher_pass"] = cols["gopher_pass"].astype(np.int8)
        ratios = np.array([compress_ratio(t) for t in texts], dtype=np.float64)
        cols["compress_ratio"] = ratios
        if self.lm is None:  # the columns are not in self.columns: leave them out rather than fill NaN
            for c in LM_COLUMNS:
                del cols[c]
        else:
            ppl = self.lm.perplexities(texts)
            cols["ref_ppl"] = ppl
            n_chars = np.array([len(t) for t in texts], dtype=np.int64)
            cols["density"] = self.density(ppl, ratios, n_chars)
        return cols


def describe_rules() -> list[str]:
    """The Gopher rules as text, for reports and ``--help``."""
    return [f"{c} {op} {thr:g}" for c, op, thr in GOPHER_RULES]


__all__ = ["QualitySignal", "ReferenceLM", "heuristics", "rule_results", "GOPHER_RULES", "STOP_WORDS",
           "compress_ratio", "reference_lm_from_texts", "wikitext_reference_lm", "clean_wikitext",
           "lm_words", "describe_rules", "train_demo_reference_lm", "REFERENCE_LM", "LM_COLUMNS"]
