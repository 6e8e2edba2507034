"""Pseudo-relevance feedback without a second encode, measured for benchmarks/quality.py.

Issue 20 asks whether feedback from a query's own first results helps the blend:

- Rocchio on the dense side: the query vector moved towards the mean vector of the top ``k``
  papers by dense score (their vectors are in memory, so nothing is encoded again), then a
  second dense pass over every vector with the moved query.
- RM3 on the BM25 side: terms drawn from the blend's top papers, weighted by how strongly each
  of those papers matched (a softmax of its blend score), added to the query's BM25.
- Both at once.

Nothing of this ships, so it is computed here, like the passages section: full-corpus score
arrays per query (``V @ q`` and ``LexicalIndex.scores``), the blend at the shipped weight,
and the top 100 scored by ``score_run``, the scorer ``papersearch eval`` uses. The blend's
dense range is the corpus's exact one here (the service estimates the low end from a
sample), so this section's no-feedback row is its own baseline, a hair off the modes
section's blend. Parameters are chosen on SciFact train; test and the known-item set
(chosen settings only) check the choice.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from indexing.lexical import analyse
from indexing.reader import PaperIndex
from indexing.records import embedding_text
from service.evaluation import Qrels, score_run
from service.query_encoder import QueryEncoder
from service.ranking import Fusion, FusionConfig, hybrid_scores
from service.schemas import MAX_K

BLEND = FusionConfig(Fusion.BLEND, dense_weight=0.6)  # the shipped blend weight
ROCCHIO_GRID = tuple((k, beta) for k in (3, 5, 10) for beta in (0.5, 1.0))
RM3_GRID = tuple((docs, terms, lam) for docs in (5, 10) for terms in (10, 20) for lam in (0.2, 0.4))
# RM3's feedback papers are weighted softmax(TEMPERATURE * blend score): the blend lies in
# 0-1, where a plain softmax would weigh the fifth paper almost as much as the first.
TEMPERATURE = 10.0
# Per-term BM25 arrays are cached across queries (RM3 draws the same terms again and again);
# at 75k papers one array is 300 kB, so the cache is capped by bytes, and cleared per set.
TERM_CACHE_BYTES = 1_000_000_000
TERM_CACHE_MAX = 20_000
BASELINE = "blend w=0.6, no feedback"


@dataclass(frozen=True)
class Rocchio:
    k: int
    beta: float

    @property
    def label(self) -> str:
        return f"rocchio k={self.k} beta={self.beta}"


@dataclass(frozen=True)
class RM3:
    docs: int
    terms: int
    lam: float

    @property
    def label(self) -> str:
        return f"rm3 docs={self.docs} terms={self.terms} lam={self.lam}"


@dataclass(frozen=True)
class Config:
    """One row of the table: no feedback, Rocchio, RM3 or both."""

    rocchio: Rocchio | None = None
    rm3: RM3 | None = None

    @property
    def label(self) -> str:
        parts = [p.label for p in (self.rocchio, self.rm3) if p is not None]
        return " + ".join(parts) or BASELINE


def blend(dense: np.ndarray, bm25: np.ndarray) -> np.ndarray:
    """The shipped blend over the whole corpus (exact dense range, BM25 over its best)."""
    return hybrid_scores(
        dense,
        bm25,
        BLEND,
        dense_range=(float(dense.min()), float(dense.max())),
        lexical_max=float(bm25.max()),
    )


def top(scores: np.ndarray, n: int) -> np.ndarray:
    """Rows of the ``n`` best scores, best first, ties by row (a full sort's stable order)."""
    if n >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, n)[:n]
    return part[np.lexsort((part, -scores[part]))]


