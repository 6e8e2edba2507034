"""Incremental updates that cost what changed: adding, replacing and removing papers, and
merging segments.

An ``add`` writes its papers as a new segment (see ``manifest``): only they are embedded
(through the embedding cache), their BM25 postings and records written; a paper it replaces
is marked removed (a tombstone) where it was. A ``remove`` writes tombstones only. Every
other file of the index is carried into the next build as a hard link, and the build is
swapped in like any other, so a running service sees the old index or the new one, never
a mixture. Search ranks across segments as one index of the same papers would (BM25 with the
statistics of the live papers: see ``lexical``), so an update changes no score but those the
papers themselves change.

Segments and tombstones cost a little at every search, so they are merged (``merge``) once
they pass a threshold (``merge_plan``), under the writer lock, into one segment of the live
papers, without reading a paper's text again: vectors are copied, records copied row by row
in SQLite, postings, filter columns and title data merged as arrays. A full merge refills the
base segment's ANN structure with its trained lists, as a build would have them.

The corpus map (``corpus_map``) is fitted only by ``papersearch index``: refitting it here
would cost seconds to minutes and move every point the user has seen. An update places each
new or changed paper among its nearest neighbours on the current map and keeps every other
point where it was; a full re-index refits the map.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from indexing import paper_db
from indexing.build import BuildError, abstract_sentences, embed_papers, read_papers
from indexing.columns import PaperColumns
from indexing.corpus import changed_checksum
from indexing.corpus_map import place
from indexing.index_types import IndexType, build_ann, refilled_ann
from indexing.manifest import (
    ANN_FILE,
    COLUMNS_DIR,
    DELETED_FILE,
    LEXICAL_DIR,
    MAP_FILE,
    PAPERS_FILE,
    TITLES_DIR,
    VECTORS_FILE,
    CheckedBuild,
    Manifest,
    Segment,
    read_manifest,
)
from indexing.plural import counted
from indexing.reader import OpenSegment, open_segments
from indexing.records import Paper, ParseIssue
from indexing.title_index import TitleIndex
from indexing.vector_files import SuppliedVectors
from indexing.writer import IndexChange, SegmentWriter, next_segment_name, segment_writer
from indexing.writer import update_index as _update_index
from models import ModelLoader

# Merge thresholds (``merge_plan``). More segments than this: the ones after the base are
# merged into one (each costs a search a little; together they are small).
MAX_SEGMENTS = 8
# Papers outside the base beyond this share of the base's, or removed papers beyond this
# share of all rows: everything is merged, so the ANN structure covers every paper again and
# no search pays for many tombstones.
MAX_OUTSIDE_BASE = 0.1
MAX_DELETED = 0.2
# Map points an added paper is placed among: a fixed, evenly spread sample of the papers
# (placing among all of a million papers would cost seconds for no visible difference).
MAP_ANCHORS = 20_000
# Vectors copied at a time by a merge: bounded memory at any corpus size.
COPY_ROWS = 65_536


@dataclass
class UpdateReport:
    index_dir: Path
    added: int = 0
    replaced: int = 0
    removed: int = 0
    unknown_ids: list[str] = field(default_factory=list)
    embedded: int = 0
    supplied: int = 0  # papers whose vector came from a vector file
    papers: int = 0
    seconds: float = 0.0
    merged: int = 0  # segments merged into one after the update (0: none)
    segments: int = 0  # segments of the index after it
    issues: list[ParseIssue] = field(default_factory=list)

    def summary(self) -> str:
        unknown = (
            f", {counted(len(self.unknown_ids), 'id')} not in the index" if self.unknown_ids else ""
        )
        merged = f", {self.merged} segments merged" if self.merged else ""
        return (
            f"updated {self.index_dir}: {self.added} added, {self.replaced} replaced, "
            f"{self.removed} removed{unknown}; {self.embedded} embedded, "
            f"{f'{self.supplied} from a vector file, ' if self.supplied else ''}"
            f"{len(self.issues)} skipped; {counted(self.papers, 'paper')} now, "
            f"{counted(self.segments, 'segment')}{merged}, {self.seconds:.1f} s"
        )


def add_papers(
    papers: Sequence[Paper],
    index_dir: Path,
    *,
    cache_dir: Path,
    load_model: ModelLoader,
    batch_size: int = 32,
    progress: bool = False,
    supplied: SuppliedVectors | None = None,
    merge: bool = True,
) -> UpdateReport:
    """Add ``papers`` to the index as a new segment; a paper whose id is already there
    replaces that paper. ``supplied``: vectors computed elsewhere, used for the papers they
    hold (the others are embedded). ``merge``: merge segments afterwards where
    ``merge_plan`` says so."""
    started = time.perf_counter()
    report = UpdateReport(index_dir)
    if not papers:
        raise BuildError("no papers to add; index unchanged")
    papers = list({paper.id: paper for paper in papers}.values())  # the last copy of an id wins

    def change(current: CheckedBuild) -> IndexChange:
        manifest = current.manifest
        embedding = embed_papers(
            papers,
            supplied=supplied,
            cache_dir=cache_dir,
            model_name=manifest.model,
            backend=manifest.backend,
            load_model=load_model,
            batch_size=batch_size,
            progress=progress,
        )
        vectors, report.embedded, report.supplied = (
            embedding.vectors,
            embedding.embedded,
            embedding.supplied,
        )
        segments = open_segments(current)
        try:
            found = _live_rows_of([paper.id for paper in papers], segments)
            replaced = _papers_at(segments, found)
            map_points = _placed(vectors, segments, found)
        finally:
            for segment in segments:
                segment.close()
        report.replaced = sum(len(rows) for rows in found.values())
        report.added = len(papers) - report.replaced
        name = next_segment_name(manifest)
        added = Segment(name=name, rows=len(papers))
        writer = segment_writer(
            papers, vectors, abstract_sentences(papers, progress=False), map_points
        )
        return _changed(current, found, replaced, papers, (added, writer), report)

    _update_index(index_dir, change)
    if merge:
        _merge_after(report)
    report.seconds = time.perf_counter() - started
    return report


def add_files(
    paths: Sequence[Path],
    index_dir: Path,
    *,
    capture_date: date,
    cache_dir: Path,
    load_model: ModelLoader,
    batch_size: int = 32,
    progress: bool = False,
    vectors: Path | None = None,
    vectors_model: str | None = None,
    vectors_backend: str | None = None,
) -> UpdateReport:
    """``add_papers`` of every paper read from corpus files (same formats as indexing), with
    the vectors of a vector file where given (see ``vector_files``)."""
    corpus = read_papers(paths, capture_date)
    supplied = None
    if vectors is not None:  # checked against the index before anything is embedded
        manifest = read_manifest(index_dir)
        supplied = SuppliedVectors.read(
            vectors,
            model=manifest.model,
            backend=manifest.backend,
            dimension=manifest.dimension,
            declared_model=vectors_model,
            declared_backend=vectors_backend,
        )
    report = add_papers(
        corpus.papers,
        index_dir,
        cache_dir=cache_dir,
        load_model=load_model,
        batch_size=batch_size,
        progress=progress,
        supplied=supplied,
    )
    report.issues = corpus.issues
    return report


def remove_papers(paper_ids: Sequence[str], index_dir: Path, *, merge: bool = True) -> UpdateReport:
    """Remove papers by id (tombstones: no other file is rewritten); ids the index does not
    hold are reported, not an error."""
    started = time.perf_counter()
    report = UpdateReport(index_dir)

    def change(current: CheckedBuild) -> IndexChange | None:
        segments = open_segments(current)
        try:
            found = _live_rows_of(paper_ids, segments)
            removed = _papers_at(segments, found)
        finally:
            for segment in segments:
                segment.close()
        present = {paper.id for paper in removed}
        report.unknown_ids = [paper_id for paper_id in paper_ids if paper_id not in present]
        report.removed = len(removed)
        report.papers = current.manifest.paper_count
        report.segments = len(current.manifest.segments)
        if not removed:
            return None
        if report.removed == current.manifest.paper_count:
            raise BuildError("removing every paper would leave an empty index; index unchanged")
        return _changed(current, found, removed, [], None, report)

    _update_index(index_dir, change)
    if merge and report.removed:
        _merge_after(report)
    report.seconds = time.perf_counter() - started
    return report


def _merge_after(report: UpdateReport) -> None:
    """Merge where ``merge_plan`` says an update left too many segments or tombstones, and
    count the segments as they are after it."""
    report.merged = merge_segments(report.index_dir, full=False)
    if report.merged:
        report.segments = len(read_manifest(report.index_dir).segments)


def merge_plan(manifest: Manifest, *, full: bool) -> tuple[int, int] | None:
    """Which run of segments to merge, as ``(first, stop)`` positions, or None.

    ``full``: everything, unless it is one segment without tombstones already. Otherwise the
    thresholds above: all segments when removed papers or papers outside the base have grown
    past their share, else the segments after the base once there are too many of them.
    """
    segments = manifest.segments
    if full:
        return None if len(segments) == 1 and not segments[0].deleted else (0, len(segments))
    rows = sum(segment.rows for segment in segments)
    deleted = sum(segment.deleted for segment in segments)
    outside_base = sum(segment.live for segment in segments[1:])
    if deleted > MAX_DELETED * rows or outside_base > MAX_OUTSIDE_BASE * segments[0].live:
        return 0, len(segments)
    if len(segments) > MAX_SEGMENTS:
        return 1, len(segments)
    return None


def merge_segments(index_dir: Path, *, full: bool = True) -> int:
    """Merge segments as ``merge_plan`` says (``full``: all of them into one); how many were
    merged (0: none needed). The merged segment holds their live papers in the same order, so
    every paper keeps its row and every search its results."""
    merged = 0
    opened: list[OpenSegment] = []  # read by the merged segment's writer, closed after it

    def change(current: CheckedBuild) -> IndexChange | None:
        nonlocal merged
        manifest = current.manifest
        plan = merge_plan(manifest, full=full)
        if plan is None:
            return None
        first, stop = plan
        base = first == 0 and manifest.index_type is not IndexType.FLAT
        opened.extend(open_segments(current, mapped=not base))
        chosen = opened[first:stop]
        name = next_segment_name(manifest)
        entry = Segment(name=name, rows=sum(s.entry.live for s in chosen), ann=base)
        writer = _merged_writer(chosen, manifest.index_type if base else None, opened[0])
        merged = len(chosen)
        kept = [*manifest.segments[:first], entry, *manifest.segments[stop:]]
        return IndexChange(
            manifest.model_copy(update={"segments": kept, "built_at": datetime.now(UTC)}),
            {name: writer},
        )

    try:
        _update_index(index_dir, change)
    finally:
        for segment in opened:
            segment.close()
    return merged


def _merged_writer(
    segments: Sequence[OpenSegment], index_type: IndexType | None, base: OpenSegment
) -> SegmentWriter:
    """What writes the live papers of ``segments`` as one segment, with an ANN structure of
    ``index_type`` where given: the base's trained one refilled, or a new one."""
    from indexing.lexical import merge_postings

    def write(folder: Path) -> None:
        rows = sum(segment.entry.live for segment in segments)
        dimension = base.vectors.shape[1]
        vectors = np.lib.format.open_memmap(
            folder / VECTORS_FILE, mode="w+", dtype=np.float32, shape=(rows, dimension)
        )
        at = 0
        for segment in segments:
            live = np.arange(segment.entry.rows) if segment.live is None else segment.live
            for start in range(0, len(live), COPY_ROWS):
                chunk = live[start : start + COPY_ROWS]
                vectors[at : at + len(chunk)] = segment.vectors[chunk]
                at += len(chunk)
        vectors.flush()
        np.save(
            folder / MAP_FILE,
            np.concatenate(
                [s.map_points if s.live is None else s.map_points[s.live] for s in segments]
            ),
        )
        paper_db.copy_rows(
            folder / PAPERS_FILE,
            [(segment.folder / PAPERS_FILE, segment.deleted.tolist()) for segment in segments],
        )
        merge_postings(
            [(segment.postings(), segment.live) for segment in segments], folder / LEXICAL_DIR
        )
        lives = [segment.live for segment in segments]
        PaperColumns.merge(
            [(s.folder / COLUMNS_DIR, live) for s, live in zip(segments, lives, strict=True)],
            folder / COLUMNS_DIR,
        )
        TitleIndex.merge(
            [(s.folder / TITLES_DIR, live) for s, live in zip(segments, lives, strict=True)],
            folder / TITLES_DIR,
        )
        if index_type is not None:
            import faiss

            stored = np.load(folder / VECTORS_FILE, mmap_mode="r")
            ann = (
                refilled_ann(base.ann, index_type, stored)
                if base.ann is not None
                else build_ann(index_type, stored)
            )
            faiss.write_index(ann, str(folder / ANN_FILE))
        del vectors

    return write


