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
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from indexing import paper_db
from indexing.index_types import IndexType, build_ann
from indexing.manifest import (
    ANN_FILE,
    LEXICAL_DIR,
    MANIFEST_FILE,
    MAP_FILE,
    PAPERS_FILE,
    VECTORS_FILE,
    FileDigest,
    IndexUnusable,
    Manifest,
    checked_build,
    file_digest,
)
from indexing.reader import IndexContents, read_contents
from indexing.records import Paper

if TYPE_CHECKING:
    from indexing.lexical import LexicalIndex


def builds_dir(index_dir: Path) -> Path:
    """The folder beside ``index_dir`` that holds its builds (the live one and leftovers)."""
    return index_dir.parent / f".{index_dir.name}-builds"


def check_writable(index_dir: Path) -> None:
    """Refuse to replace anything but an index: ``--out ~/papers`` must not wipe a folder."""
    if index_dir.is_symlink() or not index_dir.exists():
        return
    if not index_dir.is_dir() or not (index_dir / MANIFEST_FILE).is_file():
        raise IndexUnusable(
            f"{index_dir} exists and is not a papersearch index; it is left untouched: "
            f"choose another output folder or remove it"
        )


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
    papers. ``change`` returns None when there is nothing to write. The current build is
    checked first: a damaged build is refused, not carried into the next one.
    """
    with _writer_lock(index_dir):
        changed = change(read_contents(checked_build(index_dir)))
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
    build = builds_dir(index_dir) / f"{stamp}-{os.getpid()}"
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
        paper_db.write_papers(build / PAPERS_FILE, papers, sentences)
        # Digests of the files as written, so a reader can tell they are still what was written.
        files = {
            path.relative_to(build).as_posix(): FileDigest(
                size=path.stat().st_size, sha256=file_digest(path)
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