class Feedback:
    """Full-corpus scores of one index, with and without feedback, for any query."""

    def __init__(self, index: PaperIndex, queries: QueryEncoder) -> None:
        self.index = index
        self.queries = queries
        self.vectors = np.ascontiguousarray(index.vectors_at(np.arange(len(index))))
        self.ids = index.paper_ids()
        self._terms: dict[int, tuple[Counter[str], int]] = {}
        size = min(TERM_CACHE_MAX, max(256, TERM_CACHE_BYTES // (4 * max(1, len(index)))))
        self.term_scores = lru_cache(maxsize=size)(self._term_scores)

    def _term_scores(self, term: str) -> np.ndarray:
        return self.index.lexical.scores([term])

    def terms_of(self, row: int) -> tuple[Counter[str], int]:
        """A paper's analysed terms (what BM25 indexed) and their count, read once."""
        if row not in self._terms:
            (paper,) = self.index.papers_at([row])
            terms = analyse(embedding_text(paper))
            self._terms[row] = (Counter(terms), len(terms))
        return self._terms[row]

    def rocchio(self, query: np.ndarray, dense: np.ndarray, config: Rocchio) -> np.ndarray:
        """Dense scores of the query moved towards its top ``k`` papers' mean vector."""
        feedback = self.vectors[top(dense, config.k)].mean(axis=0)
        moved = query + config.beta * feedback
        scores: np.ndarray = self.vectors @ (moved / np.linalg.norm(moved)).astype(np.float32)
        return scores

    def expansion(self, fused: np.ndarray, config: RM3) -> dict[str, float]:
        """RM3's terms and weights (summing to 1) from the blend's top ``docs`` papers."""
        rows = top(fused, config.docs)
        weights = np.exp(TEMPERATURE * (fused[rows] - fused[rows].max()))
        weights /= weights.sum()
        relevance: Counter[str] = Counter()
        for row, weight in zip(rows, weights, strict=True):
            counts, length = self.terms_of(int(row))
            for term, count in counts.items():
                relevance[term] += float(weight) * count / max(1, length)
        best = relevance.most_common(config.terms)
        total = sum(value for _, value in best) or 1.0
        return {term: value / total for term, value in best}

    def rm3(
        self,
        bm25: np.ndarray,
        query_terms: Sequence[str],
        expansion: dict[str, float],
        lam: float,
        term_scores: Callable[[str], np.ndarray],
    ) -> np.ndarray:
        """(1 - lam) * BM25(query) + lam * |query terms| * sum_t weight_t * BM25(t): the
        expansion scaled to the query's length, so lam means the same for short and long
        queries."""
        expanded = np.zeros_like(bm25)
        for term, weight in expansion.items():
            expanded += np.float32(weight) * term_scores(term)
        mixed: np.ndarray = (1 - lam) * bm25 + lam * len(query_terms) * expanded
        return mixed.astype(np.float32)

    def scores(self, text: str, configs: Sequence[Config]) -> dict[Config, np.ndarray]:
        """Each configuration's blend for one query, sharing what they share."""
        query = self.queries.encode(text)
        terms = analyse(text)
        dense = self.vectors @ query
        bm25 = self.index.lexical.scores(terms)
        fused = blend(dense, bm25)
        moved: dict[Rocchio, np.ndarray] = {}
        expanded: dict[RM3, np.ndarray] = {}
        out: dict[Config, np.ndarray] = {}
        for config in configs:
            dense_side, lexical_side = dense, bm25
            if config.rocchio is not None:
                if config.rocchio not in moved:
                    moved[config.rocchio] = self.rocchio(query, dense, config.rocchio)
                dense_side = moved[config.rocchio]
            if config.rm3 is not None:
                if config.rm3 not in expanded:
                    expansion = self.expansion(fused, config.rm3)
                    expanded[config.rm3] = self.rm3(
                        bm25, terms, expansion, config.rm3.lam, self.term_scores
                    )
                lexical_side = expanded[config.rm3]
            out[config] = fused if config == Config() else blend(dense_side, lexical_side)
        return out

    def evaluate(
        self, configs: Sequence[Config], queries: dict[str, str], qrels: Qrels
    ) -> dict[Config, dict[str, float]]:
        """Every configuration's metrics over the judged queries, in one pass over them."""
        judged = [q for q in qrels if q in queries]
        runs: dict[Config, dict[str, dict[str, float]]] = {c: {} for c in configs}
        for query_id in judged:
            for config, scores in self.scores(queries[query_id], configs).items():
                rows = top(scores, MAX_K)
                runs[config][query_id] = {
                    self.ids[row]: float(MAX_K - rank) for rank, row in enumerate(rows)
                }
        self.term_scores.cache_clear()  # a set's terms are mostly its own: free the memory
        return {config: score_run(runs[config], qrels, judged) for config in configs}

    def added_latency(self, texts: Sequence[str], rocchio: Rocchio, rm3: RM3) -> dict:
        """Median ms of each technique's extra work per query, nothing cached: Rocchio's mean
        of the feedback vectors, second dense pass over every vector and re-blend; RM3's
        reading and analysing of the feedback papers, term weights, one BM25 pass per
        expansion term and re-blend. The base (one dense pass, BM25, blend) for scale."""
        timings: dict[str, list[float]] = {"base": [], "rocchio": [], "rm3": []}
        for text in texts:
            query = self.queries.encode(text)  # encoding is not part of either
            terms = analyse(text)
            started = time.perf_counter()
            dense = self.vectors @ query
            bm25 = self.index.lexical.scores(terms)
            fused = blend(dense, bm25)
            timings["base"].append(time.perf_counter() - started)
            started = time.perf_counter()
            blend(self.rocchio(query, dense, rocchio), bm25)
            timings["rocchio"].append(time.perf_counter() - started)
            started = time.perf_counter()
            rows = top(fused, rm3.docs)
            weights = np.exp(TEMPERATURE * (fused[rows] - fused[rows].max()))
            weights /= weights.sum()
            relevance: Counter[str] = Counter()
            for paper, weight in zip(self.index.papers_at(rows), weights, strict=True):
                analysed = analyse(embedding_text(paper))
                for term, count in Counter(analysed).items():
                    relevance[term] += float(weight) * count / max(1, len(analysed))
            best = relevance.most_common(rm3.terms)
            total = sum(value for _, value in best) or 1.0
            expansion = {term: value / total for term, value in best}
            uncached = self._term_scores
            blend(dense, self.rm3(bm25, terms, expansion, rm3.lam, uncached))
            timings["rm3"].append(time.perf_counter() - started)
        return {name: round(statistics.median(v) * 1000, 2) for name, v in timings.items()}


def feedback_section(
    sets: dict[str, tuple[dict[str, str], Qrels, PaperIndex]],
    queries: QueryEncoder,
    timing_queries: Sequence[str],
) -> dict:
    """The grid on train and test, the choice on train, the chosen ones on every set, and
    the added latency at the largest index's size."""
    scorers: dict[int, Feedback] = {}

    def scorer(index: PaperIndex) -> Feedback:
        if id(index) not in scorers:
            scorers[id(index)] = Feedback(index, queries)
        return scorers[id(index)]

    grid = [
        Config(),
        *(Config(rocchio=Rocchio(k, beta)) for k, beta in ROCCHIO_GRID),
        *(Config(rm3=RM3(docs, terms, lam)) for docs, terms, lam in RM3_GRID),
    ]
    tuned = [name for name in ("train", "test") if name in sets]
    grid_table: dict[str, dict[str, dict[str, float]]] = {c.label: {} for c in grid}
    for name in tuned:
        queries_of, qrels, index = sets[name]
        for config, metrics in scorer(index).evaluate(grid, queries_of, qrels).items():
            grid_table[config.label][name] = metrics

    def best(kind: str) -> Config:
        candidates = [c for c in grid if getattr(c, kind) is not None]
        return max(candidates, key=lambda c: grid_table[c.label]["train"]["nDCG@10"])

    rocchio, rm3 = best("rocchio"), best("rm3")
    chosen = [Config(), rocchio, rm3, Config(rocchio=rocchio.rocchio, rm3=rm3.rm3)]
    table: dict[str, dict[str, dict[str, float]]] = {c.label: {} for c in chosen}
    for name, (queries_of, qrels, index) in sets.items():
        if name in tuned:  # the grid's figures, but for "both", which needs the choice
            for config in chosen[:3]:
                table[config.label][name] = grid_table[config.label][name]
            missing = chosen[3:]
        else:
            missing = chosen
        for config, metrics in scorer(index).evaluate(missing, queries_of, qrels).items():
            table[config.label][name] = metrics

    largest = max((index for _, _, index in sets.values()), key=len)
    assert rocchio.rocchio is not None and rm3.rm3 is not None
    latency = scorer(largest).added_latency(timing_queries, rocchio.rocchio, rm3.rm3)

    print(f"\n3. pseudo-relevance feedback (blend w={BLEND.dense_weight}, full-corpus arrays)")
    metrics_header = f"{'nDCG@10':>12}{'Recall@100':>12}{'MRR@10':>12}"
    for name in tuned:
        print(f"  grid, {name:<56}{metrics_header}")
        for label, by_set in grid_table.items():
            print(_row(label, by_set[name]))
    print(f"  chosen on train: {rocchio.label}; {rm3.label}")
    for name in sets:
        print(f"  {name:<62}{metrics_header}")
        for label, by_set in table.items():
            print(_row(label, by_set[name]))
    print(
        f"  added latency, median ms per query over {len(timing_queries)} SciFact test "
        f"queries at {len(largest)} papers (noisy: shared CPUs): base (dense pass, BM25, "
        f"blend) {latency['base']:.2f}; Rocchio +{latency['rocchio']:.2f}; "
        f"RM3 +{latency['rm3']:.2f}; both about +{latency['rocchio'] + latency['rm3']:.2f}"
    )
    return {
        "fusion": {"method": BLEND.method.value, "dense_weight": BLEND.dense_weight},
        "rm3_temperature": TEMPERATURE,
        "grid": grid_table,
        "chosen_on_train": {"rocchio": rocchio.label, "rm3": rm3.label},
        "table": table,
        "added_latency_ms_median": {
            "papers": len(largest),
            "queries": len(timing_queries),
            **latency,
        },
    }


def _row(label: str, metrics: dict[str, float]) -> str:
    return f"  {label:<62}" + "".join(f"{value:>12.4f}" for value in metrics.values())