def _live_rows_of(
    paper_ids: Sequence[str], segments: Sequence[OpenSegment]
) -> dict[int, np.ndarray]:
    """Where the live papers of these ids are: local rows (ascending) by segment position."""
    found: dict[int, np.ndarray] = {}
    for position, segment in enumerate(segments):
        rows = np.array(sorted(paper_db.rows_of(segment.db, paper_ids).values()), dtype=np.int64)
        rows = rows[~np.isin(rows, segment.deleted)]
        if len(rows):
            found[position] = rows
    return found


def _papers_at(segments: Sequence[OpenSegment], found: dict[int, np.ndarray]) -> list[Paper]:
    """The records of the rows ``_live_rows_of`` found, as stored (what the checksum held)."""
    return [
        paper_db.decode_paper(record)
        for position, rows in found.items()
        for record in paper_db.records_at(segments[position].db, rows.tolist())
    ]


def _placed(
    vectors: np.ndarray, segments: Sequence[OpenSegment], replaced: dict[int, np.ndarray]
) -> np.ndarray:
    """Map points for new papers' ``vectors``, among an even sample of the papers staying.

    A replaced paper whose vector did not change (a corrected date, say) keeps its point;
    one whose text changed is placed among the others: its old point belongs to its old text,
    so it is no anchor.
    """
    anchors, points, old_vectors, old_points = [], [], [], []
    total = sum(segment.entry.live for segment in segments)
    step = max(1, total // MAP_ANCHORS)
    for position, segment in enumerate(segments):
        rows = replaced.get(position, np.zeros(0, np.int64))
        gone = np.union1d(segment.deleted, rows)
        live = np.setdiff1d(np.arange(segment.entry.rows), gone, assume_unique=True)[::step]
        anchors.append(np.asarray(segment.vectors[live], dtype=np.float32))
        points.append(segment.map_points[live])
        old_vectors.append(np.asarray(segment.vectors[rows], dtype=np.float32))
        old_points.append(segment.map_points[rows])
    placed = place(vectors, np.concatenate(anchors), np.concatenate(points))
    # The replaced papers' old points, by their old vectors: a new vector equal to one keeps it.
    point_of = {
        vector.tobytes(): point
        for vector, point in zip(
            np.concatenate(old_vectors), np.concatenate(old_points), strict=True
        )
    }
    for i, vector in enumerate(np.asarray(vectors, dtype=np.float32)):
        point = point_of.get(vector.tobytes())
        if point is not None:
            placed[i] = point
    return placed


def _changed(
    current: CheckedBuild,
    found: dict[int, np.ndarray],
    removed: Sequence[Paper],
    added: Sequence[Paper],
    new_segment: tuple[Segment, SegmentWriter] | None,
    report: UpdateReport,
) -> IndexChange:
    """The next build: tombstones for the ``found`` rows (the ``removed`` papers), and the
    new segment of the ``added`` ones where there is one. A segment left without a live
    paper is dropped."""
    manifest = current.manifest
    segments: list[Segment] = []
    deleted: dict[str, np.ndarray] = {}
    for position, segment in enumerate(manifest.segments):
        rows = found.get(position)
        if rows is not None:
            tombstones = _tombstones(current, segment)
            deleted[segment.name] = np.union1d(tombstones, rows)
            segment = segment.model_copy(update={"deleted": len(deleted[segment.name])})
        if segment.live:
            segments.append(segment)
    written: dict[str, SegmentWriter] = {}
    if new_segment is not None:
        entry, writer = new_segment
        segments.append(entry)
        written[entry.name] = writer
    checksum = changed_checksum(manifest.corpus_checksum, added=added, removed=removed)
    papers = sum(segment.live for segment in segments)
    report.papers, report.segments = papers, len(segments)
    next_manifest = manifest.model_copy(
        update={
            "segments": segments,
            "paper_count": papers,
            "corpus_checksum": checksum,
            "built_at": datetime.now(UTC),
        }
    )
    return IndexChange(next_manifest, written, deleted)


def _tombstones(current: CheckedBuild, segment: Segment) -> np.ndarray:
    if not segment.deleted:
        return np.zeros(0, dtype=np.int64)
    tombstones: np.ndarray = np.load(current.build / segment.path(DELETED_FILE), allow_pickle=False)
    return tombstones
