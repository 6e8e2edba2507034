"""Which FAISS structure proposes dense candidates, chosen by corpus size or by setting.

Exact search (``flat``) compares the query with every vector, a cost that grows with the
corpus (README, performance: the ANN table). Beyond ``AUTO_FLAT_LIMIT`` papers ``auto``
switches to an inverted file with 8-bit scalar quantisation (``ivf-sq8``): its codes are a
quarter of the vectors' size, and each query reads only the lists it probes, at a recall the
same table reports. ``ivf-pq`` (48-byte
codes) needs less memory again; ``hnsw`` is a graph, the fastest and the largest, and held in
memory rather than mapped.

Whatever proposes the candidates, their scores are computed exactly from the stored float32
vectors, so an approximate index can drop a paper from the results but never misreport a score.
The README's performance table has the recall@10 against exact search of each type.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import faiss
import numpy as np

from indexing.row_space import RowSpace

# Below this many papers ``auto`` means exact search (see the module doc).
AUTO_FLAT_LIMIT = 100_000
# k-means for the IVF lists is trained on at most this many vectors per list (FAISS's own
# guidance is 30-256); more costs minutes at a million papers and gains no recall.
TRAINING_POINTS_PER_LIST = 64
HNSW_NEIGHBOURS = 32


class IndexType(StrEnum):
    AUTO = "auto"
    FLAT = "flat"
    IVF_SQ8 = "ivf-sq8"
    IVF_PQ = "ivf-pq"
    HNSW = "hnsw"


def resolve_index_type(requested: IndexType, papers: int) -> IndexType:
    if requested is not IndexType.AUTO:
        return requested
    return IndexType.FLAT if papers < AUTO_FLAT_LIMIT else IndexType.IVF_SQ8


def ivf_lists(papers: int) -> int:
    """About the square root of the corpus, as a power of two between 16 and 4096."""
    return int(min(4096, max(16, 2 ** round(math.log2(max(1.0, math.sqrt(papers)))))))


def build_ann(index_type: IndexType, vectors: np.ndarray, *, seed: int = 0) -> faiss.Index:
    """A trained FAISS index holding ``vectors`` (rows are ids), for a non-flat type."""
    papers, dimension = vectors.shape
    if index_type is IndexType.HNSW:
        description = f"HNSW{HNSW_NEIGHBOURS}"
    elif index_type is IndexType.IVF_SQ8:
        description = f"IVF{ivf_lists(papers)},SQ8"
    elif index_type is IndexType.IVF_PQ:
        # 8-bit codes need 256 training vectors per sub-quantiser; a small corpus gets fewer.
        bits = int(min(8, max(1, math.floor(math.log2(papers)))))
        description = f"IVF{ivf_lists(papers)},PQ{dimension // 8}x{bits}"
    else:
        raise ValueError(f"{index_type} has no FAISS structure")
    # L2 on unit vectors ranks exactly as inner product does, and it is what k-means (the IVF
    # lists, the PQ codebooks) assumes.
    index = faiss.index_factory(dimension, description, faiss.METRIC_L2)
    if not index.is_trained:
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.min_points_per_centroid = 1  # small corpora: no warning, the lists just get few
        if hasattr(ivf, "pq"):
            ivf.pq.cp.min_points_per_centroid = 1
        lists = ivf.nlist
        sample_size = min(papers, lists * TRAINING_POINTS_PER_LIST)
        sample = np.random.default_rng(seed).choice(papers, size=sample_size, replace=False)
        index.train(np.ascontiguousarray(vectors[np.sort(sample)]))
    for start in range(0, papers, 65_536):  # bounded memory for a memory-mapped input
        index.add(np.ascontiguousarray(vectors[start : start + 65_536]))
    return index


# Rows in the sample that estimates a query's lowest dense score (SegmentedDense.score_range).
MIN_SAMPLE = 4096


class Neighbours(NamedTuple):
    """Rows of papers near a query and their exact cosine similarity to it, side by side."""

    rows: np.ndarray
    scores: np.ndarray


class Ranked(NamedTuple):
    """``Neighbours`` with the ranking that chose them: ``keys``, larger first, are the
    exact scores for exact search and the ANN structure's own (approximate) ordering
    otherwise. The parts of a sharded index are merged on them (``SegmentedDense.merged``)
    so they keep what the whole index's ANN keeps."""

    rows: np.ndarray
    scores: np.ndarray
    keys: np.ndarray


