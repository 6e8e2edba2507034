"""Answering queries: the operations the HTTP routes, the CLI and `papersearch eval` share."""

from __future__ import annotations

import asyncio
import ctypes
import gc
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from indexing.lexical import TermLocator, analyse
from indexing.manifest import checked_build
from indexing.reader import BuiltOnce, PaperIndex
from indexing.records import Paper, embedding_text
from models import Embedder, load_embedder
from service.corpus_overview import CorpusOverview
from service.errors import PaperNotFound, QueryTooLong, TextTooLong, TitleNotFound
from service.filters import NO_FILTERS, SearchFilters
from service.highlights import highlight
from service.learned_ranking import (
    FEATURES,
    RANKER_FILE,
    LearnedRanker,
    Window,
    reordered,
    window_features,
)
from service.query_encoder import Encoded, NearestSearch, QueryEncoder
from service.query_syntax import QuerySyntax, holds, parse_query
from service.ranking import (
    RERANK_DEPTH,
    Fusion,
    FusionConfig,
    SearchMode,
    SortOrder,
    best_first,
    hybrid_scores,
    newest_first,
    with_recency,
)
from service.schemas import (
    CitedPaper,
    PaperPage,
    RecommendRequest,
    RecommendResponse,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SimilarPage,
    SimilarTextRequest,
    SimilarToPaperResponse,
    SimilarToTextResponse,
    SimilarToTitleResponse,
    TitleLookup,
    TitleMatch,
    TitleSuggestion,
)
from service.settings import Settings
from service.titles import TitleMatcher, typed_arxiv_id

# How many of a query's top hits are checked for being the paper the query names.
NAMED_PAPER_DEPTH = 20
# Candidates a search ranks besides the page it returns: this many nearest papers by meaning,
# and this many best by BM25. On SciFact this gives the same nDCG@10 and Recall@100 as scoring
# every paper (README, quality), while the cost no longer grows with the corpus.
CANDIDATES = 1000
# How many of a text's terms BM25 matches papers on, when papers like it are sought.
KEY_TERMS = 20
# From this many papers a search's own work (BM25 postings, filter masks) leaves the event
# loop for a worker thread (see ``SearchEngine.search_async``).
OFF_LOOP_PAPERS = 100_000
# What ``SearchEngine.warm_up`` searches for.
WARM_UP_QUERY = "warm-up"


@dataclass(frozen=True)
class Scored:
    """Paper rows and a score for each, side by side."""

    rows: np.ndarray
    scores: np.ndarray

    def best(self, default: float) -> float:
        return float(self.scores.max()) if len(self.scores) else default

    def within(self, allowed: np.ndarray | None) -> Scored:
        """Those whose rows pass a filter's mask (all of them without one)."""
        if allowed is None:
            return self
        passing = allowed[self.rows]
        return Scored(self.rows[passing], self.scores[passing])

    def scores_at(self, rows: np.ndarray) -> np.ndarray:
        """The score of each of ``rows``; 0 for a row absent here. ``self.rows`` ascending."""
        scores = np.zeros(len(rows), dtype=np.float32)
        if len(self.rows):
            found_at = np.searchsorted(self.rows, rows).clip(max=len(self.rows) - 1)
            present = self.rows[found_at] == rows
            scores[present] = self.scores[found_at[present]]
        return scores


@dataclass(frozen=True)
class _Ranking:
    """What ranking needs besides the query's vector: the mode, the terms, how many
    candidates the page needs, the filter's mask and the BM25 matches."""

    mode: SearchMode
    terms: list[str]
    wanted: int  # candidates the page needs: past the offset, named papers, the date pool
    allowed: np.ndarray | None  # the filter's mask over every row; None without a filter
    lexical: tuple[np.ndarray, np.ndarray]  # rows holding a query term, ascending; BM25
    learned: bool = False  # a search whose hybrid ranking the learned fusion reorders


@dataclass(frozen=True)
class _StartedSearch:
    """A search between its two halves (``SearchEngine._start_search``): the request, what
    ranking needs, and the query's vector on its way (None in lexical mode)."""

    request: SearchRequest
    ranking: _Ranking
    encoding: Future[Encoded] | None


