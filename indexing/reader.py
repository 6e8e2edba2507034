"""Reading a checked build: ``PaperIndex`` for serving it, ``read_contents`` for updating it.

Both go through ``manifest.checked_build`` first, so nothing is read from a build whose
manifest was not checked and whose files were not verified.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import faiss
import numpy as np

from indexing import paper_db
from indexing.columns import PaperColumns
from indexing.index_types import DenseIndex, IndexType, Neighbours, read_ann
from indexing.manifest import (
    ANN_FILE,
    LEXICAL_DIR,
    MAP_FILE,
    PAPERS_FILE,
    VECTORS_FILE,
    CheckedBuild,
    IndexUnusable,
    Manifest,
    checked_build,
    rebuild_hint,
)
from indexing.records import Paper

if TYPE_CHECKING:
    # BM25 (bm25s, scipy) is imported where an index is opened: `serve` verifies an index
    # before its workers start, and that check needs neither.
    from indexing.lexical import LexicalIndex

T = TypeVar("T")


class BuiltOnce(Generic[T]):
    """A value built on first use, by whichever thread asks first; the others wait for it.

    What only some requests need is built this way, so a server is ready once its model and
    index are loaded, and warms the rest up in the background.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build: Callable[[], T] | None = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            if self._build is not None:
                self._value = self._build()
                self._build = None
        return self._value  # type: ignore[return-value]


def _ann(checked: CheckedBuild, *, mapped: bool) -> faiss.Index | None:
    """The build's approximate-index structure (see ``read_ann``); None for a flat index."""
    if checked.manifest.index_type is IndexType.FLAT:
        return None
    return read_ann(checked.build / ANN_FILE, mapped=mapped)


@dataclass
class IndexContents:
    """Everything an index holds, in memory: what an incremental update reads and rewrites."""

    papers: list[Paper]
    vectors: np.ndarray
    sentences: list[list[tuple[int, int]]]
    manifest: Manifest
    ann: faiss.Index | None  # None for a flat index
    map_points: np.ndarray  # (papers, 2) float32, row for row with the vectors


def read_contents(checked: CheckedBuild) -> IndexContents:
    """The whole of a build in memory, the BM25 index aside (an update recomputes it)."""
    build = checked.build
    try:
        db = paper_db.open_read_only(build / PAPERS_FILE)
        try:
            papers, sentences = paper_db.all_papers(db)
        finally:
            db.close()
        return IndexContents(
            papers=papers,
            vectors=np.load(build / VECTORS_FILE, allow_pickle=False),
            sentences=sentences,
            manifest=checked.manifest,
            ann=_ann(checked, mapped=False),
            map_points=np.load(build / MAP_FILE, allow_pickle=False),
        )
    except (RuntimeError, OSError, ValueError, sqlite3.Error) as exc:
        raise _damaged(checked.index_dir, exc) from exc