class DenseIndex:
    """Nearest papers of one segment by meaning: exact float32 vectors, plus an ANN structure
    or not, without the segment's removed papers. Rows are the segment's own."""

    def __init__(
        self, vectors: np.ndarray, ann: faiss.Index | None, deleted: np.ndarray | None = None
    ) -> None:
        self.vectors = vectors
        self.ann = ann
        self.deleted = np.zeros(0, np.int64) if deleted is None else np.asarray(deleted, np.int64)
        self.live_count = len(vectors) - len(self.deleted)
        # Removed papers are skipped inside the ANN search, so they take no candidate's place.
        self._skip: list[faiss.IDSelector] = []
        if ann is not None and len(self.deleted):
            removed = faiss.IDSelectorBatch(self.deleted)
            self._skip = [removed, faiss.IDSelectorNot(removed)]  # the Not points at the batch

    def nearest(self, vector: np.ndarray, n: int, search_depth: int) -> Neighbours:
        """(About) the ``n`` papers closest to ``vector``, best first, with exact scores.

        Exact for a flat index. An approximate index proposes them; ``search_depth`` is its
        knob (IVF lists probed, HNSW candidate list), which the settings tune for recall.
        """
        return self.nearest_many(np.asarray(vector).reshape(1, -1), n, search_depth)[0]

    def nearest_many(self, vectors: np.ndarray, n: int, search_depth: int) -> list[Neighbours]:
        """``nearest`` for several queries in one pass: a batch costs far less than its
        queries one by one (the query encoder batches them)."""
        return [
            Neighbours(hit.rows, hit.scores) for hit in self.ranked_many(vectors, n, search_depth)
        ]

    def ranked_many(self, vectors: np.ndarray, n: int, search_depth: int) -> list[Ranked]:
        """``nearest_many`` with the ranking that chose them (``Ranked.keys``).

        The cut is deterministic: rows the ranking ties at the ``n``-th place are kept by
        ascending row, as ``SegmentedDense.merged`` breaks ties, so that the parts of an
        index keep what the whole keeps. FAISS orders tied rows as its heap leaves them,
        which depends on ``n``; so one more row than asked is fetched, and where the last
        two tie, more until the tie ends.
        """
        n = min(n, self.live_count)
        queries = np.ascontiguousarray(vectors, dtype=np.float32)
        if n <= 0:
            empty = Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))
            return [empty for _ in queries]
        found = []
        wanted = n + 1
        keys, rows = self._search(queries, wanted, search_depth)
        for query, key, row in zip(queries, keys, rows, strict=True):
            asked = wanted
            while True:
                alive = self._alive(row)
                key_alive, row_alive = key[alive], row[alive]
                limit = self._most_rows()
                if (
                    len(row_alive) <= n
                    or key_alive[n - 1] != key_alive[-1]
                    or asked >= limit
                    or int((row >= 0).sum()) < asked  # the structure holds no more
                ):
                    break
                asked = min(2 * asked, limit)
                (key,), (row,) = self._search(query[None], asked, search_depth)
            best = np.lexsort((row_alive, -key_alive))[:n]
            kept_rows, kept_keys = row_alive[best].astype(np.int64), key_alive[best]
            scores = kept_keys if self.ann is None else self.scores_at(query, kept_rows)
            found.append(Ranked(kept_rows, scores, kept_keys))
        return found

    def _alive(self, rows: np.ndarray) -> np.ndarray:
        """Which of ``rows`` (as FAISS returns them, -1 for none) are live papers."""
        alive = rows >= 0
        if len(self.deleted):
            alive &= ~np.isin(rows, self.deleted)
        return alive

    def _most_rows(self) -> int:
        """The most rows one search can return: the flat path skips tombstones itself."""
        return len(self.vectors) if self.ann is None else self.live_count

    def _search(
        self, queries: np.ndarray, n: int, search_depth: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(keys, rows) of the ``n`` best of each query, best first, -1 rows for none: a
        flat index's exact inner products, or the ANN's own distances negated (its ranking,
        approximate for quantised codes). A flat search also counts the removed rows, which
        ``_alive`` drops; the ANN skips them itself."""
        if self.ann is None:
            wanted = min(n + len(self.deleted), len(self.vectors))
            scores, rows = faiss.knn(
                queries, self.vectors, wanted, metric=faiss.METRIC_INNER_PRODUCT
            )
            return scores, rows
        distances, rows = self.ann.search(
            queries, min(n, self.live_count), params=self._search_parameters(search_depth)
        )
        return -distances, rows

    def scores_at(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact cosine similarity of the given rows to one normalised query vector.

        Each row's product is summed on its own (einsum, not BLAS): BLAS's matrix-vector
        product rounds a row's last bit by where it falls in its blocks, so a paper would
        score differently with other rows beside it, and a shard (``indexing.shards``)
        would not score it exactly as the whole index does.
        """
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        scores: np.ndarray = np.einsum("ij,j->i", self.vectors[rows], query)
        return scores

    def _search_parameters(self, search_depth: int) -> faiss.SearchParameters:
        if isinstance(self.ann, faiss.IndexHNSW):
            # faiss's stubs leave SearchParametersHNSW out; the class exists at run time.
            hnsw: Any = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            hnsw.efSearch = search_depth
            parameters: faiss.SearchParameters = hnsw
        else:
            # Field by field: the stubs allow no keyword arguments (at run time they only set
            # fields).
            parameters = faiss.SearchParametersIVF()
            parameters.nprobe = search_depth
        if self._skip:
            parameters.sel = self._skip[1]
        return parameters


class SegmentedDense:
    """Nearest papers over every segment, in the index's rows (see ``row_space``): each
    segment is searched (exactly, or through its ANN structure) and the best of all are kept,
    with the same exact scores one index of the same papers would give."""

    def __init__(self, parts: Sequence[DenseIndex], rows: RowSpace, sample: np.ndarray) -> None:
        self.parts = list(parts)
        self.rows = rows
        # ``sample``: the rows of a fixed sample of papers (``PaperColumns.in_sample``), whose
        # lowest score to a query stands in for the corpus minimum that hybrid scaling needs,
        # without scoring every paper. Chosen by paper, not by row, so any index of the same
        # papers, in segments or not, takes the same sample and gives the same scores.
        self._sample = self.vectors_at(sample)

    def __len__(self) -> int:
        return self.rows.size

    def nearest(self, vector: np.ndarray, n: int, search_depth: int) -> Neighbours:
        return self.nearest_many(np.asarray(vector).reshape(1, -1), n, search_depth)[0]

    def nearest_many(self, vectors: np.ndarray, n: int, search_depth: int) -> list[Neighbours]:
        """Each segment's own best, the best ``n`` of them kept by their exact scores.

        Segments are not parts of one ANN structure: a segment added since the last merge
        has none and is searched exactly, so its candidates and the base segment's ANN
        candidates compete on what is comparable, their exact scores (the base's quantised
        estimates would favour whichever way its codes round). The shards of one index are
        merged on their ANN's own ranking instead (``ranked_many``, ``merged``).
        """
        found = [
            [
                Ranked(hit.rows, hit.scores, hit.scores)
                for hit in part.ranked_many(vectors, n, search_depth)
            ]
            for part in self.parts
        ]
        return self.merged(found, len(vectors), n)

    def ranked_many(self, vectors: np.ndarray, n: int, search_depth: int) -> list[Ranked]:
        """``DenseIndex.ranked_many`` of an index of one segment (a shard), in its rows."""
        if len(self.parts) != 1:
            raise ValueError("the ANN's own ranking is that of an index of one segment")
        found = self.parts[0].ranked_many(vectors, n, search_depth)
        return [hit._replace(rows=self.rows.to_global(0, hit.rows)[0]) for hit in found]

    def merged(self, found: Sequence[Sequence[Ranked]], queries: int, n: int) -> list[Neighbours]:
        """The best ``n`` of each query by ``keys`` over every part's own best
        (``found[part][query]``, in the part's local rows), with their exact scores, in the
        index's rows: the one merge of segments and of the shards of a sharded index
        (``service.shards``). Ties by row, as each part cuts its own (``ranked_many``)."""
        if len(found) == 1:  # the usual case after a build or a merge: rows are local
            return [Neighbours(self.rows.to_global(0, hit.rows)[0], hit.scores) for hit in found[0]]
        merged = []
        for query in range(queries):
            rows = [self.rows.to_global(i, hits[query].rows)[0] for i, hits in enumerate(found)]
            keys = np.concatenate([hits[query].keys for hits in found])
            scores = np.concatenate([hits[query].scores for hits in found])
            all_rows = np.concatenate(rows)
            best = np.lexsort((all_rows, -keys))[:n]
            merged.append(Neighbours(all_rows[best], scores[best]))
        return merged

    def scores_at(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        scores = np.empty(len(rows), dtype=np.float32)
        for segment, positions, local in self.rows.split(rows):
            scores[positions] = self.parts[segment].scores_at(vector, local)
        return scores

    def vectors_at(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        dimension = self.parts[0].vectors.shape[1]
        vectors = np.empty((len(rows), dimension), dtype=np.float32)
        for segment, positions, local in self.rows.split(rows):
            # Sorted reads of a memory-mapped file, put back in the order asked.
            order = np.argsort(local, kind="stable")
            vectors[positions[order]] = self.parts[segment].vectors[local[order]]
        return vectors

    def score_range(self, vector: np.ndarray, best: float) -> tuple[float, float]:
        """(lowest, highest) score over the corpus; the low end is estimated from a sample."""
        if not len(self._sample):
            return best, best
        low = float((self._sample @ np.asarray(vector, dtype=np.float32).reshape(-1)).min())
        return min(low, best), best


def read_ann(path: Path, *, mapped: bool = True) -> faiss.Index:
    """The one way an ANN file is read.

    ``mapped`` (serving): memory-mapped and read-only where FAISS supports it, so workers
    share the pages. Not mapped (updating): held in memory, because an update derives the next
    structure from a clone of this one, and FAISS cannot clone memory-mapped IVF lists.
    """
    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mapped else 0
    return faiss.read_index(str(path), flags)


def refilled_ann(current: faiss.Index, index_type: IndexType, vectors: np.ndarray) -> faiss.Index:
    """The structure for ``vectors`` without training it again (a merge's): an IVF index is
    refilled from scratch with its trained lists (seconds even at a million papers), and an
    HNSW graph, which cannot drop nodes, is rebuilt."""
    if index_type is IndexType.HNSW:
        return build_ann(index_type, vectors)
    index = faiss.clone_index(current)
    index.reset()
    for start in range(0, len(vectors), 65_536):
        index.add(np.ascontiguousarray(vectors[start : start + 65_536]))
    return index