def limit_blas_threads() -> None:
    """Set once per process, as it starts serving: the model already runs on every core, and
    numpy's BLAS threads (the dense scoring) would spin-wait for work after each product and
    slow the next query's encoding down (README, performance). One thread is enough for a
    matrix-vector product."""
    threadpool_limits(limits=1, user_api="blas")


def release_freed_memory() -> None:
    """Hand the heap that loading freed back to the operating system: reading an index makes
    short-lived objects by the thousand, which glibc would keep for reuse. (Mapping every
    large array on its own, so that a search's arrays are returned too, cost a fifth of a
    search's time at 75,000 papers: glibc keeps their heap, the working set of one search.)"""
    libc = _glibc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


class SearchEngine:
    """An index plus the model that embeds queries for it; loaded once, shared by all requests."""

    def __init__(self, index: PaperIndex, queries: QueryEncoder, settings: Settings) -> None:
        self.index = index
        self.queries = queries
        self.settings = settings
        self.search_depth = settings.search_depth
        self.title_match_threshold = settings.title_match_threshold
        self.default_mode = settings.search_mode
        self.fusion = FusionConfig(settings.fusion, settings.dense_weight, settings.rrf_k)
        self.ranker = None
        if settings.fusion is Fusion.LEARNED:
            self.ranker = LearnedRanker.load(settings.ranker or RANKER_FILE)
        self.date_sort_pool = settings.date_sort_pool
        self._titles = BuiltOnce(lambda: TitleMatcher(index.title_parts(), index.rows))
        self._overview = BuiltOnce(lambda: CorpusOverview.of(index))

    @classmethod
    def load(cls, settings: Settings) -> SearchEngine:
        """Check the index before the slow model load, so a stale or damaged one fails at
        once with what to run (its files' checksums are skipped where ``serve`` has just
        verified this build: ``verified_build``)."""
        limit_blas_threads()
        checked = checked_build(
            settings.index_dir,
            model=settings.model,
            backend=settings.backend,
            verified=settings.verified_build,
        )
        # The index's own backend: its papers' vectors and the queries' must come from one.
        embedder = load_embedder(
            settings.model, checked.manifest.backend, threads=settings.model_threads
        )
        if settings.index_dir.resolve() != checked.build:
            # A build swapped in while the model loaded (the old one may be gone by now):
            # serve the new one, checked the same way, with the model just loaded.
            checked = checked_build(
                settings.index_dir, model=settings.model, backend=embedder.backend
            )
        index = PaperIndex.open_checked(checked, dimension=embedder.dimension)
        queries = QueryEncoder(
            embedder, max_batch=settings.query_batch_size, cache_size=settings.query_cache_size
        )
        return cls(index, queries, settings)

    @property
    def embedder(self) -> Embedder:
        return self.queries.embedder

    @property
    def titles(self) -> TitleMatcher:
        return self._titles.get()

    @property
    def overview(self) -> CorpusOverview:
        """Facets and map, built once per engine: a reloaded index gets a new engine, and
        so a new overview."""
        return self._overview.get()

    def warm_up(self) -> SearchEngine:
        """Do now what the first requests would otherwise wait for: the model's and the
        index's first search (onnxruntime sizes its buffers on its first run: tens of
        milliseconds), and what only some requests need, the facets and the map (a second at
        a million papers; the filter columns and the title matcher are mapped files, read as
        they are used). A server does it in the background once it is ready, in every worker,
        and before it swaps a reloaded index in; the CLI needs none of it."""
        nearest = NearestSearch(self.index.dense, CANDIDATES, self.search_depth)
        self.queries.submit(WARM_UP_QUERY, nearest).result()
        _ = self.index.columns, self.titles, self.overview
        # What is loaded now lives as long as the engine: out of the garbage collector's
        # sight, a full collection no longer walks it, which stalled every request of a
        # worker for tens of milliseconds, a few times a minute under load.
        gc.freeze()
        release_freed_memory()
        return self

    def close(self) -> None:
        self.queries.close()
        self.index.close()

    def search(self, request: SearchRequest) -> SearchResponse:
        """Rank the candidates that pass the filters, then cut the requested page."""
        started = self._start_search(request)
        encoded = started.encoding.result() if started.encoding else None
        return self._finish_search(started, encoded)

    async def search_async(self, request: SearchRequest) -> SearchResponse:
        """``search`` for an event loop: it waits for the query's vector without holding a
        thread. The rest runs on the loop itself where it is a millisecond of Python, and a
        thread pool would only add hand-overs (the interpreter lock runs one at a time); in
        an index of ``OFF_LOOP_PAPERS`` or more, where BM25's postings and a filter's mask
        take milliseconds to tens of them, in a worker thread, so that one search never
        holds up every other request. Always in a worker thread over a sharded index, whose
        calls wait on its shards."""
        off_loop = self.index.remote or len(self.index) >= OFF_LOOP_PAPERS
        if off_loop:
            started = await asyncio.to_thread(self._start_search, request)
        else:
            started = self._start_search(request)
        encoded = None
        if started.encoding is not None:
            encoded = await asyncio.wrap_future(started.encoding)
        if off_loop:
            return await asyncio.to_thread(self._finish_search, started, encoded)
        return self._finish_search(started, encoded)

    def _start_search(self, request: SearchRequest) -> _StartedSearch:
        """Everything a search does before it needs the query's vector, which is asked for
        last. (Asked for first, so that BM25 ran beside the model, both got slower: they
        compete for the interpreter lock and for the cores the model runs on.)"""
        if len(request.q) > self.settings.max_query_chars:
            raise QueryTooLong(len(request.q), self.settings.max_query_chars)
        mode = request.mode or self.default_mode
        wanted = max(request.offset + request.k, NAMED_PAPER_DEPTH)
        if request.sort is SortOrder.DATE:
            wanted = max(wanted, self.date_sort_pool)
        syntax = parse_query(request.q)
        ranking = self._ranking(mode, analyse(syntax.text), wanted, request)
        # Learned fusion reorders the blend's top papers, which a date order never looks at.
        learned = self.ranker is not None and request.sort is not SortOrder.DATE
        ranking = replace(ranking, learned=learned)
        if syntax.constrains and mode is not SearchMode.DENSE:
            ranking = replace(ranking, allowed=self._words_mask(syntax, ranking.allowed))
        encoding = None
        if mode is not SearchMode.LEXICAL:
            nearest = NearestSearch(self.index.dense, max(CANDIDATES, wanted), self.search_depth)
            encoding = self.queries.submit(syntax.text, nearest)
        return _StartedSearch(request, ranking, encoding)

    def _words_mask(self, syntax: QuerySyntax, allowed: np.ndarray | None) -> np.ndarray:
        """The filter's mask narrowed to papers that hold every quoted phrase and none of the
        excluded words: a mask over every paper, as a filter is, so pages stay full. A
        phrase is looked for only in the papers that hold all its terms (from BM25's
        postings), in order in their title and abstract."""
        keep = np.ones(len(self.index), dtype=bool) if allowed is None else allowed.copy()
        for phrase in syntax.phrases:
            holding = np.zeros(len(keep), dtype=bool)
            holding[self._rows_holding(phrase)] = True
            keep &= holding
        for words in syntax.excluded:
            keep[self._rows_holding(words)] = False
        return keep

    def _rows_holding(self, phrase: tuple[str, ...]) -> np.ndarray:
        """Rows (ascending) of the papers holding ``phrase``'s terms in order: those with
        every term (BM25's postings), then, for several terms, those with them in order."""
        rows = self.index.lexical.matches([phrase[0]])[0]
        for term in phrase[1:]:
            rows = np.intersect1d(rows, self.index.lexical.matches([term])[0], assume_unique=True)
        if len(phrase) > 1 and len(rows):
            papers = self.index.papers_at(rows.tolist())
            rows = rows[[holds(analyse(embedding_text(paper)), phrase) for paper in papers]]
        return rows

    def _ranking(
        self, mode: SearchMode, terms: list[str], wanted: int, filters: SearchFilters
    ) -> _Ranking:
        lexical = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        if mode is not SearchMode.DENSE:
            lexical = self.index.lexical.matches(terms)
        return _Ranking(mode, terms, wanted, filters.mask(self.index), lexical)

    def _finish_search(self, started: _StartedSearch, encoded: Encoded | None) -> SearchResponse:
        """Candidates -> fusion -> page -> hits, each step its own method below."""
        request = started.request
        candidates, total, _ = self._candidates(started.ranking, encoded)
        page, page_scores, total = self._page(request, candidates, total)
        terms = TermLocator(frozenset(started.ranking.terms)) if request.highlight else None
        return SearchResponse(
            query=request.q,
            mode=started.ranking.mode,
            sort=request.sort,
            k=request.k,
            offset=request.offset,
            total=total,
            results=self._hits(page, page_scores, terms),
        )

    def _candidates(
        self, ranking: _Ranking, encoded: Encoded | None
    ) -> tuple[Scored, int, Window | None]:
        """The papers worth ranking with their relevance, how many papers the query can
        page through (``total``), and where learned fusion ranks, the window it reorders.

        Without filters, the candidates are the ``CANDIDATES`` nearest papers and the best
        BM25 matches; nothing proportional to the corpus is allocated. With filters, the
        filter is evaluated over every paper (that is also what ``total`` counts); when too
        few of the nearest papers pass it, every passing paper is scored, so a narrow filter
        still fills its page.
        """
        lexical = Scored(*ranking.lexical)
        lexical_max = lexical.best(default=0.0)  # over the corpus: filters must not change it
        lexical = lexical.within(ranking.allowed)
        if encoded is None:  # a keyword search returns only papers with a term
            return lexical, len(lexical.rows), None
        vector, found = encoded
        assert found is not None
        nearest = Scored(*found)
        best_dense = nearest.best(default=-1.0)  # the corpus's best, as for BM25
        allowed = ranking.allowed
        total = len(self.index) if allowed is None else int(allowed.sum())
        dense = self._dense_candidates(ranking, vector, nearest.within(allowed), lexical, total)
        if ranking.mode is SearchMode.DENSE:
            return dense, total, None
        bm25 = lexical.scores_at(dense.rows)
        dense_range = self.index.dense_range(vector, best_dense)
        fused = hybrid_scores(
            dense.scores, bm25, self.fusion, dense_range=dense_range, lexical_max=lexical_max
        )
        if not ranking.learned or not len(fused):
            return Scored(dense.rows, fused), total, None
        window = self._learned_window(
            ranking, dense, nearest.scores, bm25, fused, dense_range, lexical_max
        )
        if self.ranker is not None:
            fused = reordered(fused, window.positions, self.ranker.scores(window.features))
        return Scored(dense.rows, fused), total, window

    def _learned_window(
        self,
        ranking: _Ranking,
        dense: Scored,
        nearest: np.ndarray,
        bm25: np.ndarray,
        blend: np.ndarray,
        dense_range: tuple[float, float],
        bm25_best: float,
    ) -> Window:
        """The blend's best ``RERANK_DEPTH`` candidates and what the ranking model reads of
        them (``learned_ranking.FEATURES``). A paper's rank by meaning is counted among the
        corpus's ``CANDIDATES`` nearest (``nearest``: their scores; one further down ranks
        ``CANDIDATES``), so no filter or page depth changes what the model reads."""
        positions = best_first(dense.rows, blend, RERANK_DEPTH)
        rows = dense.rows[positions]
        descending = np.sort(-nearest)[:CANDIDATES]
        terms = list(dict.fromkeys(ranking.terms))
        titles = [set(analyse(title)) for title in self.titles.titles_of_rows(rows)]
        held_in_title = np.array([[term in title for title in titles] for term in terms], bool)
        features = window_features(
            dense=dense.scores[positions],
            bm25=bm25[positions],
            blend=blend[positions],
            dense_range=dense_range,
            bm25_best=bm25_best,
            dense_rank=np.searchsorted(descending, -dense.scores[positions]),
            lengths=self.index.lexical.lengths_at(rows),
            idfs=np.array(list(self.index.lexical.idfs(terms).values()), dtype=np.float64),
            held=self.index.lexical.holding(terms, rows),
            held_in_title=held_in_title.reshape(len(terms), len(rows)),
        )
        return Window(positions, features)

    def learning_window(self, query: str) -> tuple[list[str], np.ndarray]:
        """The ids of the papers learned fusion reorders for ``query`` (hybrid, no filters)
        and their features: what `benchmarks/train_ranker.py` trains on, computed by the code
        that serves, so training and serving cannot feed the model differently."""
        started = self._start_search(SearchRequest(q=query, mode=SearchMode.HYBRID))
        encoded = started.encoding.result() if started.encoding else None
        candidates, _, window = self._candidates(replace(started.ranking, learned=True), encoded)
        if window is None:
            return [], np.zeros((0, len(FEATURES)), dtype=np.float32)
        papers = self.index.papers_at(candidates.rows[window.positions])
        return [paper.id for paper in papers], window.features

    def _dense_candidates(
        self,
        ranking: _Ranking,
        vector: np.ndarray,
        nearest: Scored,
        lexical: Scored,
        total: int,
    ) -> Scored:
        """The rows to rank with their dense scores: the nearest papers that pass the
        filter, every passing paper where too few do, and in hybrid mode the best BM25
        matches too, so a paper that matches the words well is ranked however far it is."""
        allowed = ranking.allowed
        if allowed is not None and len(nearest.rows) < min(ranking.wanted, total):
            rows = np.flatnonzero(allowed)
            return Scored(rows, self.index.dense_scores_at(vector, rows))
        if ranking.mode is not SearchMode.HYBRID:
            return nearest
        best_lexical = lexical.rows[best_first(lexical.rows, lexical.scores, CANDIDATES)]
        extra = np.setdiff1d(best_lexical, nearest.rows, assume_unique=True)
        return Scored(
            np.concatenate([nearest.rows, extra]),
            np.concatenate([nearest.scores, self.index.dense_scores_at(vector, extra)]),
        )

    def _page(
        self, request: SearchRequest, candidates: Scored, total: int
    ) -> tuple[np.ndarray, list[float], int]:
        """The requested page's rows, their scores, and ``total`` as the order counts it:
        by relevance (a named paper first), or the most relevant ``date_sort_pool`` newest
        first."""
        rows, scores = candidates.rows, candidates.scores
        if request.recency is not None and len(rows):
            published = self.index.columns.published[rows]
            scores = with_recency(scores, published, request.recency, date.today().toordinal())
        stop = request.offset + request.k
        if request.sort is SortOrder.DATE:
            pool = best_first(rows, scores, self.date_sort_pool)
            score_of = dict(zip(rows[pool].tolist(), scores[pool].tolist(), strict=True))
            page = newest_first(rows[pool], self.index.columns.published)[request.offset : stop]
            return page, [score_of[row] for row in page.tolist()], len(pool)
        ranking = self._named_papers_first(request.q, rows, scores)
        positions = best_first(rows, ranking, stop)[request.offset :]
        return rows[positions], scores[positions].tolist(), total

    def paper(self, paper_id: str) -> CitedPaper:
        row = self.index.row_of(paper_id)
        if row is None:
            raise PaperNotFound(paper_id)
        return CitedPaper.of(self.index.papers_at([row])[0])

    def list_papers(self, limit: int, offset: int) -> PaperPage:
        return PaperPage(
            total=len(self.index),
            limit=limit,
            offset=offset,
            papers=[CitedPaper.of(paper) for paper in self.index.list_papers(limit, offset)],
        )

    def similar_to_paper(
        self,
        paper_id: str,
        k: int = 10,
        *,
        offset: int = 0,
        filters: SearchFilters = NO_FILTERS,
    ) -> SimilarToPaperResponse:
        (row,) = self._rows([paper_id])
        paper = CitedPaper.of(self.index.papers_at([row])[0])
        page = self._more_like(self.index.vector(row), [row], [], k, offset, filters)
        return SimilarToPaperResponse(paper=paper, **_fields(page))

    def similar_to_title(self, lookup: TitleLookup) -> SimilarToTitleResponse:
        """The paper a typed title (or arXiv id or URL) names, and the papers like it."""
        row, score = self._named_by(lookup.title)
        paper = self.index.papers_at([row])[0]
        matched = TitleMatch(**paper.model_dump(), match_score=score)
        page = self._more_like(self.index.vector(row), [row], [], lookup.k, lookup.offset, lookup)
        return SimilarToTitleResponse(matched=matched, **_fields(page))

    def similar_to_text(self, request: SimilarTextRequest) -> SimilarToTextResponse:
        """Papers like a pasted text: its whole length embedded (in windows the model can
        read, combined) and its key terms through BM25, fused as a search is."""
        if len(request.text) > self.settings.max_text_chars:
            raise TextTooLong(len(request.text), self.settings.max_text_chars)
        vector = self.embedder.encode_long(request.text)
        terms = self.key_terms(request.text)
        page = self._rank_like(vector, terms, [], request.k, request.offset, request)
        return SimilarToTextResponse(key_terms=terms, **_fields(page))

    def recommend(self, request: RecommendRequest) -> RecommendResponse:
        """Papers like the positive examples and unlike the negative ones, never an example
        itself (the strategy: README, search quality)."""
        positive = self._rows(request.positive)
        negative = self._rows(request.negative)
        page = self._more_like(
            self._example_vector(positive, negative),
            positive,
            negative,
            request.k,
            request.offset,
            request,
        )
        return RecommendResponse(
            positive=request.positive, negative=request.negative, **_fields(page)
        )

    def key_terms(self, text: str) -> list[str]:
        """A text's most distinctive terms (count times idf), as Lucene's more-like-this
        picks them: all of an abstract's terms would match nearly every paper."""
        counts = Counter(analyse(text))
        idfs = self.index.lexical.idfs(counts)  # one question, not one a term (shards)
        weight = {term: n * idfs[term] for term, n in counts.items()}
        ranked = sorted((t for t, w in weight.items() if w > 0), key=lambda t: (-weight[t], t))
        return ranked[:KEY_TERMS]

    def papers(self, paper_ids: Sequence[str]) -> list[CitedPaper]:
        """Several papers by id, in the order asked; every unknown id named in one 404."""
        return [CitedPaper.of(paper) for paper in self.index.papers_at(self._rows(paper_ids))]

    def _rows(self, paper_ids: Sequence[str]) -> list[int]:
        """The rows of papers by id; every unknown id is named, once, in one 404."""
        rows = [self.index.row_of(paper_id) for paper_id in paper_ids]
        unknown = [paper_id for paper_id, row in zip(paper_ids, rows, strict=True) if row is None]
        if unknown:
            raise PaperNotFound(*dict.fromkeys(unknown))
        return [row for row in rows if row is not None]

    def _named_by(self, typed: str) -> tuple[int, float]:
        """The row a typed title names, and how closely (0-100); an arXiv id or URL names
        its paper exactly. A 404 with the closest titles when none matches well."""
        arxiv_id = typed_arxiv_id(typed)
        if arxiv_id is not None:
            row = self.index.row_of_arxiv(arxiv_id)
            if row is None:
                raise PaperNotFound(f"arxiv:{arxiv_id}")
            return row, 100.0
        candidates = self.titles.closest(typed)
        if not candidates or candidates[0].score < self.title_match_threshold:
            suggestions = [
                TitleSuggestion(id=paper.id, title=c.title, match_score=c.score)
                for c, paper in zip(
                    candidates, self.index.papers_at([c.row for c in candidates]), strict=True
                )
            ]
            raise TitleNotFound(typed, suggestions)
        return candidates[0].row, candidates[0].score

    def _example_vector(self, positive: Sequence[int], negative: Sequence[int]) -> np.ndarray:
        """One query vector for a set of examples: the positives' mean, pushed away from
        the negatives' mean by as much again (Qdrant's average-vector strategy)."""
        vectors = self.index.vectors_at(sorted(positive))
        vector = vectors.mean(axis=0)
        if negative:
            unlike = self.index.vectors_at(sorted(negative))
            vector = 2 * vector - unlike.mean(axis=0)
        unit: np.ndarray = (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)
        return unit

    def _more_like(
        self,
        vector: np.ndarray,
        examples: Sequence[int],
        unlike: Sequence[int],
        k: int,
        offset: int,
        filters: SearchFilters,
    ) -> SimilarPage:
        """Papers like ``vector``, on the examples' own key terms too, never an example."""
        terms = self.key_terms("\n".join(embedding_text(p) for p in self.index.papers_at(examples)))
        return self._rank_like(vector, terms, [*examples, *unlike], k, offset, filters)

    def _rank_like(
        self,
        vector: np.ndarray,
        terms: list[str],
        exclude: Sequence[int],
        k: int,
        offset: int,
        filters: SearchFilters,
    ) -> SimilarPage:
        """A page ranked as a search ranks (``similar_mode``: dense, or hybrid on ``terms``)
        from a vector already at hand, without the rows in ``exclude``."""
        wanted = offset + k + len(exclude)
        ranking = self._ranking(self.settings.similar_mode, terms, wanted, filters)
        found = self.index.nearest(vector, max(CANDIDATES, wanted), self.search_depth)
        candidates, total, _ = self._candidates(ranking, (vector, found))
        excluded = np.asarray(sorted(set(exclude)), dtype=np.int64)
        kept = ~np.isin(candidates.rows, excluded)
        rows, scores = candidates.rows[kept], candidates.scores[kept]
        allowed = ranking.allowed
        total -= len(excluded) if allowed is None else int(allowed[excluded].sum())
        positions = best_first(rows, scores, offset + k)[offset:]
        locator = TermLocator(frozenset(terms)) if terms else None
        hits = self._hits(rows[positions], scores[positions].tolist(), locator)
        return SimilarPage(
            mode=self.settings.similar_mode, offset=offset, total=total, results=hits
        )

    def _named_papers_first(self, query: str, rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Scores to rank by, with any top hit whose title or name the query is moved first.

        "Long-Term Interest Clock" should find that paper first even where another abstract
        uses the words more. Only the top hits are checked, which keeps this cheap and means
        a paper must already be relevant to be promoted.
        """
        top = best_first(rows, scores, NAMED_PAPER_DEPTH)
        named = [
            (position, match)
            for position, match in zip(
                top, self.titles.naming_scores(query, rows[top]), strict=True
            )
            if match >= self.title_match_threshold
        ]
        if not named:
            return scores
        ranking = scores.astype(np.float64)
        ceiling = float(scores.max()) + 1.0
        for position, match in named:
            ranking[position] = ceiling + match / 100  # the closer match first
        return ranking

    def _hits(
        self, rows: np.ndarray, scores: Sequence[float], highlight_terms: TermLocator | None
    ) -> list[SearchHit]:
        row_list = [int(row) for row in rows]
        highlighting = highlight_terms is not None and bool(highlight_terms.terms)
        if highlighting:  # records and sentences in one question (a shard's round trip)
            papers, spans = self._papers_with_sentences(row_list)
        else:
            papers, spans = self.index.papers_at(row_list), []
        # The records were validated as they were read: built as they are, not checked again.
        hits = [
            SearchHit.model_construct(**dict(paper), score=round(float(score), 4), highlights=[])
            for score, paper in zip(scores, papers, strict=True)
        ]
        if highlight_terms is not None and highlighting:
            weights = self.index.lexical.idfs(highlight_terms.terms)
            for hit, sentences in zip(hits, spans, strict=True):
                hit.highlights = highlight(
                    hit.abstract, sentences, highlight_terms, weights.__getitem__
                )
        return hits

    def _papers_with_sentences(
        self, rows: list[int]
    ) -> tuple[list[Paper], list[list[tuple[int, int]]]]:
        pairs = self.index.papers_with_sentences(rows)
        return [paper for paper, _ in pairs], [sentences for _, sentences in pairs]


def _fields(page: SimilarPage) -> dict[str, Any]:
    """A page's fields, for the response that extends it (its hits passed as they are)."""
    return {"mode": page.mode, "offset": page.offset, "total": page.total, "results": page.results}
