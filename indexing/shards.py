"""Cutting an index into shards, each an ordinary index of a contiguous range of its rows.

A sharded service (``papersearch serve --ray ADDRESS --shards S``) holds each shard in a
deployment of its own and merges their answers (``service.shards``). A shard is written as
any build is (``segment_writer`` and ``write_index``: atomic, every file's checksum in its
manifest) from the source index's stored records, vectors, sentence offsets and map points,
so nothing is embedded again. Its manifest records where it sits (``ShardPlacement``): the
rows it holds, and the build and corpus it was cut from, so shards of two builds are never
served together.

The shards of ``data/index`` cut in S live in ``data/index-shards/S/shard-000`` onwards,
each a link to its build as ``data/index`` is; they are cut again only when missing or cut
from another build than the index's current one.

Dense search over shards of a flat index is exact. Over an IVF index each shard's structure
is the source's trained one refilled with the shard's vectors, so each probes the same lists
for a query and the merged candidates include the whole index's; an HNSW graph is rebuilt
per shard.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import faiss
import numpy as np

from indexing.corpus import papers_checksum
from indexing.errors import PapersearchError
from indexing.index_types import IndexType, read_ann, refilled_ann
from indexing.manifest import (
    ANN_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    SEGMENTS_DIR,
    CheckedBuild,
    IndexUnusable,
    Manifest,
    Segment,
    ShardPlacement,
    checked_build,
    read_manifest,
    rebuild_hint,
)
from indexing.plural import counted
from indexing.reader import PaperIndex
from indexing.records import Paper
from indexing.writer import next_segment_name, segment_writer, write_index

# Records read from the source index at a time while a shard is written.
READ_ROWS = 10_000


class ShardingRefused(PapersearchError, ValueError):
    """The index cannot be cut as asked (more shards than papers)."""

    status = 422
    code = "sharding_refused"


@dataclass(frozen=True)
class ShardSummary:
    """What ``write_shards`` wrote: the line ``papersearch shard`` prints."""

    index_dir: Path
    folders: list[Path]
    papers: list[int]
    seconds: float

    def summary(self) -> str:
        return (
            f"cut {counted(sum(self.papers), 'paper')} of {self.index_dir} into "
            f"{counted(len(self.folders), 'shard')} of {', '.join(map(str, self.papers))} "
            f"under {self.folders[0].parent}: {self.seconds:.1f} s"
        )


def shards_root(index_dir: Path, count: int) -> Path:
    """Where the shards of ``index_dir`` cut in ``count`` live, beside it."""
    return index_dir.parent / f"{index_dir.name}-shards" / str(count)


def shard_hint(index_dir: Path | None, count: int) -> str:
    index = index_dir if index_dir is not None else "INDEX"
    return f"run `papersearch shard --index {index} --shards {count}` to cut them again"


def shard_ranges(papers: int, count: int) -> list[tuple[int, int]]:
    """``count`` contiguous, near-equal ``(first, stop)`` row ranges covering ``papers``."""
    bounds = [papers * number // count for number in range(count + 1)]
    return list(pairwise(bounds))


def write_shards(index_dir: Path, count: int, *, out: Path | None = None) -> ShardSummary:
    """Cut the live rows of the index at ``index_dir`` into ``count`` shards written under
    ``out`` (default ``shards_root``), replacing whatever shards were there."""
    started = time.perf_counter()
    checked = checked_build(index_dir)
    parent = checked.manifest
    if not 1 <= count <= parent.paper_count:
        raise ShardingRefused(
            f"cannot cut the {parent.paper_count} papers of {index_dir} into {count} shards: "
            f"choose between 1 and {parent.paper_count}"
        )
    root = out if out is not None else shards_root(index_dir, count)
    folders = [root / f"shard-{number:03d}" for number in range(count)]
    index = PaperIndex.open_checked(checked)
    try:
        base = _base_ann(checked)
        sizes = []
        for number, (first, stop) in enumerate(shard_ranges(parent.paper_count, count)):
            rows = np.arange(first, stop, dtype=np.int64)
            papers: list[Paper] = []
            sentences: list[list[tuple[int, int]]] = []
            for start in range(0, len(rows), READ_ROWS):
                chunk = rows[start : start + READ_ROWS]
                papers.extend(index.papers_at(chunk))
                sentences.extend(index.sentences_at(chunk))
            vectors = index.vectors_at(rows)
            ann = None if base is None else refilled_ann(base, parent.index_type, vectors)
            placement = ShardPlacement(
                number=number,
                count=count,
                first_row=first,
                parent_papers=parent.paper_count,
                parent_checksum=parent.corpus_checksum,
                parent_build=checked.build.name,
                parent_built_at=parent.built_at,
                parent_build_seconds=parent.build_seconds,
            )
            manifest = Manifest(
                format_version=FORMAT_VERSION,
                model=parent.model,
                backend=parent.backend,
                index_type=parent.index_type,
                dimension=parent.dimension,
                paper_count=len(papers),
                corpus_checksum=papers_checksum(papers),
                built_at=datetime.now(UTC),
                build_seconds=round(time.perf_counter() - started, 3),
                sources=parent.sources,
                capture_date=parent.capture_date,
                segments=[
                    Segment(name=next_segment_name(None), rows=len(papers), ann=ann is not None)
                ],
                shard=placement,
            )
            writer = segment_writer(
                papers, vectors, sentences, index.map_points[first:stop], ann=ann
            )
            write_index(folders[number], manifest, writer)
            sizes.append(len(papers))
    finally:
        index.close()
    return ShardSummary(index_dir, folders, sizes, time.perf_counter() - started)


def _base_ann(checked: CheckedBuild) -> faiss.Index | None:
    """The source's trained ANN structure, in memory (a shard's is a refilled copy), or None
    for a flat index."""
    if checked.manifest.index_type is IndexType.FLAT:
        return None
    for entry in checked.manifest.segments:
        if entry.ann:
            return read_ann(checked.build / SEGMENTS_DIR / entry.name / ANN_FILE, mapped=False)
    return None


def shard_folders(index_dir: Path, count: int, *, out: Path | None = None) -> list[Path]:
    """The folders of the shards of ``index_dir`` cut in ``count``, cut first where one is
    missing or any was cut from another build than the index's current one."""
    root = out if out is not None else shards_root(index_dir, count)
    folders = [root / f"shard-{number:03d}" for number in range(count)]
    build = index_dir.resolve().name
    checksum = read_manifest(index_dir).corpus_checksum
    for folder in folders:
        placement = _placement(folder)
        if placement is None or (placement.parent_build, placement.parent_checksum) != (
            build,
            checksum,
        ):
            return write_shards(index_dir, count, out=out).folders
    return folders


