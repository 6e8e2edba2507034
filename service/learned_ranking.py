"""Learned fusion: a LambdaMART model reorders the blend's best ``RERANK_DEPTH`` papers.

The blend weighs a paper's two scores the same way for every query. A ranking model trained
on judged queries (SciFact train, cross-validated, `benchmarks/train_ranker.py`) also reads
what the blend cannot: how much of the query's weight a paper holds in its text and in its
title, how long it is, how many terms the query has, where its meaning ranks. All of it is
what a search has already computed or reads from the index's own postings and titles, so
nothing is embedded again. The model reorders only the blend's top ``RERANK_DEPTH``: a paper
further down keeps the blend's order below them, so Recall@100 is the blend's own.

The model is a LightGBM text file shipped in the package (``rankers/``); its feature names
are checked against ``FEATURES`` when it loads, so a model and the code that feeds it
cannot drift apart. It is not the default: trained on SciFact's claims it gains there and
loses on a second kind of query (known-item search over arXiv), and it costs milliseconds a
search (README, search quality); ``fusion=blend`` is the hand-tuned blend.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import lightgbm
import numpy as np
from lightgbm.basic import LightGBMError

from indexing.errors import PapersearchError
from service.ranking import scaled_dense, scaled_lexical

# The model shipped with the package, trained by `benchmarks/train_ranker.py`.
RANKER_FILE = Path(__file__).parent / "rankers" / "scifact-lambdamart.txt.gz"

GZIP_MAGIC = b"\x1f\x8b"

# What the model reads of each candidate, in this order; the names are stored in its file.
FEATURES: tuple[str, ...] = (
    "dense",  # cosine of the query's and the paper's vectors
    "bm25",  # the paper's BM25 for the query
    "dense_scaled",  # the cosine scaled 0-1 over the corpus, as the blend scales it
    "bm25_scaled",  # BM25 over the corpus's best, as the blend scales it
    "blend",  # the hand-tuned blend of the two
    "dense_gap",  # the cosine minus the corpus's best cosine for the query
    "dense_rank",  # log(1 + rank) of the cosine among the corpus's nearest 1,000, capped
    "length",  # the paper's terms (BM25's document length)
    "query_terms",  # the query's distinct terms
    "coverage",  # the share of the query's idf the paper's text holds
    "title_coverage",  # the share of the query's idf the paper's title holds
)


class RankerUnusable(PapersearchError, RuntimeError):
    """The ranking model is missing, damaged or was trained on other features."""

    status = 503  # as an unusable index: the service cannot rank as configured
    code = "ranker_unusable"


@dataclass(frozen=True)
class Window:
    """The candidates the model reorders (positions into the search's candidate arrays) and
    one row of ``FEATURES`` for each."""

    positions: np.ndarray
    features: np.ndarray


def window_features(
    *,
    dense: np.ndarray,
    bm25: np.ndarray,
    blend: np.ndarray,
    dense_range: tuple[float, float],
    bm25_best: float,
    dense_rank: np.ndarray,
    lengths: np.ndarray,
    idfs: np.ndarray,
    held: np.ndarray,
    held_in_title: np.ndarray,
) -> np.ndarray:
    """``FEATURES`` of each candidate of a window, one row each.

    ``dense``, ``bm25``, ``blend``, ``dense_rank`` (0 for the nearest) and ``lengths`` are
    per candidate; ``idfs`` per distinct query term; ``held``/``held_in_title`` are
    ``(terms, candidates)`` booleans.
    """
    total_idf = float(idfs.sum()) or 1.0
    columns = (
        dense,
        bm25,
        scaled_dense(dense, dense_range),
        scaled_lexical(bm25, bm25_best),
        blend,
        dense - dense_range[1],
        np.log1p(dense_rank),
        lengths,
        np.full(len(dense), len(idfs)),
        idfs @ held / total_idf,
        idfs @ held_in_title / total_idf,
    )
    return np.column_stack(columns).astype(np.float32)


class LearnedRanker:
    """The LambdaMART model, loaded once per engine; predicting a window of 100 papers takes
    a fraction of a millisecond, on one thread (the model and the encoder have the cores)."""

    def __init__(self, booster: lightgbm.Booster) -> None:
        names = tuple(booster.feature_name())
        if names != FEATURES:
            raise RankerUnusable(
                f"the ranking model reads {', '.join(names)}; this code computes "
                f"{', '.join(FEATURES)}: retrain it (benchmarks/train_ranker.py)"
            )
        self.booster = booster

    @classmethod
    def load(cls, path: Path = RANKER_FILE) -> LearnedRanker:
        try:
            with path.open("rb") as handle:
                raw = handle.read()
            text = gzip.decompress(raw) if raw[:2] == GZIP_MAGIC else raw
            booster = lightgbm.Booster(model_str=text.decode("utf-8"))
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, LightGBMError) as exc:
            raise RankerUnusable(f"{path}: cannot load the ranking model ({exc})") from None
        return cls(booster)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """The model's output for each candidate, in the order it ranks them."""
        return np.asarray(self.booster.predict(features, num_threads=1), dtype=np.float64)


def reordered(blend: np.ndarray, window: np.ndarray, learned: np.ndarray) -> np.ndarray:
    """Scores 0-1 in the new order: the window (positions into ``blend``) takes the upper half
    of the scale, spread by the model's output, and every other candidate the lower half, in
    the blend's order. (A logistic of the output would tie the best papers at float32's 1.0:
    LambdaMART's outputs run to tens.)"""
    low, high = float(learned.min()), float(learned.max())
    spread = (learned - low) / (high - low) if high > low else np.ones_like(learned)
    scores = (blend * 0.5).astype(np.float32)
    scores[window] = (0.5 + 0.5 * spread).astype(np.float32)
    return scores
