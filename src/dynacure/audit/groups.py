"""Identity-group and dialect term lists for the curation audit, and matching of documents to groups.

Groups follow the ToxiGen target groups plus gender, religion, disability and sexual orientation; a dialect
group flags African-American English style by lexical markers. Term lists are short and deliberately
high-precision: a document "mentions" a group when any term appears as a whole word (case-insensitive).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np

GROUP_TERMS: dict[str, tuple[str, ...]] = {
    "asian": ("asian", "asians"),
    "black": ("black people", "african american", "african americans", "blacks"),
    "chinese": ("chinese",),
    "jewish": ("jew", "jews", "jewish", "judaism"),
    "latino": ("latino", "latina", "latinos", "hispanic", "hispanics"),
    "lgbtq": ("lgbt", "lgbtq", "gay", "gays", "lesbian", "lesbians", "transgender", "queer", "bisexual"),
    "mental_disability": ("autistic", "autism", "schizophrenic", "bipolar", "mentally ill", "mental illness"),
    "mexican": ("mexican", "mexicans", "mexico"),
    "middle_east": ("arab", "arabs", "middle eastern", "iranian", "syrian", "syrians"),
    "muslim": ("muslim", "muslims", "islam", "islamic"),
    "native_american": ("native american", "native americans", "indigenous"),
    "physical_disability": ("disabled", "wheelchair", "blind", "deaf", "amputee"),
    "women": ("women", "woman", "girls", "female", "females", "feminist", "feminists"),
    "men": ("men", "man", "male", "males", "boys"),
    "christian": ("christian", "christians", "christianity", "catholic", "catholics"),
    "immigrants": ("immigrant", "immigrants", "refugee", "refugees", "migrants"),
}

# Lexical markers of African-American English as used in dialect-bias audits of toxicity filters
# (Sap et al. 2019; Davidson et al. 2019 show such tweets are flagged far more often).
DIALECT_TERMS: dict[str, tuple[str, ...]] = {
    "aae_markers": (
        "finna",
        "tryna",
        "ion",
        "aint",
        "ain't",
        "yall",
        "y'all",
        "bruh",
        "dat",
        "dis",
        "nah",
        "gon",
        "lil",
        "shawty",
        "deadass",
        "wassup",
        "thang",
        "homie",
        "bae",
        "lowkey",
        "sholl",
        "boutta",
        "imma",
        "ima",
        "talmbout",
        "wit",
        "dem",
    ),
}


def _pattern(terms: Iterable[str]) -> re.Pattern[str]:
    alts = sorted({re.escape(t) for t in terms}, key=len, reverse=True)
    return re.compile(r"(?<![\w'])(?:" + "|".join(alts) + r")(?![\w'])", re.IGNORECASE)


def all_groups() -> dict[str, tuple[str, ...]]:
    return {**GROUP_TERMS, **DIALECT_TERMS}


def group_membership(
    texts: list[str], groups: Mapping[str, Iterable[str]] | None = None, min_dialect_hits: int = 2
) -> dict[str, np.ndarray]:
    """Boolean mask per group over ``texts``. Dialect groups need ``min_dialect_hits`` distinct markers,
    since single markers such as "dis" or "wit" also occur in other English."""
    chosen = dict(groups) if groups is not None else all_groups()
    out: dict[str, np.ndarray] = {}
    for name, terms in chosen.items():
        pat = _pattern(terms)
        if name in DIALECT_TERMS:
            out[name] = np.array(
                [len({m.lower() for m in pat.findall(t)}) >= min_dialect_hits for t in texts]
            )
        else:
            out[name] = np.array([bool(pat.search(t)) for t in texts])
    return out
