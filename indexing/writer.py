"""Writing an index: a complete build folder, then one atomic swap of the link to it.

The folder named by the user (``data/index``) is a symbolic link to a build folder in
``builds_dir`` beside it (``data/.index-builds/``). A new build is written completely into a
fresh folder, made durable, and then the link is replaced with one ``rename``, which is atomic:
a reader sees the old index or the new one, never a mixture, and a crash or Ctrl-C during a
build leaves the old index untouched. One writer at a time holds a lock per index; each removes
what earlier, killed writers left behind.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

from indexing import paper_db
from indexing.columns import PaperColumns
from indexing.manifest import (
    ANN_FILE,
    COLUMNS_DIR,
    DELETED_FILE,
    LEXICAL_DIR,
    MANIFEST_FILE,
    MAP_FILE,
    PAPERS_FILE,
    SEGMENTS_DIR,
    TITLES_DIR,
    VECTORS_FILE,
    CheckedBuild,
    FileDigest,
    IndexUnusable,
    Manifest,
    Segment,
    VerifiedFiles,
    builds_dir,
    checked_build,
    file_digest,
    read_manifest,
)
from indexing.records import Paper, embedding_text
from indexing.title_index import TitleIndex


def check_writable(index_dir: Path) -> None:
    """Refuse to replace anything but an index: ``--out ~/papers`` must not wipe a folder."""
    if index_dir.is_symlink() or not index_dir.exists():
        return
    if not index_dir.is_dir() or not (index_dir / MANIFEST_FILE).is_file():
        raise IndexUnusable(
            f"{index_dir} exists and is not a papersearch index; it is left untouched: "
            f"choose another output folder or remove it"
        )


SegmentWriter = Callable[[Path], None]
"""Writes a new segment's files into the (empty) folder it is given."""


def segment_writer(
    papers: Sequence[Paper],
    vectors: np.ndarray,
    sentences: Sequence[Sequence[tuple[int, int]]],
    map_points: np.ndarray,
    *,
    ann: faiss.Index | None = None,
) -> SegmentWriter:
    """What writes a segment of ``papers``, row for row with their vectors, sentence offsets
    and map points; ``ann`` is its ANN structure, for a segment that has one."""
    if len({len(papers), len(vectors), len(sentences), len(map_points)}) != 1:
        raise ValueError("papers, vectors, sentences and map points disagree on the count")
    if ann is not None and ann.ntotal != len(papers):
        raise ValueError("the ANN structure does not hold the segment's papers")

    def write(folder: Path) -> None:
        from indexing.lexical import SegmentPostings

        np.save(folder / VECTORS_FILE, np.ascontiguousarray(vectors, dtype=np.float32))
        np.save(folder / MAP_FILE, np.ascontiguousarray(map_points, dtype=np.float32))
        if ann is not None:
            faiss.write_index(ann, str(folder / ANN_FILE))
        SegmentPostings.write(folder / LEXICAL_DIR, [embedding_text(paper) for paper in papers])
        paper_db.write_papers(folder / PAPERS_FILE, papers, sentences)
        PaperColumns.write(folder / COLUMNS_DIR, papers)
        TitleIndex.write(folder / TITLES_DIR, papers)

    return write


@dataclass(frozen=True)
class IndexChange:
    """The next build, as what differs from the current one.

    ``manifest`` lists the next build's segments: those named in ``written`` are new, each
    written by its function; every other one is carried over from the current build, its
    files linked, with ``deleted`` (where given) as its new tombstones.
    """

    manifest: Manifest
    written: dict[str, SegmentWriter] = field(default_factory=dict)
    deleted: dict[str, np.ndarray] = field(default_factory=dict)


def write_index(index_dir: Path, manifest: Manifest, segment: SegmentWriter) -> None:
    """Write a complete index of one segment beside ``index_dir`` and switch ``index_dir`` to
    it atomically. ``manifest`` names that one segment."""
    check_writable(index_dir)
    (entry,) = manifest.segments
    with _writer_lock(index_dir):
        _write_build(index_dir, IndexChange(manifest, {entry.name: segment}), current=None)


def update_index(index_dir: Path, change: Callable[[CheckedBuild], IndexChange | None]) -> None:
    """Check the current index, let ``change`` derive the next one, and swap it in atomically.

    The writer lock is held from the check to the swap, so two updates never lose each
    other's papers. ``change`` returns None when there is nothing to write. The current build
    is checked first: a damaged build is refused, not carried into the next one.
    """
    read_manifest(index_dir)  # no index there: refused before anything is made beside it
    with _writer_lock(index_dir):
        current = checked_build(index_dir)
        changed = change(current)
        if changed is not None:
            _write_build(index_dir, changed, current=current)
        else:
            _remove_stale_builds(index_dir)  # what killed writers left, as any writer does


def next_segment_name(manifest: Manifest | None) -> str:
    """The name of the next segment written: one past the largest so far."""
    last = max((int(segment.name) for segment in manifest.segments), default=0) if manifest else 0
    return f"{last + 1:06d}"


