"""Reading a checked build: ``PaperIndex`` for serving it, ``open_segments`` for updating it.

Both go through ``manifest.checked_build`` first, so nothing is read from a build whose
manifest was not checked and whose files were not verified. Nothing proportional to the
papers' text is held in memory: vectors, postings, filter columns and title data are
memory-mapped, records stay in SQLite and are read for the rows asked for.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import faiss
import numpy as np

from indexing import paper_db
from indexing.columns import PaperColumns
from indexing.index_types import (
    MIN_SAMPLE,
    DenseIndex,
    IndexType,
    Neighbours,
    SegmentedDense,
    read_ann,
)
from indexing.manifest import (
    ANN_FILE,
    COLUMNS_DIR,
    DELETED_FILE,
    LEXICAL_DIR,
    MAP_FILE,
    PAPERS_FILE,
    SEGMENTS_DIR,
    TITLES_DIR,
    VECTORS_FILE,
    CheckedBuild,
    IndexUnusable,
    Segment,
    checked_build,
    rebuild_hint,
)
from indexing.records import Paper
from indexing.row_space import RowSpace, live_rows
from indexing.title_index import TitleIndex

if TYPE_CHECKING:
    # BM25 (the stemmer) is imported where an index is opened: `serve` verifies an index
    # before its workers start, and that check needs none of it.
    from indexing.lexical import SegmentPostings

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


@dataclass
class OpenSegment:
    """One segment of a checked build, its files open: vectors and postings memory-mapped,
    its records through a read-only SQLite connection."""

    entry: Segment
    folder: Path
    vectors: np.ndarray  # (rows, dimension) float32, memory-mapped, read-only
    ann: faiss.Index | None
    db: sqlite3.Connection
    map_points: np.ndarray  # (rows, 2) float32
    deleted: np.ndarray  # its tombstoned rows, ascending
    live: np.ndarray | None  # its live rows, ascending; None when all are

    def postings(self) -> SegmentPostings:
        from indexing.lexical import SegmentPostings

        return SegmentPostings.open(self.folder / LEXICAL_DIR)

    def close(self) -> None:
        self.db.close()


def open_segments(checked: CheckedBuild, *, mapped: bool = True) -> list[OpenSegment]:
    """Open every segment of a checked build, cross-checking each file's shape against the
    manifest. ``mapped``: the ANN structures memory-mapped (serving), else in memory (a merge
    refills a copy of one). The caller closes them."""
    opened: list[OpenSegment] = []
    with _closed_if_damaged(checked, opened):
        for entry in checked.manifest.segments:
            opened.append(_open_segment(checked, entry, mapped=mapped))
    return opened


@contextmanager
def _closed_if_damaged(checked: CheckedBuild, segments: list[OpenSegment]) -> Iterator[None]:
    """What fails while segments are being opened closes those already open and is
    reported as a damaged index with what to run (an IndexUnusable as it is)."""
    try:
        yield
    except (RuntimeError, OSError, ValueError, sqlite3.Error) as exc:
        for segment in segments:
            segment.close()
        if isinstance(exc, IndexUnusable):
            raise
        raise _damaged(checked.index_dir, exc) from exc


def _open_segment(checked: CheckedBuild, entry: Segment, *, mapped: bool) -> OpenSegment:
    folder = checked.build / SEGMENTS_DIR / entry.name
    manifest = checked.manifest
    vectors = np.load(folder / VECTORS_FILE, mmap_mode="r", allow_pickle=False)
    ann = None
    if entry.ann and manifest.index_type is not IndexType.FLAT:
        ann = read_ann(folder / ANN_FILE, mapped=mapped)
    tables = _segment_tables(checked, entry)
    db = paper_db.open_read_only(folder / PAPERS_FILE, shared=True)
    rows = paper_db.row_count(db)
    count, width = vectors.shape if vectors.ndim == 2 else (-1, -1)
    ann_count = ann.ntotal if ann is not None else count
    found = (count, ann_count, rows, width)
    if found != (entry.rows,) * 3 + (manifest.dimension,) or vectors.dtype != np.float32:
        db.close()
        raise IndexUnusable(
            f"inconsistent index at {checked.index_dir}: the manifest says segment "
            f"{entry.name} holds {entry.rows} papers of dimension {manifest.dimension}, "
            f"found {count} vectors of dimension {width} ({ann_count} in the ANN index) and "
            f"{rows} records: {rebuild_hint(checked.index_dir)}"
        )
    return OpenSegment(
        entry, folder, vectors, ann, db, tables.map_points, tables.deleted, tables.live
    )


def _segment_tables(checked: CheckedBuild, entry: Segment) -> SegmentTables:
    """A segment's map points and tombstones read and checked against the manifest (row
    for row; tombstones ascending, within its rows): what every open of a segment reads."""
    folder = checked.build / SEGMENTS_DIR / entry.name
    map_points = np.load(folder / MAP_FILE, allow_pickle=False)
    deleted = np.zeros(0, dtype=np.int64)
    if entry.deleted:
        deleted = np.load(folder / DELETED_FILE, allow_pickle=False).astype(np.int64)
    tombstones_fit = len(deleted) == entry.deleted and (
        not len(deleted)
        or (deleted[0] >= 0 and deleted[-1] < entry.rows and bool(np.all(np.diff(deleted) > 0)))
    )
    if map_points.shape != (entry.rows, 2) or map_points.dtype != np.float32 or not tombstones_fit:
        raise IndexUnusable(
            f"inconsistent index at {checked.index_dir}: the manifest says segment "
            f"{entry.name} holds {entry.rows} papers ({entry.deleted} removed), found "
            f"{MAP_FILE} points of shape {map_points.shape} ({entry.rows}, 2 expected) and "
            f"{len(deleted)} removed rows (ascending, within its rows expected): "
            f"{rebuild_hint(checked.index_dir)}"
        )
    map_points.flags.writeable = False
    return SegmentTables(
        checked.index_dir, folder, entry, live_rows(entry.rows, deleted), map_points, deleted
    )


@dataclass(frozen=True)
class SegmentTables:
    """Where one segment's tables are read from (``PaperTables``)."""

    index_dir: Path  # what error messages name
    folder: Path
    entry: Segment
    live: np.ndarray | None
    map_points: np.ndarray  # (rows, 2) float32, checked against the manifest
    deleted: np.ndarray  # its tombstoned rows, ascending