class PaperIndex:
    """A loaded index: vectors, the BM25 index and the paper records they point to."""

    def __init__(
        self,
        checked: CheckedBuild,
        vectors: np.ndarray,
        ann: faiss.Index | None,
        lexical: LexicalIndex,
        db: sqlite3.Connection,
        map_points: np.ndarray,
    ) -> None:
        self.index_dir = checked.index_dir
        self.build_dir = checked.build  # what the link pointed to when this was opened
        self.manifest = checked.manifest
        self.vectors = vectors  # (papers, dimension) float32, memory-mapped, read-only
        self.dense = DenseIndex(vectors, ann)
        self.lexical = lexical
        self.map_points = map_points  # (papers, 2) float32 in [-1, 1], read-only
        self._db = db
        self._db_lock = threading.Lock()  # one connection, shared by the server's threads
        self._columns = BuiltOnce(self._read_columns)

    @property
    def columns(self) -> PaperColumns:
        """The filter columns, read on first use (noticeable at tens of thousands of papers): a
        server reads them in the background once it is ready (``SearchEngine.warm_up``)."""
        return self._columns.get()

    def _read_columns(self) -> PaperColumns:
        with self._db_lock:
            return PaperColumns.read(self._db)

    @classmethod
    def open(
        cls,
        index_dir: Path,
        *,
        model: str,
        backend: str | None = None,
        dimension: int | None = None,
    ) -> PaperIndex:
        """Load and cross-check an index; fail fast with a rebuild hint on any mismatch.

        ``backend`` is the one whose query vectors will search it (None: whichever built it).
        """
        checked = checked_build(index_dir, model=model, backend=backend)
        return cls.open_checked(checked, dimension=dimension)

    @classmethod
    def open_checked(cls, checked: CheckedBuild, *, dimension: int | None = None) -> PaperIndex:
        """``open`` for a build ``checked_build`` has just checked: a caller that needs the
        manifest before it opens the index (to load the model it names) reads it once."""
        index_dir, build, manifest = checked.index_dir, checked.build, checked.manifest
        try:
            vectors = np.load(build / VECTORS_FILE, mmap_mode="r", allow_pickle=False)
            ann = _ann(checked, mapped=True)
            db = paper_db.open_read_only(build / PAPERS_FILE, shared=True)
            rows = paper_db.row_count(db)
            from indexing.lexical import LexicalIndex

            lexical = LexicalIndex.load(build / LEXICAL_DIR)
            # Small, and sent whole by the map endpoint: held in memory.
            map_points = np.load(build / MAP_FILE, allow_pickle=False)
        except (RuntimeError, OSError, ValueError, sqlite3.Error) as exc:
            raise _damaged(index_dir, exc) from exc
        count, width = vectors.shape if vectors.ndim == 2 else (-1, -1)
        ann_count = ann.ntotal if ann is not None else count
        map_count, map_width = map_points.shape if map_points.ndim == 2 else (-1, -1)
        found = (count, ann_count, rows, lexical.size, map_count, width, map_width)
        expected = (manifest.paper_count,) * 5 + (manifest.dimension, 2)
        dtypes = (vectors.dtype, map_points.dtype)
        if (
            found != expected
            or dtypes != (np.float32, np.float32)
            or (dimension and dimension != width)
        ):
            raise IndexUnusable(
                f"inconsistent index at {index_dir}: manifest says {manifest.paper_count} "
                f"papers of dimension {manifest.dimension}, found {count} vectors of "
                f"dimension {width} ({ann_count} in the ANN index), {rows} records, "
                f"{lexical.size} BM25 documents and {map_count} {MAP_FILE} points of dimension "
                f"{map_width} (2 expected): {rebuild_hint(index_dir)}"
            )
        map_points.flags.writeable = False
        return cls(checked, vectors, ann, lexical, db, map_points)

    def __len__(self) -> int:
        return len(self.vectors)

    def nearest(self, vector: np.ndarray, n: int, search_depth: int) -> Neighbours:
        return self.dense.nearest(vector, n, search_depth)

    def dense_scores_at(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return self.dense.scores_at(vector, rows)

    def dense_range(self, vector: np.ndarray, best: float) -> tuple[float, float]:
        return self.dense.score_range(vector, best)

    def vector(self, row: int) -> np.ndarray:
        return np.array(self.vectors[row])

    def vectors_at(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The stored vectors of the given rows, in the given order, as an in-memory array."""
        return np.asarray(self.vectors[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def paper_ids(self) -> list[str]:
        """Every paper's id, in row order."""
        return [paper_id for paper_id, _, _, _ in self.map_labels()]

    def row_of(self, paper_id: str) -> int | None:
        with self._db_lock:
            return paper_db.row_of(self._db, paper_id)

    def row_of_arxiv(self, arxiv_id: str) -> int | None:
        """The paper with this arXiv id: ``arxiv:<id>`` as most corpora name it, else
        whichever paper records it under another id."""
        row = self.row_of(f"arxiv:{arxiv_id}")
        if row is not None:
            return row
        with self._db_lock:
            return paper_db.row_of_arxiv(self._db, arxiv_id)

    def papers_at(self, rows: Sequence[int]) -> list[Paper]:
        """Records for the given rows, in the given order."""
        with self._db_lock:
            records = paper_db.records_at(self._db, rows)
        return [paper_db.decode_paper(record) for record in records]

    def sentences_at(self, rows: Sequence[int]) -> list[list[tuple[int, int]]]:
        """Sentence ``(start, end)`` offsets into each row's abstract, in the given order."""
        with self._db_lock:
            stored = paper_db.sentences_at(self._db, rows)
        return [paper_db.decode_spans(spans) for spans in stored]

    def list_papers(self, limit: int, offset: int) -> list[Paper]:
        with self._db_lock:
            records = paper_db.records_page(self._db, limit, offset)
        return [paper_db.decode_paper(record) for record in records]

    def titles(self) -> list[tuple[int, str]]:
        """(row, title) of every paper that has a title: what title look-ups search."""
        with self._db_lock:
            return paper_db.titles(self._db)

    def map_labels(self) -> list[tuple[str, str | None, str | None, str | None]]:
        """(id, title, category, arxiv_id) of every paper in row order, row ``i`` labelling
        ``map_points[i]``."""
        with self._db_lock:
            return paper_db.map_labels(self._db)

    def category_lists(self) -> list[list[str]]:
        """Every paper's categories as written, in row order (for the facets' counts)."""
        with self._db_lock:
            return paper_db.category_lists(self._db)

    def close(self) -> None:
        with self._db_lock:
            self._db.close()


def _damaged(index_dir: Path, exc: BaseException) -> IndexUnusable:
    return IndexUnusable(f"damaged index at {index_dir} ({exc}): {rebuild_hint(index_dir)}")
