"""The index's on-disk layout and its manifest: what a build folder holds, and the checks that
decide whether a build may be served or updated.

An index is a folder holding:

- ``manifest.json``: format version, model, dimension, paper count, corpus checksum, build time,
  and the size and sha256 of every other file of the build, checked before the index is served
  or updated, so a missing, truncated or altered file is refused with what to run;
- ``vectors.npy``: one L2-normalised float32 vector per paper (inner product = cosine
  similarity), memory-mapped when served: the pages are the operating system's file cache, so
  several workers serving one index share a single copy;
- ``ann.faiss``: for the approximate index types only (see ``index_types``), the FAISS
  structure that proposes candidates; their exact scores always come from ``vectors.npy``;
- ``papers.sqlite``: the paper records, row ``i`` describing vector ``i`` (see ``paper_db``);
- ``map.npy``: the corpus map, one float32 ``(x, y)`` in [-1, 1] per paper, row for row (see
  ``corpus_map``): computed when the index is built, because a t-SNE takes seconds to minutes,
  far too long for a request;
- ``lexical/``: the BM25 index of the same papers, row for row (bm25s's own files).

The folder named by the user (``data/index``) is a symbolic link to a build folder beside it
(see ``writer``). ``checked_build`` is the one way in: every reader and writer follows the link
once, reads the manifest once and verifies the files once through it.
"""

from __future__ import annotations

import hashlib
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
FORMAT_VERSION = 5
MANIFEST_FILE = "manifest.json"
VECTORS_FILE = "vectors.npy"
ANN_FILE = "ann.faiss"
PAPERS_FILE = "papers.sqlite"
MAP_FILE = "map.npy"
LEXICAL_DIR = "lexical"


class IndexUnusable(PapersearchError, RuntimeError):
    """The index cannot be served; the message says why and what to run."""

    status = 503  # the service cannot answer until its operator rebuilds or restores it
    code = "index_unusable"


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
    # writer as it writes (callers leave it empty). Empty in a manifest of an older format: that
    # one is refused for its version, which says what to run, before its files are looked at.
    files: dict[str, FileDigest] = Field(default_factory=dict)


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
) -> CheckedBuild:
    """Follow ``index_dir``'s link once, read its manifest, check it and verify every file.

    ``model`` and ``backend`` are what the caller will use the index with (None: whichever
    built it). ``verified`` is a build folder the caller has just checked this way (``serve``
    does before its workers start): if the link still points at it, its files are not hashed
    a second time. Raises IndexUnusable, saying what to run.
    """
    # Follow the link once: a build swapped in meanwhile must not mix with this one.
    build = index_dir.resolve()
    manifest = read_manifest(index_dir, build=build)
    check_compatible(manifest, index_dir, model, backend)
    if build != verified:
        _verify_files(index_dir, manifest, build)
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


def _verify_files(index_dir: Path, manifest: Manifest, build: Path) -> None:
    """Check every data file of ``build`` against the size and sha256 the manifest recorded
    when the build was written.

    A file that is missing, truncated or altered (a failed copy, a full disk, a hand edit, a
    bad sector) would otherwise be served as wrong answers or fail on some later request;
    here it is refused up front, naming the file and what to run. Hashing reads every byte,
    so it is paid when an index is opened or updated, never per request.
    """
    required = [VECTORS_FILE, PAPERS_FILE, MAP_FILE]
    if manifest.index_type is not IndexType.FLAT:
        required.append(ANN_FILE)
    unlisted = [name for name in required if name not in manifest.files]
    if not any(name.startswith(f"{LEXICAL_DIR}/") for name in manifest.files):
        unlisted.append(f"{LEXICAL_DIR}/")
    if unlisted:
        raise IndexUnusable(
            f"the manifest of the index at {index_dir} records no checksum for "
            f"{', '.join(unlisted)}: {rebuild_hint(index_dir)}"
        )
    for name, expected in manifest.files.items():
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise IndexUnusable(
                f"the manifest of the index at {index_dir} names a file outside it ({name}): "
                f"{rebuild_hint(index_dir)}"
            )
        path = build / name
        try:
            size = path.stat().st_size
            digest = file_digest(path) if size == expected.size else None
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


def file_digest(path: Path) -> str:
    """The sha256 the manifest records for a file, written and checked alike."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