def _placement(folder: Path) -> ShardPlacement | None:
    if not (folder / MANIFEST_FILE).is_file():
        return None
    try:
        return read_manifest(folder).shard
    except IndexUnusable:
        return None


def checked_shards(
    folders: Sequence[Path],
    *,
    index_dir: Path | None = None,
    model: str | None = None,
    backend: str | None = None,
    hashed: Callable[[str], bool] | None = None,
) -> list[CheckedBuild]:
    """Check that ``folders`` are the shards of one index (``index_dir``, for the hint), in
    order, their files verified: numbered 0..S-1, each one segment as cut, cut from one
    build, their rows contiguous and covering it, of one model, backend and dimension.
    ``hashed``: which files to hash (``checked_build``; None: all). Raises IndexUnusable
    naming the shard and what to run."""
    hint = shard_hint(index_dir, len(folders))
    checked = [_checked_shard(folder, model, backend, hint, hashed) for folder in folders]
    first = checked[0]
    placement = _placement_of(first, hint)
    row = 0
    for number, shard in enumerate(checked):
        manifest, place = shard.manifest, _placement_of(shard, hint)
        problem = None
        if (place.number, place.count) != (number, len(folders)):
            problem = f"is shard {place.number} of {place.count}, not {number} of {len(folders)}"
        elif (place.parent_build, place.parent_checksum) != (
            placement.parent_build,
            placement.parent_checksum,
        ):
            problem = (
                f"was cut from build {place.parent_build}, shard 0 from {placement.parent_build}"
            )
        elif place.first_row != row:
            problem = f"starts at row {place.first_row}, the shards before it end at row {row}"
        elif (manifest.model, manifest.backend, manifest.dimension, manifest.index_type) != (
            first.manifest.model,
            first.manifest.backend,
            first.manifest.dimension,
            first.manifest.index_type,
        ):
            problem = "was made with another model, backend, dimension or index type than shard 0"
        if problem:
            raise IndexUnusable(f"the shard at {shard.index_dir} {problem}: {hint}")
        row += manifest.paper_count
    if row != placement.parent_papers:
        raise IndexUnusable(
            f"the {len(folders)} shards at {folders[0].parent} hold {row} papers, the index "
            f"they were cut from {placement.parent_papers}: {hint}"
        )
    return checked


def _checked_shard(
    folder: Path,
    model: str | None,
    backend: str | None,
    hint: str,
    hashed: Callable[[str], bool] | None,
) -> CheckedBuild:
    if not (folder / MANIFEST_FILE).is_file():
        raise IndexUnusable(f"no shard at {folder}: {hint}")
    try:
        checked = checked_build(folder, model=model, backend=backend, shard=True, hashed=hashed)
    except IndexUnusable as exc:
        reason = exc.message.removesuffix(f": {rebuild_hint(folder)}")
        raise IndexUnusable(f"{reason}: {hint}") from exc
    _placement_of(checked, hint)
    # The router numbers a shard's rows as the index's from ``first_row`` on: one segment
    # without tombstones, as it was cut.
    segments = checked.manifest.segments
    removed = sum(segment.deleted for segment in segments)
    if len(segments) != 1 or removed:
        raise IndexUnusable(
            f"the shard at {folder} was changed since it was cut "
            f"({counted(len(segments), 'segment')}, {counted(removed, 'paper')} removed): "
            f"a shard is not updated; update the index and {hint}"
        )
    return checked


def _placement_of(shard: CheckedBuild, hint: str) -> ShardPlacement:
    if shard.manifest.shard is None:
        raise IndexUnusable(f"{shard.index_dir} is an index, not a shard of one: {hint}")
    return shard.manifest.shard
