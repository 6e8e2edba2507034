"""The index's on-disk layout and its manifest: what a build folder holds, and the checks that
decide whether a build may be served or updated.

An index is a folder holding ``manifest.json`` and its papers in **segments**, as search
engines keep them (Lucene, Tantivy): a large base segment from the last full build or merge,
and small ones that later ``add``s wrote, each under ``segments/<name>/``:

- ``vectors.npy``: one L2-normalised float32 vector per paper (inner product = cosine
  similarity), memory-mapped when served: the pages are the operating system's file cache, so
  several workers serving one index share a single copy;
- ``ann.faiss``: for the approximate index types only (see ``index_types``), in the segments a
  full build or a merge wrote: the FAISS structure that proposes candidates; their exact scores
  always come from ``vectors.npy``. Small segments are searched exactly;
- ``papers.sqlite``: the paper records, row ``i`` describing vector ``i`` (see ``paper_db``);
- ``map.npy``: the corpus map, one float32 ``(x, y)`` in [-1, 1] per paper, row for row (see
  ``corpus_map``);
- ``lexical/``: the BM25 postings of the same papers, row for row (see ``lexical``);
- ``columns/``: what filters and date sorting read (year, date, categories, source, code,
  authors), as memory-mapped arrays and code tables, row for row (see ``columns``);
- ``titles/``: what title look-ups scan (the titles' bytes and letter-pair signatures), one
  entry per titled paper, memory-mapped (see ``title_index``);
- ``deleted.npy``: where papers of the segment were removed or replaced since it was written,
  their rows (tombstones): the segment's other files stay as they were written.

A segment's files never change once written: the next build links them (hard links, no copy)
and writes only what changed, a new segment and new tombstones, so an update costs what
changed, not the corpus. The manifest lists the segments in order: the live papers of the
first, then of the second, and so on, are the index's rows (see ``reader``). Merging rewrites
several segments' live papers as one (see ``update``).

The manifest also records the format version, model, dimension, paper count, corpus checksum,
build time, and the size and sha256 of every other file of the build, checked before the index
is served or updated, so a missing, truncated or altered file is refused with what to run.

The folder named by the user (``data/index``) is a symbolic link to a build folder beside it
(see ``writer``). ``checked_build`` is the one way in: every reader and writer follows the link
once, reads the manifest once and verifies the files once through it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from indexing.errors import PapersearchError
from indexing.index_types import IndexType

# The version of everything this package writes into a build folder: raise it whenever a file,
# a column or the manifest changes meaning, so an index of the older format is refused (and the
# Makefile, which depends on this file, rebuilds its index).
# 2: BM25 index, filter columns and sentence offsets added.
# 3: exact vectors as a memory-mappable .npy, optional ANN structure, backend in the manifest.
# 4: size and sha256 of every data file in the manifest, verified before serving or updating.
# 5: map.npy, the 2-D corpus map computed at index time.
# 6: segments with tombstones; BM25 postings of our own, filter columns and title data as
#    memory-mapped files per segment; order-free checksum.
FORMAT_VERSION = 6
MANIFEST_FILE = "manifest.json"
SEGMENTS_DIR = "segments"
# The files of a segment, inside its folder.
VECTORS_FILE = "vectors.npy"
ANN_FILE = "ann.faiss"
PAPERS_FILE = "papers.sqlite"
MAP_FILE = "map.npy"
LEXICAL_DIR = "lexical"
COLUMNS_DIR = "columns"
TITLES_DIR = "titles"
DELETED_FILE = "deleted.npy"
# A segment's folders of files (each listed in the manifest file by file).
FOLDERS = (LEXICAL_DIR, COLUMNS_DIR, TITLES_DIR)
# Beside the builds: which files were already hashed (see ``VerifiedFiles``).
VERIFIED_FILE = ".verified.json"


class IndexUnusable(PapersearchError, RuntimeError):
    """The index cannot be served; the message says why and what to run."""

    status = 503  # the service cannot answer until its operator rebuilds or restores it
    code = "index_unusable"


class FileDigest(BaseModel):
    """What a data file of a build must still be: its size in bytes and its sha256."""

    size: int
    sha256: str


class Segment(BaseModel):
    """One segment as the manifest lists it."""

    name: str = Field(pattern=r"^[0-9]{6,}$")  # a sequence number: later segments, larger
    rows: int = Field(ge=0)  # papers written into it, live or not
    deleted: int = Field(0, ge=0)  # of those, removed or replaced since (in ``deleted.npy``)
    ann: bool = False  # holds an ANN structure (the segments a full build or a merge wrote)

    @property
    def live(self) -> int:
        return self.rows - self.deleted

    def path(self, name: str) -> str:
        """Where the file ``name`` of this segment lies, relative to the build folder."""
        return f"{SEGMENTS_DIR}/{self.name}/{name}"


class ShardPlacement(BaseModel):
    """Where a shard (``indexing.shards``) sits in the index it was cut from: its rows are
    that index's rows ``first_row`` onwards, and the index is named by its build folder and
    corpus checksum, so shards of another build are never served together."""

    number: int = Field(ge=0)  # 0 .. count - 1, in row order
    count: int = Field(ge=1)
    first_row: int = Field(ge=0)
    parent_papers: int = Field(ge=0)
    parent_checksum: str
    parent_build: str  # the name of the build folder the shard was cut from
    # When that build was made and how long it took (what a sharded service reports).
    parent_built_at: datetime | None = None
    parent_build_seconds: float | None = None


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
    segments: list[Segment] = Field(default_factory=list)
    # Every data file of the build by its path relative to the build folder, recorded by the
    # writer as it writes (callers leave it empty). Empty in a manifest of an older format: that
    # one is refused for its version, which says what to run, before its files are looked at.
    files: dict[str, FileDigest] = Field(default_factory=dict)
    shard: ShardPlacement | None = None  # set in a shard of a larger index only


@dataclass(frozen=True)
class CheckedBuild:
    """A build folder whose manifest was read and checked, and whose files match it."""

    index_dir: Path  # the folder the user named: what error messages say
    build: Path  # the build folder it linked to when it was checked
    manifest: Manifest


def rebuild_hint(index_dir: Path) -> str:
    return f"run `papersearch index --out {index_dir}` to build it"


def checked_build(
    index_dir: Path,
    *,
    model: str | None = None,
    backend: str | None = None,
    verified: Path | None = None,
    shard: bool = False,
    hashed: Callable[[str], bool] | None = None,
) -> CheckedBuild:
    """Follow ``index_dir``'s link once, read its manifest, check it and verify every file.

    ``model`` and ``backend`` are what the caller will use the index with (None: whichever
    built it). ``verified`` is a build folder the caller has just checked this way (``serve``
    does before its workers start): if the link still points at it, its files are not hashed
    a second time. ``shard``: the caller serves shards (``indexing.shards``); anyone else is
    refused one, whose BM25 statistics are its part's, not a corpus's, and whose rows only
    the index it was cut from may change. ``hashed``: which files (by the manifest's
    names) to hash, where the caller reads only those and another process checks the rest
    as it opens them (a sharded service's router; None: all). Raises IndexUnusable, saying
    what to run.
    """
    # Follow the link once: a build swapped in meanwhile must not mix with this one.
    build = index_dir.resolve()
    manifest = read_manifest(index_dir, build=build)
    check_compatible(manifest, index_dir, model, backend)
    if manifest.shard is not None and not shard:
        place = manifest.shard
        raise IndexUnusable(
            f"{index_dir} is shard {place.number} of the {place.count} that `papersearch "
            f"shard` cut from an index, not an index of its own: search, serve or update the "
            f"index it was cut from (`papersearch serve --ray ADDRESS --shards {place.count}` "
            f"serves its shards)"
        )
    if build != verified:
        _verify_files(index_dir, manifest, build, hashed)
    return CheckedBuild(index_dir, build, manifest)


def read_manifest(index_dir: Path, *, build: Path | None = None) -> Manifest:
    """The manifest of ``index_dir`` (or of ``build``, the folder it links to; errors name
    ``index_dir``, the folder the user knows)."""
    path = (build or index_dir) / MANIFEST_FILE
    if not path.is_file():
        raise IndexUnusable(f"no index at {index_dir}: {rebuild_hint(index_dir)}")
    try:
        return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        # Name each bad or missing field: "1 validation error for Manifest" says nothing.
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'manifest'}: {error['msg']}"
            for error in exc.errors()
        )
        raise IndexUnusable(
            f"unreadable manifest in {index_dir} ({problems}): {rebuild_hint(index_dir)}"
        ) from exc
    except (ValueError, OSError) as exc:
        raise IndexUnusable(
            f"unreadable manifest in {index_dir} ({str(exc).splitlines()[0]}): "
            f"{rebuild_hint(index_dir)}"
        ) from exc


def check_compatible(
    manifest: Manifest, index_dir: Path, model: str | None, backend: str | None = None
) -> None:
    """Refuse an index this code or this model cannot serve, saying how to rebuild it.

    ``model`` is the one the service is configured for (None: an update, which keeps the
    index's own). ``backend`` is the one a user asked for, if any (None: serve with the
    index's own). Two backends' vectors differ slightly, so queries are never embedded by
    another backend than the index's papers were: their scores would not rank together.
    """
    if manifest.format_version != FORMAT_VERSION:
        raise IndexUnusable(
            f"index at {index_dir} has format version {manifest.format_version}, this version of "
            f"papersearch reads version {FORMAT_VERSION}: {rebuild_hint(index_dir)}"
        )
    if model is not None and manifest.model != model:
        raise IndexUnusable(
            f"index at {index_dir} was built with model {manifest.model!r} but the service is "
            f"configured for {model!r}: {rebuild_hint(index_dir)} with "
            f"PAPERSEARCH_MODEL={model}, or set PAPERSEARCH_MODEL={manifest.model}"
        )
    if backend is not None and manifest.backend != backend:
        raise IndexUnusable(
            f"index at {index_dir} was built with the {manifest.backend} backend, not "
            f"{backend}: serve it with its own (drop --backend and PAPERSEARCH_BACKEND, or "
            f"pass --backend {manifest.backend}), or {rebuild_hint(index_dir)} with "
            f"--backend {backend}"
        )


def _verify_files(
    index_dir: Path, manifest: Manifest, build: Path, hashed: Callable[[str], bool] | None
) -> None:
    """Check every data file of ``build`` against the size and sha256 the manifest recorded
    when the build was written.

    A file that is missing, truncated or altered (a failed copy, a full disk, a hand edit)
    would otherwise be served as wrong answers or fail on some later request; here it is
    refused up front, naming the file and what to run. Hashing reads every byte, so it is paid
    once per file, never per request: a file already hashed, and unchanged since by its size
    and modification time, is not read again (``VerifiedFiles``), which is what lets an update
    or a reload cost what changed rather than the corpus.
    """
    if not manifest.segments or manifest.paper_count != sum(s.live for s in manifest.segments):
        raise IndexUnusable(
            f"inconsistent index at {index_dir}: its manifest counts {manifest.paper_count} "
            f"papers, its segments hold {sum(s.live for s in manifest.segments)}: "
            f"{rebuild_hint(index_dir)}"
        )
    unlisted = [
        name
        for segment in manifest.segments
        for name in required_files(segment, manifest.index_type)
        if name not in manifest.files
        and not (name.endswith("/") and any(f.startswith(name) for f in manifest.files))
    ]
    if unlisted:
        raise IndexUnusable(
            f"the manifest of the index at {index_dir} records no checksum for "
            f"{', '.join(unlisted)}: {rebuild_hint(index_dir)}"
        )
    verified = VerifiedFiles.read(builds_dir(index_dir))
    for name, expected in manifest.files.items():
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise IndexUnusable(
                f"the manifest of the index at {index_dir} names a file outside it ({name}): "
                f"{rebuild_hint(index_dir)}"
            )
        if hashed is not None and not hashed(name):
            continue
        path = build / name
        try:
            stat = path.stat()
            size = stat.st_size
            if size != expected.size or verified.get(stat) == expected.sha256:
                digest = verified.get(stat)
            else:
                digest = file_digest(path)
        except FileNotFoundError:
            raise IndexUnusable(
                f"{name} is missing from the index at {index_dir}: {rebuild_hint(index_dir)}"
            ) from None
        except OSError as exc:
            raise IndexUnusable(
                f"cannot read {name} of the index at {index_dir} ({exc}): {rebuild_hint(index_dir)}"
            ) from exc
        if size != expected.size:
            raise IndexUnusable(
                f"{name} of the index at {index_dir} has {size} bytes where the manifest "
                f"recorded {expected.size} (truncated or overwritten): {rebuild_hint(index_dir)}"
            )
        if digest != expected.sha256:
            raise IndexUnusable(
                f"{name} of the index at {index_dir} does not match the sha256 its manifest "
                f"recorded (damaged or modified): {rebuild_hint(index_dir)}"
            )


def required_files(segment: Segment, index_type: IndexType) -> list[str]:
    """What a segment must hold, as the manifest names them (a folder ends with "/")."""
    names = [VECTORS_FILE, PAPERS_FILE, MAP_FILE, *(f"{d}/" for d in FOLDERS)]
    if segment.ann and index_type is not IndexType.FLAT:
        names.append(ANN_FILE)
    if segment.deleted:
        names.append(DELETED_FILE)
    return [segment.path(name) for name in names]


def builds_dir(index_dir: Path) -> Path:
    """The folder beside ``index_dir`` that holds its builds (the live one and leftovers)."""
    return index_dir.parent / f".{index_dir.name}-builds"


class VerifiedFiles:
    """The sha256 of files already hashed, by what identifies a file's state on disk: device,
    inode, size and modification time (to the nanosecond).

    Any write changes the modification time, so a file found here unchanged need not be read
    again; a copy is a new inode and is hashed. Only the writer records files (under its
    lock, replacing the record atomically); readers consult it and hash what it lacks. Kept
    beside the builds: a plain folder nobody wrote through the writer is always hashed.
    """

    def __init__(self, digests: dict[str, str]) -> None:
        self.digests = digests

    @staticmethod
    def key(stat: os.stat_result) -> str:
        return f"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"

    def get(self, stat: os.stat_result) -> str | None:
        return self.digests.get(self.key(stat))

    @classmethod
    def read(cls, builds: Path) -> VerifiedFiles:
        try:
            digests = json.loads((builds / VERIFIED_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls({})  # none recorded, or unreadable: every file is hashed
        valid = isinstance(digests, dict) and all(isinstance(v, str) for v in digests.values())
        return cls(digests if valid else {})

    def write(self, builds: Path) -> None:
        """Replace the record atomically (the writer calls this with its lock held)."""
        temporary = builds / f"{VERIFIED_FILE}.{os.getpid()}"
        temporary.write_text(json.dumps(self.digests), encoding="utf-8")
        os.replace(temporary, builds / VERIFIED_FILE)


def file_digest(path: Path) -> str:
    """The sha256 the manifest records for a file, written and checked alike."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
