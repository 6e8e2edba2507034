"""Turning per-paper scores into one ordered list: modes, fusion, sorting, paging.

The functions here work on candidate arrays: ``rows`` (paper rows) and their scores, side by
side. Which papers are candidates is the search engine's business (service/search.py); here
they are fused, ordered and cut into pages. Ties are broken by row, and every candidate tied
with the last one kept is ordered too, so page ``n + 1`` starts exactly where page ``n`` ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np


class SearchMode(StrEnum):
    DENSE = "dense"
    LEXICAL = "lexical"
    HYBRID = "hybrid"


class Fusion(StrEnum):
    BLEND = "blend"
    RRF = "rrf"
    LEARNED = "learned"  # the blend, its top papers reordered by a ranking model


class SortOrder(StrEnum):
    RELEVANCE = "relevance"
    DATE = "date"


# How a person reads each choice (the page's labels, served by `GET /config`).
MODE_LABELS: dict[SearchMode, str] = {
    SearchMode.HYBRID: "Meaning and keywords",
    SearchMode.DENSE: "Meaning only",
    SearchMode.LEXICAL: "Keywords only",
}
SORT_LABELS: dict[SortOrder, str] = {
    SortOrder.RELEVANCE: "Most relevant",
    SortOrder.DATE: "Newest first",
}


# The blend's weight of the dense score (BM25 gets the rest): the best on SciFact train, and
# the blend learned fusion's models are trained over.
DENSE_WEIGHT = 0.6
# How many of the blend's best papers ``Fusion.LEARNED``'s model reorders: the depth it was
# trained at (service/learned_ranking.py).
RERANK_DEPTH = 100


@dataclass(frozen=True)
class FusionConfig:
    """How hybrid mode combines its two signals; the defaults were tuned on SciFact train.
    ``LEARNED`` blends as ``BLEND`` does, then a model reorders the top (learned_ranking)."""

    method: Fusion = Fusion.BLEND
    dense_weight: float = DENSE_WEIGHT
    rrf_k: int = 60


def hybrid_scores(
    dense: np.ndarray,
    lexical: np.ndarray,
    config: FusionConfig,
    *,
    dense_range: tuple[float, float],
    lexical_max: float,
) -> np.ndarray:
    """One relevance score per candidate from its dense and its BM25 score.

    The blend scales both scores to 0-1 over the whole corpus (``dense_range``, and BM25's
    range 0 to ``lexical_max``), so a paper's score does not depend on which other papers
    happen to be candidates. RRF uses ranks among the candidates.
    """
    if config.method is Fusion.RRF:
        fused: np.ndarray = _reciprocal_rank(dense, config.rrf_k) + _reciprocal_rank(
            lexical, config.rrf_k
        )
        return fused
    weight = config.dense_weight
    blended = weight * scaled_dense(dense, dense_range)
    blended += (1 - weight) * scaled_lexical(lexical, lexical_max)
    return blended.astype(np.float32)


def scaled_dense(dense: np.ndarray, dense_range: tuple[float, float]) -> np.ndarray:
    """Cosines scaled 0-1 over the corpus's range, as the blend weighs them."""
    low, high = dense_range
    return (dense - low) / (high - low) if high > low else np.zeros_like(dense)


def scaled_lexical(lexical: np.ndarray, lexical_max: float) -> np.ndarray:
    """BM25 scaled by the corpus's best match, as the blend weighs it."""
    return lexical / lexical_max if lexical_max > 0 else np.zeros_like(lexical)


def _reciprocal_rank(scores: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return (1.0 / (k + ranks)).astype(np.float32)


# How much of a score a recency boost may make up, at most (a paper published today gets all
# of it, one a half-life old half): enough to reorder close matches, not to raise a poor one.
RECENCY_WEIGHT = 0.2
# The page's choices of recency, as half-lives in days.
RECENCY_LABELS: dict[int, str] = {365: "Favour the past year", 1095: "Favour the past 3 years"}


def with_recency(
    scores: np.ndarray, published: np.ndarray, half_life_days: int, today: int
) -> np.ndarray:
    """Relevance blended with an exponential decay of age, as Qdrant's ``exp_decay``: each
    score scaled to the candidates' best is mixed with ``0.5 ** (age / half-life)``, so a
    boost never depends on the scale of the mode's scores. ``published`` holds day
    ordinals (-1 where unknown: such a paper gets no boost)."""
    best = float(scores.max()) if len(scores) else 0.0
    relevance = scores / best if best > 0 else np.zeros_like(scores)
    age = np.clip(today - published, 0, None).astype(np.float64)
    decay = np.where(published >= 0, 0.5 ** (age / half_life_days), 0.0)
    blended = (1 - RECENCY_WEIGHT) * relevance + RECENCY_WEIGHT * decay
    return blended.astype(np.float32)


def best_first(rows: np.ndarray, scores: np.ndarray, stop: int) -> np.ndarray:
    """Positions (into ``rows``/``scores``) of the first ``stop`` by descending score, then row.

    Every candidate tied with the last one kept is sorted too, so which of several equal scores
    lands on a page never depends on where the page ends.
    """
    if stop <= 0 or len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    positions = np.arange(len(rows))
    if len(rows) > stop:
        threshold = np.partition(scores, len(rows) - stop)[len(rows) - stop]
        positions = np.flatnonzero(scores >= threshold)
    order = np.lexsort((rows[positions], -scores[positions]))
    return positions[order][:stop]


def newest_first(rows: np.ndarray, published: np.ndarray) -> np.ndarray:
    """``rows`` (already in relevance order) reordered by date; undated papers go last."""
    # A stable sort keeps relevance order among papers of the same day.
    return rows[np.argsort(-published[rows], kind="stable")]
