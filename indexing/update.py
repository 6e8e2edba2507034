"""Incremental updates: add or replace papers, or remove them, without rebuilding the index.

Only new or changed abstracts are embedded (and those through the embedding cache); the
other papers keep their vectors, sentence offsets and, for IVF indexes, the trained lists.
BM25 is recomputed over all texts because its statistics (document frequencies, average
length) depend on every paper, and the records are rewritten whole: still far cheaper
than embedding every paper again (README, performance). The result
is written as a new build and swapped in like any other, so a running service sees the old
index or the new one, never a mixture.

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

import faiss
import numpy as np

from indexing.build import BuildError, abstract_sentences, embed_with_cache, read_papers
from indexing.corpus import papers_checksum
from indexing.corpus_map import place
from indexing.index_types import updated_ann
from indexing.lexical import LexicalIndex
from indexing.plural import counted
from indexing.reader import IndexContents
from indexing.records import Paper, ParseIssue, embedding_text
from indexing.writer import update_index
from models import ModelLoader


@dataclass
class UpdateReport:
    index_dir: Path
    added: int = 0
    replaced: int = 0
    removed: int = 0
    unknown_ids: list[str] = field(default_factory=list)
    embedded: int = 0
    papers: int = 0
    seconds: float = 0.0
    issues: list[ParseIssue] = field(default_factory=list)

    def summary(self) -> str:
        unknown = (
            f", {counted(len(self.unknown_ids), 'id')} not in the index" if self.unknown_ids else ""
        )
        return (
            f"updated {self.index_dir}: {self.added} added, {self.replaced} replaced, "
            f"{self.removed} removed{unknown}; {self.embedded} embedded, "
            f"{len(self.issues)} skipped; {counted(self.papers, 'paper')} now, "
            f"{self.seconds:.1f} s"
        )


def add_papers(
    papers: Sequence[Paper],
    index_dir: Path,
    *,
    cache_dir: Path,
    load_model: ModelLoader,
    batch_size: int = 32,
    progress: bool = False,
) -> UpdateReport:
    """Add ``papers`` to the index; a paper whose id is already there replaces that paper."""
    started = time.perf_counter()
    report = UpdateReport(index_dir)
    if not papers:
        raise BuildError("no papers to add; index unchanged")
    papers = list({paper.id: paper for paper in papers}.values())  # the last copy of an id wins

    def change(current: IndexContents) -> tuple[IndexContents, LexicalIndex]:
        manifest = current.manifest
        vectors, report.embedded, _ = embed_with_cache(
            [embedding_text(paper) for paper in papers],
            cache_dir=cache_dir,
            model_name=manifest.model,
            backend=manifest.backend,
            load_model=load_model,
            batch_size=batch_size,
            progress=progress,
        )
        row_of = {paper.id: row for row, paper in enumerate(current.papers)}
        all_papers, sentences = list(current.papers), list(current.sentences)
        replaced_rows = [row_of[paper.id] for paper in papers if paper.id in row_of]
        new = [i for i, paper in enumerate(papers) if paper.id not in row_of]
        new_sentences = abstract_sentences(papers, progress=False)
        all_vectors = np.concatenate([current.vectors, vectors[new]])
        for i, paper in enumerate(papers):
            row = row_of.get(paper.id)
            if row is not None:
                all_papers[row], sentences[row] = paper, new_sentences[i]
                all_vectors[row] = vectors[i]
        all_papers += [papers[i] for i in new]
        sentences += [new_sentences[i] for i in new]
        report.added, report.replaced = len(new), len(replaced_rows)
        ann = current.ann
        if ann is not None:
            appended_from = None if replaced_rows else len(current.papers)
            ann = updated_ann(ann, manifest.index_type, all_vectors, appended_from)
        map_points = _updated_map(current, vectors, new, row_of, papers)
        return _rewritten(current, all_papers, all_vectors, sentences, ann, map_points, report)

    update_index(index_dir, change)
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
) -> UpdateReport:
    """``add_papers`` of every paper read from corpus files (same formats as indexing)."""
    corpus = read_papers(paths, capture_date)
    report = add_papers(
        corpus.papers,
        index_dir,
        cache_dir=cache_dir,
        load_model=load_model,
        batch_size=batch_size,
        progress=progress,
    )
    report.issues = corpus.issues
    return report


def remove_papers(paper_ids: Sequence[str], index_dir: Path) -> UpdateReport:
    """Remove papers by id; ids the index does not hold are reported, not an error."""
    started = time.perf_counter()
    report = UpdateReport(index_dir)
    wanted = set(paper_ids)

    def change(current: IndexContents) -> tuple[IndexContents, LexicalIndex] | None:
        keep = [row for row, paper in enumerate(current.papers) if paper.id not in wanted]
        report.removed = len(current.papers) - len(keep)
        present = {paper.id for paper in current.papers}
        report.unknown_ids = [paper_id for paper_id in paper_ids if paper_id not in present]
        report.papers = len(current.papers)
        if not report.removed:
            return None
        if not keep:
            raise BuildError("removing every paper would leave an empty index; index unchanged")
        vectors = current.vectors[keep]
        ann = current.ann
        if ann is not None:
            ann = updated_ann(ann, current.manifest.index_type, vectors, appended_from=None)
        return _rewritten(
            current,
            [current.papers[row] for row in keep],
            vectors,
            [current.sentences[row] for row in keep],
            ann,
            current.map_points[keep],
            report,
        )

    update_index(index_dir, change)
    report.seconds = time.perf_counter() - started
    return report


def _updated_map(
    current: IndexContents,
    vectors: np.ndarray,
    new: list[int],
    row_of: dict[str, int],
    papers: Sequence[Paper],
) -> np.ndarray:
    """The current map with ``papers`` (embedded as ``vectors``) placed on it: new ones
    (``new``: their positions in ``papers``) appended, replaced ones whose vector changed moved.

    The anchors are the current vectors with their current points, pairs the map was made
    from. A replaced paper is placed among the others only: its old point belongs to its old
    text. One whose vector did not change (a corrected date, say) keeps its point.
    """
    moved = [
        i
        for i, paper in enumerate(papers)
        if paper.id in row_of and not np.array_equal(vectors[i], current.vectors[row_of[paper.id]])
    ]
    moved_rows = np.array([row_of[papers[i].id] for i in moved], dtype=np.int64)
    appended = place(vectors[new], current.vectors, current.map_points)
    map_points = np.concatenate([current.map_points, appended])
    map_points[moved_rows] = place(
        vectors[moved], current.vectors, current.map_points, exclude=moved_rows
    )
    return map_points


def _rewritten(
    current: IndexContents,
    papers: list[Paper],
    vectors: np.ndarray,
    sentences: list[list[tuple[int, int]]],
    ann: faiss.Index | None,
    map_points: np.ndarray,
    report: UpdateReport,
) -> tuple[IndexContents, LexicalIndex]:
    report.papers = len(papers)
    manifest = current.manifest.model_copy(
        update={
            "paper_count": len(papers),
            "corpus_checksum": papers_checksum(papers),
            "built_at": datetime.now(UTC),
        }
    )
    lexical = LexicalIndex.build([embedding_text(paper) for paper in papers])
    contents = IndexContents(papers, vectors, sentences, manifest, ann, map_points)
    return contents, lexical