@dataclass(frozen=True)
class PaperTables:
    """What a search reads of every paper besides its vector, postings and record: the
    filter columns, the title data and the map points (a few bytes a paper, memory-mapped
    or small), over the index's rows.

    ``PaperIndex`` opens them with the rest of its segments; the router of a sharded service
    (``service.shards``) opens only these, from every shard's folder, and asks the shards for
    the rest.
    """

    rows: RowSpace
    columns: PaperColumns
    titles: list[TitleIndex]
    map_points: np.ndarray  # (papers, 2) float32, read-only

    @classmethod
    def of(cls, segments: Sequence[SegmentTables]) -> PaperTables:
        """The tables of ``segments`` back to back, in order."""
        rows = RowSpace([s.entry.rows for s in segments], [s.live for s in segments])
        # Small (8 bytes a paper), and sent by the map endpoint: held in memory.
        map_points = np.concatenate(
            [s.map_points if s.live is None else s.map_points[s.live] for s in segments]
        )
        map_points.flags.writeable = False
        # Memory-mapped: opening them costs milliseconds at any size (only the numbers of a
        # segment with tombstones, or of several segments, are joined in memory).
        columns, titles = [], []
        for segment in segments:
            try:
                columns.append(PaperColumns.open(segment.folder / COLUMNS_DIR, segment.live))
                titles.append(TitleIndex.open(segment.folder / TITLES_DIR, segment.live))
            except (OSError, ValueError) as exc:
                raise _damaged(segment.index_dir, exc) from exc
            if (columns[-1].texts[0].rows, titles[-1].papers) != (segment.entry.rows,) * 2:
                raise IndexUnusable(
                    f"inconsistent index at {segment.index_dir}: filter columns or titles and "
                    f"records disagree on a segment's papers: {rebuild_hint(segment.index_dir)}"
                )
        return cls(rows, PaperColumns.concat(columns), titles, map_points)


def open_tables(builds: Sequence[CheckedBuild]) -> PaperTables:
    """``PaperTables`` of checked builds back to back (the shards of an index, in order),
    without opening their vectors, postings or records."""
    segments: list[SegmentTables] = []
    for checked in builds:
        with _closed_if_damaged(checked, []):
            segments.extend(_segment_tables(checked, entry) for entry in checked.manifest.segments)
    return PaperTables.of(segments)


