"""What each strategy's curated corpus is made of: kept tokens and gold toxic share by source, per cell.

The comparison of strategies at equal budget starts with the data itself, before any model is trained:
the manifests of a RUNS folder are joined with its per-document table (source, tokens, gold toxicity
label kept in ``meta`` for analysis only) and summarised per strategy x budget (mean over seeds), so the
corpora can be read side by side (``dynacure experiment`` prints it and writes ``composition.json``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dynacure.io.atomic import write_json_atomic

ALL = "(all)"


def _gold_toxic(documents: pd.DataFrame) -> pd.Series:
    """Gold toxic label per document as 1.0/0.0, NaN where the source has no label."""
    for col in ("meta_toxic", "meta_label", "toxic"):
        if col in documents.columns:
            return pd.to_numeric(documents[col], errors="coerce").astype(float)
    return pd.Series(float("nan"), index=documents.index)


def cell_composition(manifest: pd.DataFrame, documents: pd.DataFrame) -> pd.DataFrame:
    """Per source (and ``(all)``): documents and tokens in the pool and kept, gold toxic share of kept docs.

    ``manifest`` needs ``id`` and ``decision``; ``documents`` needs ``id``, ``source`` and ``n_tokens``.
    A manifest id missing from the documents table is an error: the two come from different corpora.
    """
    docs = documents[["id", "source", "n_tokens"]].assign(gold_toxic=_gold_toxic(documents).to_numpy())
    joined = manifest[["id", "decision"]].merge(docs, on="id", how="left", validate="one_to_one")
    missing = joined["source"].isna()
    if missing.any():
        raise ValueError(f"{int(missing.sum())} manifest ids are not in the documents table "
                         f"(first: {joined.loc[missing, 'id'].iloc[0]!r}); manifest and corpus differ")
    joined["kept"] = joined["decision"] == "keep"
    rows = []
    for source, g in [*joined.groupby("source", sort=True), (ALL, joined)]:
        kept = g[g["kept"]]
        labelled = kept["gold_toxic"].dropna()
        pool_labelled = g["gold_toxic"].dropna()
        rows.append({
            "source": source,
            "pool_docs": len(g), "pool_tokens": int(g["n_tokens"].sum()),
            "kept_docs": len(kept), "kept_tokens": int(kept["n_tokens"].sum()),
            "pool_toxic_share": float(pool_labelled.mean()) if len(pool_labelled) else float("nan"),
            "kept_toxic_share": float(labelled.mean()) if len(labelled) else float("nan"),
            "kept_toxic_docs": int(labelled.sum()) if len(labelled) else 0,
        })
    out = pd.DataFrame(rows)
    total_kept = out.loc[out["source"] == ALL, "kept_tokens"].iloc[0]
    out["share_of_kept_tokens"] = out["kept_tokens"] / max(1, total_kept)
    return out


def run_composition(runs: str | Path) -> pd.DataFrame:
    """Composition of every finished cell of a RUNS folder, averaged over seeds per strategy x budget."""
    from dynacure.experiments.results import read_cell_files, read_results

    data = read_cell_files(Path(runs), read_results(runs))
    if data.documents is None or not data.manifests:
        return pd.DataFrame()
    frames = []
    for cid, man in data.manifests.items():
        cell = data.cells.get(cid, {})
        comp = cell_composition(man, data.documents)
        comp["strategy"] = cell.get("strategy", cid)
        comp["budget"] = float(cell.get("budget", float("nan")))
        comp["seed"] = cell.get("seed")
        frames.append(comp)
    every = pd.concat(frames, ignore_index=True)
    num = ["pool_docs", "pool_tokens", "kept_docs", "kept_tokens", "pool_toxic_share", "kept_toxic_share",
           "kept_toxic_docs", "share_of_kept_tokens"]
    out = every.groupby(["strategy", "budget", "source"], sort=True)[num].mean().reset_index()
    out["seeds"] = every.groupby(["strategy", "budget", "source"], sort=True)["seed"].nunique().to_numpy()
    return out


def write_composition(runs: str | Path) -> pd.DataFrame:
    """``run_composition`` written to RUNS/composition.json (records) for the report and for readers."""
    comp = run_composition(runs)
    if len(comp):
        write_json_atomic(Path(runs) / "composition.json",
                          {"format_version": 1, "rows": comp.to_dict(orient="records")})
    return comp


def wide_view(comp: pd.DataFrame) -> pd.DataFrame:
    """Rows = ``strategy @ budget`` (by budget, then strategy), columns = ``(all)`` then the sources,
    cells = ``kept tokens (gold toxic share of kept)``."""
    cells = comp.assign(
        row=comp["strategy"].astype(str) + " @ " + comp["budget"].map(lambda b: f"{b:g}"),
        text=[f"{int(round(t)):,} ({s:.1%})" if s == s else f"{int(round(t)):,} (-)"
              for t, s in zip(comp["kept_tokens"], comp["kept_toxic_share"], strict=True)],
    )
    wide = cells.pivot(index="row", columns="source", values="text").fillna("-")
    order = cells.sort_values(["budget", "strategy"]).drop_duplicates("row")["row"]
    sources = [ALL, *sorted(c for c in wide.columns if c != ALL)]
    return wide.loc[list(order), [c for c in sources if c in wide.columns]]


def markdown_view(comp: pd.DataFrame) -> str:
    """``wide_view`` as a Markdown table (for results write-ups)."""
    wide = wide_view(comp)
    lines = ["| strategy @ budget | " + " | ".join(map(str, wide.columns)) + " |",
             "|---|" + "---:|" * len(wide.columns)]
    lines += [f"| {row} | " + " | ".join(map(str, vals)) + " |" for row, vals in wide.iterrows()]
    return "\n".join(lines)