def _write_build(index_dir: Path, change: IndexChange, *, current: CheckedBuild | None) -> None:
    manifest = change.manifest
    if manifest.paper_count != sum(segment.live for segment in manifest.segments):
        raise ValueError("the manifest's paper count is not its segments' live papers")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    build = builds_dir(index_dir) / f"{stamp}-{os.getpid()}"
    build.mkdir()
    try:
        files = _write_segments(build, change, current)
        manifest = manifest.model_copy(update={"files": files})
        # The manifest goes last: a build folder without one is, by construction, unfinished.
        (build / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
        _fsync_tree(build)
        _switch_link(index_dir, build)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    _remove_stale_builds(index_dir)
    _record_verified(index_dir, build, files)


def _write_segments(
    build: Path, change: IndexChange, current: CheckedBuild | None
) -> dict[str, FileDigest]:
    """Write or link every segment of the next build; the digests of all its files.

    A carried-over segment's files are hard links to the current build's: no byte is copied
    and their digests are the ones already recorded. Only new files are hashed.
    """
    files: dict[str, FileDigest] = {}
    for segment in change.manifest.segments:
        folder = build / SEGMENTS_DIR / segment.name
        folder.mkdir(parents=True)
        writer = change.written.get(segment.name)
        if writer is not None:
            writer(folder)
        else:
            tombstones = segment.name not in change.deleted
            files |= _linked_segment(build, segment, current, tombstones=tombstones)
        deleted = change.deleted.get(segment.name)
        if deleted is not None and len(deleted):
            np.save(folder / DELETED_FILE, np.unique(np.asarray(deleted, dtype=np.int64)))
        if segment.deleted != _tombstones(folder):
            raise ValueError(f"segment {segment.name}: the manifest's deleted count is wrong")
    # Digests of the files as written, so a reader can tell they are still what was written.
    for path in sorted(build.rglob("*")):
        name = path.relative_to(build).as_posix()
        if path.is_file() and name not in files:
            files[name] = FileDigest(size=path.stat().st_size, sha256=file_digest(path))
    return files


def _linked_segment(
    build: Path, segment: Segment, current: CheckedBuild | None, *, tombstones: bool
) -> dict[str, FileDigest]:
    """Carry a segment of the current build into ``build``: its files hard-linked, and its
    tombstones with them where ``tombstones`` (else the caller writes new ones: a new file,
    never the link, which would change the current build's). Their digests are the ones the
    current manifest recorded: nothing is read."""
    if current is None or segment.name not in {s.name for s in current.manifest.segments}:
        raise ValueError(f"segment {segment.name} is neither written nor carried over")
    files: dict[str, FileDigest] = {}
    prefix = f"{SEGMENTS_DIR}/{segment.name}/"
    deleted = segment.path(DELETED_FILE)
    # What the manifest lists, not what the folder holds: a stray file is not carried.
    for name, digest in current.manifest.files.items():
        if name.startswith(prefix) and (name != deleted or tombstones):
            (build / name).parent.mkdir(parents=True, exist_ok=True)
            os.link(current.build / name, build / name)
            files[name] = digest
    return files


def _tombstones(folder: Path) -> int:
    path = folder / DELETED_FILE
    return len(np.load(path, allow_pickle=False)) if path.exists() else 0


def _record_verified(index_dir: Path, build: Path, files: dict[str, FileDigest]) -> None:
    """Note the live build's files as verified: this writer wrote or checked every one, so a
    reader need not hash them again (see ``manifest.VerifiedFiles``). Files of builds that
    are gone are forgotten."""
    verified = VerifiedFiles({})
    for name, digest in files.items():
        verified.digests[VerifiedFiles.key((build / name).stat())] = digest.sha256
    verified.write(builds_dir(index_dir))


@contextmanager
def _writer_lock(index_dir: Path) -> Iterator[None]:
    """One writer at a time per index, so one never removes a build another is still writing."""
    builds = builds_dir(index_dir)
    builds.mkdir(parents=True, exist_ok=True)
    with (builds / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
        index_dir.rename(builds_dir(index_dir) / f"adopted-{os.getpid()}")
    link = pending_link(index_dir, os.getpid())
    link.unlink(missing_ok=True)
    link.symlink_to(build.relative_to(index_dir.parent))
    os.replace(link, index_dir)
    _fsync(index_dir.parent)  # the swap itself survives a power cut


def pending_link(index_dir: Path, pid: int) -> Path:
    """The new link the writer with process id ``pid`` makes beside ``index_dir`` and then
    renames over it; one left behind belongs to a writer killed before its swap."""
    return index_dir.parent / f"{_LINK_PREFIX.format(name=index_dir.name)}{pid}"


_LINK_PREFIX = ".{name}.link-"


def leftovers(index_dir: Path) -> list[Path]:
    """What is not the current build: older builds, and what runs that were killed left (build
    folders, finished or not, and new links not yet swapped in)."""
    current = index_dir.resolve()
    builds = builds_dir(index_dir)
    stale = [
        build
        for build in (builds.iterdir() if builds.is_dir() else [])
        if build.is_dir() and build.resolve() != current
    ]
    prefix = _LINK_PREFIX.format(name=index_dir.name)
    return stale + [
        link
        for link in index_dir.parent.iterdir()
        if link.name.startswith(prefix) and link.is_symlink()
    ]


def _remove_stale_builds(index_dir: Path) -> None:
    """Drop ``leftovers``. Called with the writer lock held, so nothing found here is still
    being written."""
    for path in leftovers(index_dir):
        if path.is_symlink():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path, ignore_errors=True)
