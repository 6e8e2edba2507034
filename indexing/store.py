"""The index on disk, read and written here only: one format, one version number.

An index is a folder holding:

- ``manifest.json``: format version, model, dimension, paper count, corpus checksum, build time,
  and the size and sha256 of every other file of the build, checked before the index is served
  or updated, so a missing, truncated or altered file is refused with what to run;
- ``vectors.npy``: one L2-normalised float32 vector per paper (inner product = cosine
  similarity), memory-mapped when served: the pages are the operating system's file cache, so
  several workers serving one index share a single copy;
- ``ann.faiss``: for the approximate index types only (see ``index_types``), the FAISS
  structure that proposes candidates; their exact scores always come from ``vectors.npy``;
- ``papers.sqlite``: the paper records, row ``i`` describing vector ``i``, with the columns
  filters read (year, date, category, source, code, authors) and each abstract's sentence
  offsets (for highlights);
- ``map.npy``: the corpus map, one float32 ``(x, y)`` in [-1, 1] per paper, row for row (see
  ``corpus_map``): computed when the index is built, because a t-SNE takes seconds to minutes,
  far too long for a request;
- ``lexical/``: the BM25 index of the same papers, row for row (bm25s's own files).

The folder named by the user (``data/index``) is a symbolic link to a build folder beside it.
A new build is written completely into a fresh folder and then the link is replaced with one
``rename``, which is atomic: a reader sees the old index or the new one, never a mixture, and a
crash or Ctrl-C during a build leaves the old index untouched.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import faiss
import numpy as np
from pydantic import BaseModel, Field, ValidationError

from indexing.index_types import DenseIndex, IndexType, Neighbours, build_ann, read_ann
from indexing.records import Paper

if TYPE_CHECKING:
    # BM25 (bm25s, scipy) is imported where an index is opened or written: `serve` verifies
    # an index before its workers start, and that check needs neither.
    from indexing.lexical import LexicalIndex

# 2: BM25 index, filter columns and sentence offsets added.
# 3: exact vectors as a memory-mappable .npy, optional ANN structure, backend in the manifest.
# 4: size and sha256 of every data file in the manifest, verified before serving or updating.
# 5: map.npy, the 2-D corpus map computed at index time.
FORMAT_VERSION = 5
MANIFEST_FILE = "manifest.json"
VECTORS_FILE = "vectors.npy"
ANN_FILE = "ann.faiss"
PAPERS_FILE = "papers.sqlite"
MAP_FILE = "map.npy"
LEXICAL_DIR = "lexical"


class IndexUnusable(RuntimeError):
    """The index cannot be served; the message says why and what to run."""


class FileDigest(BaseModel):
    """What a data file of a build must still be: its size in bytes and its sha256."""

    size: int
    sha256: str


class Manifest(BaseModel):
    format_version: int
    model: str
    backend: str = "torch"
    index_type: IndexType = IndexType.FLAT
    dimension: int
    paper_count: int
    corpus_checksum: str
    built_at: datetime
    build_seconds: float
    sources: list[str]
    capture_date: str
    # Every data file of the build by its path relative to the build folder, recorded by the
    # store as it writes (callers leave it empty). Empty in a manifest of an older format: that
    # one is refused for its version, which says what to run, before its files are looked at.
    files: dict[str, FileDigest] = Field(default_factory=dict)


def _rebuild_hint(index_dir: Path) -> str:
    return f"run `papersearch index --out {index_dir}` to build it"


def read_manifest(index_dir: Path, *, build: Path | None = None) -> Manifest:
    """The manifest of ``index_dir`` (or of ``build``, the folder it links to; errors name
    ``index_dir``, the folder the user knows)."""
    path = (build or index_dir) / MANIFEST_FILE
    if not path.is_file():
        raise IndexUnusable(f"no index at {index_dir}: {_rebuild_hint(index_dir)}")
    try:
        return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        # Name each bad or missing field: "1 validation error for Manifest" says nothing.
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'manifest'}: {error['msg']}"
            for error in exc.errors()
        )
        raise IndexUnusable(
            f"unreadable manifest in {index_dir} ({problems}): {_rebuild_hint(index_dir)}"
        ) from exc
    except (ValueError, OSError) as exc:
        raise IndexUnusable(
            f"unreadable manifest in {index_dir} ({str(exc).splitlines()[0]}): "
            f"{_rebuild_hint(index_dir)}"
        ) from exc


def check_compatible(
    manifest: Manifest, index_dir: Path, model: str, backend: str | None = None
) -> None:
    """Refuse an index this code or this model cannot serve, saying how to rebuild it.

    ``backend`` is the one a user asked for, if any (None: serve with the index's own). Two
    backends' vectors differ slightly, so queries are never embedded by another backend than
    the index's papers were: their scores would not rank together.
    """
    if manifest.format_version != FORMAT_VERSION:
        raise IndexUnusable(
            f"index at {index_dir} has format version {manifest.format_version}, this version of "
            f"papersearch reads version {FORMAT_VERSION}: {_rebuild_hint(index_dir)}"
        )
    if manifest.model != model:
        raise IndexUnusable(
            f"index at {index_dir} was built with model {manifest.model!r} but the service is "
            f"configured for {model!r}: {_rebuild_hint(index_dir)} with "
            f"PAPERSEARCH_MODEL={model}, or set PAPERSEARCH_MODEL={manifest.model}"
        )
    if backend is not None and manifest.backend != backend:
        raise IndexUnusable(
            f"index at {index_dir} was built with the {manifest.backend} backend, not "
            f"{backend}: serve it with its own (drop --backend and PAPERSEARCH_BACKEND, or "
            f"pass --backend {manifest.backend}), or {_rebuild_hint(index_dir)} with "
            f"--backend {backend}"
        )


def verify_files(index_dir: Path, manifest: Manifest, *, build: Path | None = None) -> None:
    """Check every data file of ``build`` (default: what ``index_dir`` links to) against the
    size and sha256 the manifest recorded when the build was written.

    A file that is missing, truncated or altered (a failed copy, a full disk, a hand edit, a
    bad sector) would otherwise be served as wrong answers or fail on some later request;
    here it is refused up front, naming the file and what to run. Hashing reads every byte,
    at about 1.2 GB/s here (files in the page cache): 1 ms for the seed index, 0.34 s for the
    426 MB of a 75,000-paper index (0.09 s of it the vectors), paid when an index is opened
    or updated, never per request.
    """
    build = build or index_dir.resolve()
    required = [VECTORS_FILE, PAPERS_FILE, MAP_FILE]
    if manifest.index_type is not IndexType.FLAT:
        required.append(ANN_FILE)
    unlisted = [name for name in required if name not in manifest.files]
    if not any(name.startswith(f"{LEXICAL_DIR}/") for name in manifest.files):
        unlisted.append(f"{LEXICAL_DIR}/")
    if unlisted:
        raise IndexUnusable(
            f"the manifest of the index at {index_dir} records no checksum for "
            f"{', '.join(unlisted)}: {_rebuild_hint(index_dir)}"
        )
    for name, expected in manifest.files.items():
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise IndexUnusable(
                f"the manifest of the index at {index_dir} names a file outside it ({name}): "
                f"{_rebuild_hint(index_dir)}"
            )
        path = build / name
        try:
            size = path.stat().st_size
            digest = _file_digest(path) if size == expected.size else None
        except FileNotFoundError:
            raise IndexUnusable(
                f"{name} is missing from the index at {index_dir}: {_rebuild_hint(index_dir)}"
            ) from None
        except OSError as exc:
            raise IndexUnusable(
                f"cannot read {name} of the index at {index_dir} ({exc}): "
                f"{_rebuild_hint(index_dir)}"
            ) from exc
        if size != expected.size:
            raise IndexUnusable(
                f"{name} of the index at {index_dir} has {size} bytes where the manifest "
                f"recorded {expected.size} (truncated or overwritten): {_rebuild_hint(index_dir)}"
            )
        if digest != expected.sha256:
            raise IndexUnusable(
                f"{name} of the index at {index_dir} does not match the sha256 its manifest "
                f"recorded (damaged or modified): {_rebuild_hint(index_dir)}"
            )


def verify_index(index_dir: Path, model: str, backend: str | None = None) -> Path:
    """Everything checked before an index is loaded, without loading it: the manifest, its
    format and model, and every data file's size and checksum. Raises IndexUnusable with what
    to run; ``serve`` calls it before starting the server, so a refusal is one line.
    Returns the build folder it verified (see ``PaperIndex.open``)."""
    build = index_dir.resolve()
    manifest = read_manifest(index_dir, build=build)
    check_compatible(manifest, index_dir, model, backend)
    verify_files(index_dir, manifest, build=build)
    return build


def _file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


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


@dataclass(frozen=True)
class PaperColumns:
    """What filters and date sorting read, one array entry per row, held in memory."""

    year: np.ndarray  # int32, 0 where the date is unknown
    published: np.ndarray  # int64 day ordinal, -1 where unknown
    category: np.ndarray  # lower-cased str, "" where unknown
    source: np.ndarray  # file name the paper was read from
    has_code: np.ndarray  # bool
    authors: np.ndarray  # lower-cased author names joined by newlines

    @classmethod
    def read(cls, db: sqlite3.Connection) -> PaperColumns:
        rows = db.execute(
            "SELECT year, published, category, source, has_code, authors FROM papers ORDER BY row"
        ).fetchall()
        column = list(zip(*rows, strict=True)) if rows else [()] * 6
        return cls(
            year=np.array(column[0], dtype=np.int32),
            published=np.array(column[1], dtype=np.int64),
            category=np.array(column[2], dtype=object),
            source=np.array(column[3], dtype=object),
            has_code=np.array(column[4], dtype=bool),
            authors=np.array(column[5], dtype=object),
        )


class PaperIndex:
    """A loaded index: vectors, the BM25 index and the paper records they point to."""

    def __init__(
        self,
        index_dir: Path,
        manifest: Manifest,
        vectors: np.ndarray,
        ann: faiss.Index | None,
        lexical: LexicalIndex,
        db: sqlite3.Connection,
        map_points: np.ndarray,
    ) -> None:
        self.index_dir = index_dir
        self.build_dir = index_dir.resolve()  # what the link pointed to when this was opened
        self.manifest = manifest
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
        verified_build: Path | None = None,
    ) -> PaperIndex:
        """Load and cross-check an index; fail fast with a rebuild hint on any mismatch.

        ``backend`` is the one whose query vectors will search it (None: whichever built it).
        ``verified_build`` is a build folder the caller has just verified (``verify_index``):
        if the link still points at it, its files are not hashed a second time.
        """
        # Follow the link once: a build swapped in meanwhile must not mix with this one.
        build = index_dir.resolve()
        manifest = read_manifest(index_dir, build=build)
        check_compatible(manifest, index_dir, model, backend)
        if build != verified_build:
            verify_files(index_dir, manifest, build=build)
        try:
            vectors = np.load(build / VECTORS_FILE, mmap_mode="r", allow_pickle=False)
            ann = read_ann(build / ANN_FILE) if manifest.index_type is not IndexType.FLAT else None
            db = sqlite3.connect(
                f"file:{build / PAPERS_FILE}?mode=ro", uri=True, check_same_thread=False
            )
            rows = db.execute("SELECT count(*) FROM papers").fetchone()[0]
            from indexing.lexical import LexicalIndex

            lexical = LexicalIndex.load(build / LEXICAL_DIR)
            # Small (600 KB for 75,000 papers) and sent whole by the map endpoint: held in memory.
            map_points = np.load(build / MAP_FILE, allow_pickle=False)
        except (RuntimeError, OSError, ValueError, sqlite3.Error) as exc:
            raise IndexUnusable(
                f"damaged index at {index_dir} ({exc}): {_rebuild_hint(index_dir)}"
            ) from exc
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
                f"{map_width} (2 expected): {_rebuild_hint(index_dir)}"
            )
        map_points.flags.writeable = False
        return cls(index_dir, manifest, vectors, ann, lexical, db, map_points)

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

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        with self._db_lock:
            return self._db.execute(sql, params).fetchall()

    def row_of(self, paper_id: str) -> int | None:
        found = self._query("SELECT row FROM papers WHERE id = ?", (paper_id,))
        return found[0][0] if found else None

    def papers_at(self, rows: Sequence[int]) -> list[Paper]:
        """Records for the given rows, in the given order."""
        if not rows:
            return []
        marks = ",".join("?" * len(rows))
        found = dict(self._query(f"SELECT row, record FROM papers WHERE row IN ({marks})", rows))
        return [Paper.model_validate_json(found[row]) for row in rows]

    def sentences_at(self, rows: Sequence[int]) -> list[list[tuple[int, int]]]:
        """Sentence ``(start, end)`` offsets into each row's abstract, in the given order."""
        if not rows:
            return []
        marks = ",".join("?" * len(rows))
        found = dict(self._query(f"SELECT row, sentences FROM papers WHERE row IN ({marks})", rows))
        return [[(start, end) for start, end in json.loads(found[row])] for row in rows]

    def list_papers(self, limit: int, offset: int) -> list[Paper]:
        found = self._query(
            "SELECT record FROM papers ORDER BY row LIMIT ? OFFSET ?", (limit, offset)
        )
        return [Paper.model_validate_json(record) for (record,) in found]

    def titles(self) -> list[tuple[int, str]]:
        """(row, title) of every paper that has a title: what title look-ups search."""
        return self._query("SELECT row, title FROM papers WHERE title IS NOT NULL ORDER BY row")

    def map_labels(self) -> list[tuple[str, str | None, str | None, str | None]]:
        """(id, title, category, arxiv_id) of every paper in row order, row ``i`` labelling
        ``map_points[i]``; the category as its source wrote it (the filter column is
        lower-cased), since the map shows it to people."""
        return self._query(
            "SELECT id, title, json_extract(record, '$.category'), "
            "json_extract(record, '$.arxiv_id') FROM papers ORDER BY row"
        )

    def close(self) -> None:
        with self._db_lock:
            self._db.close()


def check_writable(index_dir: Path) -> None:
    """Refuse to replace anything but an index: ``--out ~/papers`` must not wipe a folder."""
    if index_dir.is_symlink() or not index_dir.exists():
        return
    if not index_dir.is_dir() or not (index_dir / MANIFEST_FILE).is_file():
        raise IndexUnusable(
            f"{index_dir} exists and is not a papersearch index; it is left untouched: "
            f"choose another output folder or remove it"
        )


@dataclass
class IndexContents:
    """Everything an index holds, in memory: what an incremental update reads and rewrites."""

    papers: list[Paper]
    vectors: np.ndarray
    sentences: list[list[tuple[int, int]]]
    manifest: Manifest
    ann: faiss.Index | None  # None for a flat index
    map_points: np.ndarray  # (papers, 2) float32, row for row with the vectors


def write_index(
    index_dir: Path,
    papers: Sequence[Paper],
    vectors: np.ndarray,
    lexical: LexicalIndex,
    sentences: Sequence[Sequence[tuple[int, int]]],
    manifest: Manifest,
    *,
    map_points: np.ndarray,
    ann: faiss.Index | None = None,
) -> None:
    """Write a complete index beside ``index_dir`` and switch ``index_dir`` to it atomically.

    ``map_points`` are the papers' corpus-map coordinates (``corpus_map.project``). ``ann`` is
    the approximate index's structure when the caller has one already (an update reuses the
    trained one); otherwise it is built here for a non-flat ``index_type``.
    """
    check_writable(index_dir)
    with _writer_lock(index_dir):
        _write_build(
            index_dir, papers, vectors, lexical, sentences, manifest, ann, map_points=map_points
        )


def update_index(
    index_dir: Path,
    change: Callable[[IndexContents], tuple[IndexContents, LexicalIndex] | None],
) -> None:
    """Read the current index, let ``change`` derive the next one, and swap it in atomically.

    The writer lock is held from the read to the swap, so two updates never lose each other's
    papers. ``change`` returns None when there is nothing to write. The current build's files
    are verified first: a damaged build is refused, not carried into the next one.
    """
    with _writer_lock(index_dir):
        build = index_dir.resolve()
        manifest = read_manifest(index_dir, build=build)
        check_compatible(manifest, index_dir, manifest.model)
        verify_files(index_dir, manifest, build=build)
        db = sqlite3.connect(f"file:{build / PAPERS_FILE}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT record, sentences FROM papers ORDER BY row").fetchall()
        finally:
            db.close()
        current = IndexContents(
            papers=[Paper.model_validate_json(record) for record, _ in rows],
            vectors=np.load(build / VECTORS_FILE, allow_pickle=False),
            sentences=[[(a, b) for a, b in json.loads(spans)] for _, spans in rows],
            manifest=manifest,
            ann=faiss.read_index(str(build / ANN_FILE))
            if manifest.index_type is not IndexType.FLAT
            else None,
            map_points=np.load(build / MAP_FILE, allow_pickle=False),
        )
        changed = change(current)
        if changed is not None:
            new, lexical = changed
            _write_build(
                index_dir,
                new.papers,
                new.vectors,
                lexical,
                new.sentences,
                new.manifest,
                new.ann,
                map_points=new.map_points,
            )


def _write_build(
    index_dir: Path,
    papers: Sequence[Paper],
    vectors: np.ndarray,
    lexical: LexicalIndex,
    sentences: Sequence[Sequence[tuple[int, int]]],
    manifest: Manifest,
    ann: faiss.Index | None,
    *,
    map_points: np.ndarray,
) -> None:
    counts = {
        len(papers),
        len(vectors),
        lexical.size,
        len(sentences),
        len(map_points),
        manifest.paper_count,
    }
    if ann is not None:
        counts.add(ann.ntotal)
    if len(counts) != 1:
        raise ValueError(
            "papers, vectors, BM25, sentences, map points and manifest disagree on the count"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    build = _builds_dir(index_dir) / f"{stamp}-{os.getpid()}"
    build.mkdir()
    try:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        np.save(build / VECTORS_FILE, vectors, allow_pickle=False)
        map_points = np.ascontiguousarray(map_points, dtype=np.float32)
        np.save(build / MAP_FILE, map_points, allow_pickle=False)
        if manifest.index_type is not IndexType.FLAT:
            ann = ann if ann is not None else build_ann(manifest.index_type, vectors)
            faiss.write_index(ann, str(build / ANN_FILE))
        lexical.save(build / LEXICAL_DIR)
        _write_papers(build / PAPERS_FILE, papers, sentences)
        # Digests of the files as written, so a reader can tell they are still what was written.
        files = {
            path.relative_to(build).as_posix(): FileDigest(
                size=path.stat().st_size, sha256=_file_digest(path)
            )
            for path in sorted(build.rglob("*"))
            if path.is_file()
        }
        manifest = manifest.model_copy(update={"files": files})
        # The manifest goes last: a build folder without one is, by construction, unfinished.
        (build / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
        _fsync_tree(build)
        _switch_link(index_dir, build)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    _remove_stale_builds(index_dir)


@contextmanager
def _writer_lock(index_dir: Path) -> Iterator[None]:
    """One writer at a time per index, so one never removes a build another is still writing."""
    builds = _builds_dir(index_dir)
    builds.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(builds / ".lock"):
        yield


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Serialise index writers, so one never removes a build another is still writing."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _builds_dir(index_dir: Path) -> Path:
    return index_dir.parent / f".{index_dir.name}-builds"


def _write_papers(
    path: Path, papers: Sequence[Paper], sentences: Sequence[Sequence[tuple[int, int]]]
) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute(
            "CREATE TABLE papers (row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT, "
            "record TEXT NOT NULL, year INTEGER NOT NULL, published INTEGER NOT NULL, "
            "category TEXT NOT NULL, source TEXT NOT NULL, has_code INTEGER NOT NULL, "
            "authors TEXT NOT NULL, sentences TEXT NOT NULL)"
        )
        db.executemany(
            "INSERT INTO papers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    row,
                    p.id,
                    p.title,
                    p.model_dump_json(),
                    p.published.year if p.published else 0,
                    p.published.toordinal() if p.published else -1,
                    (p.category or "").lower(),
                    p.source,
                    p.has_code,
                    "\n".join(p.authors).lower(),
                    json.dumps(spans),
                )
                for row, (p, spans) in enumerate(zip(papers, sentences, strict=True))
            ),
        )
        db.commit()
    finally:
        db.close()


def _fsync_tree(folder: Path) -> None:
    """Make the build durable before it is linked: its files, and the folders naming them."""
    for path in [*folder.rglob("*"), folder]:
        _fsync(path)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _switch_link(index_dir: Path, build: Path) -> None:
    if index_dir.exists() and not index_dir.is_symlink():
        # An index copied here as a plain folder: move it aside once; from then on swaps are
        # atomic. (write_index has already refused plain folders that hold no index.)
        index_dir.rename(_builds_dir(index_dir) / f"adopted-{os.getpid()}")
    link = index_dir.parent / f"{_link_prefix(index_dir)}{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(build.relative_to(index_dir.parent))
    os.replace(link, index_dir)
    _fsync(index_dir.parent)  # the swap itself survives a power cut


def _link_prefix(index_dir: Path) -> str:
    """Name of the new link made beside ``index_dir`` to replace it, less the writer's pid."""
    return f".{index_dir.name}.link-"


def _remove_stale_builds(index_dir: Path) -> None:
    """Drop what is not current: older builds, and leftovers of runs that were killed (build
    folders, finished or not, and a new link not yet swapped in). Called with the writer lock
    held, so nothing found here is still being written."""
    current = index_dir.resolve()
    for build in _builds_dir(index_dir).iterdir():
        if build.is_dir() and build.resolve() != current:
            shutil.rmtree(build, ignore_errors=True)
    prefix = _link_prefix(index_dir)
    for link in index_dir.parent.iterdir():
        if link.name.startswith(prefix) and link.is_symlink():
            link.unlink(missing_ok=True)