def table_file(name: str) -> bool:
    """Whether a build's file, as its manifest names it, is one ``open_tables`` reads."""
    parts = Path(name).parts
    tables = (MAP_FILE, DELETED_FILE, COLUMNS_DIR, TITLES_DIR)
    return len(parts) > 2 and parts[0] == SEGMENTS_DIR and parts[2] in tables


class PaperIndex:
    """A loaded index: vectors, BM25 postings and the paper records they point to, over all
    its segments. Rows are the index's rows (``row_space``): the same for every part."""

    # Whether its calls wait on other processes (the shards of a sharded index), so that a
    # search must not run them on an event loop (``SearchEngine.search_async``).
    remote = False

    def __init__(self, checked: CheckedBuild, segments: list[OpenSegment]) -> None:
        from indexing.lexical import LexicalIndex

        self.index_dir = checked.index_dir
        self.build_dir = checked.build  # what the link pointed to when this was opened
        self.manifest = checked.manifest
        self.segments = segments
        self._db_lock = threading.Lock()  # the connections, shared by the server's threads
        self._use_tables(
            PaperTables.of(
                [
                    SegmentTables(
                        self.index_dir, s.folder, s.entry, s.live, s.map_points, s.deleted
                    )
                    for s in segments
                ]
            )
        )
        postings = [segment.postings() for segment in segments]
        if any(p.size != s.entry.rows for p, s in zip(postings, segments, strict=True)):
            raise IndexUnusable(
                f"inconsistent index at {self.index_dir}: BM25 postings and records disagree "
                f"on a segment's papers: {rebuild_hint(self.index_dir)}"
            )
        self.lexical = LexicalIndex([(p, s.live) for p, s in zip(postings, segments, strict=True)])
        self.dense = SegmentedDense(
            [DenseIndex(s.vectors, s.ann, s.deleted) for s in segments],
            self.rows,
            sample=self.columns.in_sample(MIN_SAMPLE),
        )

    def _use_tables(self, tables: PaperTables) -> None:
        self.rows = tables.rows
        self.columns = tables.columns
        self._titles = tables.titles
        self.map_points = tables.map_points

    def title_parts(self) -> list[TitleIndex]:
        """Each segment's title data, in segment order (with ``rows``, what a title matcher
        searches)."""
        return list(self._titles)

    @classmethod
    def open(
        cls,
        index_dir: Path,
        *,
        model: str | None = None,
        backend: str | None = None,
        dimension: int | None = None,
        shard: bool = False,
    ) -> PaperIndex:
        """Load and cross-check an index; fail fast with a rebuild hint on any mismatch.

        ``model`` and ``backend`` are those whose query vectors will search it (None:
        whichever built it). ``shard``: a shard may be opened (``checked_build``).
        """
        checked = checked_build(index_dir, model=model, backend=backend, shard=shard)
        return cls.open_checked(checked, dimension=dimension)

    @classmethod
    def open_checked(cls, checked: CheckedBuild, *, dimension: int | None = None) -> PaperIndex:
        """``open`` for a build ``checked_build`` has just checked: a caller that needs the
        manifest before it opens the index (to load the model it names) reads it once."""
        if dimension:
            check_dimension(checked.index_dir, checked.manifest.dimension, dimension)
        segments = open_segments(checked)
        with _closed_if_damaged(checked, segments):
            index = cls(checked, segments)
        return index

    def __len__(self) -> int:
        return self.rows.size

    def nearest(self, vector: np.ndarray, n: int, search_depth: int) -> Neighbours:
        return self.dense.nearest(vector, n, search_depth)

    def dense_scores_at(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return self.dense.scores_at(vector, rows)

    def dense_range(self, vector: np.ndarray, best: float) -> tuple[float, float]:
        return self.dense.score_range(vector, best)

    def vector(self, row: int) -> np.ndarray:
        vector: np.ndarray = self.dense.vectors_at([row])[0]
        return vector

    def vectors_at(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The stored vectors of the given rows, in the given order, as an in-memory array."""
        return self.dense.vectors_at(rows)

    def paper_ids(self) -> list[str]:
        """Every paper's id, in row order."""
        with self._db_lock:
            return [
                paper_id
                for segment in self.segments
                for paper_id in _live(paper_db.ids(segment.db), segment.live)
            ]

    def row_of(self, paper_id: str) -> int | None:
        """The row of the paper with this id: the live copy, in whichever segment holds it."""
        with self._db_lock:
            found = [paper_db.row_of(segment.db, paper_id) for segment in self.segments]
        return self._live_row(found)

    def row_of_arxiv(self, arxiv_id: str) -> int | None:
        """The paper with this arXiv id: ``arxiv:<id>`` as most corpora name it, else
        whichever paper records it under another id."""
        row = self.row_of(f"arxiv:{arxiv_id}")
        if row is not None:
            return row
        return self.row_recording_arxiv(arxiv_id)

    def row_recording_arxiv(self, arxiv_id: str) -> int | None:
        """The first live paper whose record gives this arXiv id (``row_of_arxiv``'s
        second look)."""
        with self._db_lock:
            found = [paper_db.row_of_arxiv(segment.db, arxiv_id) for segment in self.segments]
        return self._live_row(found)

    def _live_row(self, local_rows: Sequence[int | None]) -> int | None:
        """The first live one of each segment's local row, as an index row."""
        for segment, local in enumerate(local_rows):
            if local is not None:
                rows, _ = self.rows.to_global(segment, np.array([local]))
                if len(rows):
                    return int(rows[0])
        return None

    def papers_at(self, rows: Sequence[int] | np.ndarray) -> list[Paper]:
        """Records for the given rows, in the given order."""
        return [paper_db.decode_paper(record) for record in self._column_at("record", rows)]

    def sentences_at(self, rows: Sequence[int] | np.ndarray) -> list[list[tuple[int, int]]]:
        """Sentence ``(start, end)`` offsets into each row's abstract, in the given order."""
        return [paper_db.decode_spans(spans) for spans in self._column_at("sentences", rows)]

    def papers_with_sentences(
        self, rows: Sequence[int] | np.ndarray
    ) -> list[tuple[Paper, list[tuple[int, int]]]]:
        """``papers_at`` and ``sentences_at`` together (a page to highlight): one question
        to each shard of a sharded index, not two."""
        return list(zip(self.papers_at(rows), self.sentences_at(rows), strict=True))

    def _column_at(self, column: str, rows: Sequence[int] | np.ndarray) -> list[str]:
        """A stored column of the given rows, in the given order (decoded by the caller,
        without holding the connections)."""
        found: list[str] = [""] * len(rows)
        read = paper_db.records_at if column == "record" else paper_db.sentences_at
        with self._db_lock:
            for segment, positions, local in self.rows.split(rows):
                values = read(self.segments[segment].db, local.tolist())
                for position, value in zip(positions.tolist(), values, strict=True):
                    found[position] = value
        return found

    def list_papers(self, limit: int, offset: int) -> list[Paper]:
        """A page of papers in row order: read by row number, so a deep page costs no more
        than the first."""
        return self.papers_at(range(offset, min(offset + limit, len(self))))

    def map_labels(self, rows: Sequence[int] | np.ndarray | None = None) -> list[paper_db.Label]:
        """(id, title, category, arxiv_id) of the given rows in the given order (every row
        where None), row ``i`` labelling ``map_points[i]``."""
        with self._db_lock:
            if rows is None:
                return [
                    label
                    for segment in self.segments
                    for label in _live(paper_db.map_labels(segment.db), segment.live)
                ]
            labels: list[paper_db.Label | None] = [None] * len(rows)
            for segment, positions, local in self.rows.split(rows):
                found = paper_db.map_labels(self.segments[segment].db, local.tolist())
                for position, label in zip(positions.tolist(), found, strict=True):
                    labels[position] = label
        return [label for label in labels if label is not None]

    def close(self) -> None:
        with self._db_lock:
            for segment in self.segments:
                segment.close()


def check_dimension(index_dir: Path, held: int, made: int) -> None:
    """Refuse an index whose vectors the query model's cannot be compared with."""
    if held != made:
        raise IndexUnusable(
            f"index at {index_dir} holds vectors of dimension {held}, the model makes "
            f"{made}: {rebuild_hint(index_dir)}"
        )


def _live(values: list[T], live: np.ndarray | None) -> list[T]:
    """A segment's values of its live rows only (``values`` in row order)."""
    return values if live is None else [values[row] for row in live.tolist()]


def _damaged(index_dir: Path, exc: BaseException) -> IndexUnusable:
    return IndexUnusable(f"damaged index at {index_dir} ({exc}): {rebuild_hint(index_dir)}")
