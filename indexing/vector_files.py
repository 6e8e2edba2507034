"""Precomputed vectors in and out: the one definition of papersearch's vector file.

Users embed a corpus elsewhere (a GPU, a Ray job, another tool) and bring the vectors to
``papersearch index --vectors``, or take an index's vectors out with ``export-vectors``.
Parquet is what those tools already write and read, column by column and in row groups, so a
million vectors stream through in bounded memory.

The format:

- column ``id``: string, the paper id as the corpus gives it (``arxiv:2502.09375``, a slug);
- column ``vector``: ``fixed_size_list<float32>[dimension]``;
- schema metadata ``papersearch.model`` (``all-MiniLM-L6-v2``), ``papersearch.backend``
  (``onnx-int8``, ``torch``) and ``papersearch.dimension``: what made the vectors. Vectors of
  another model, or of the same model through another backend (int8 vectors differ slightly
  from torch's), must never be mixed into one index, so they are checked, never trusted.

Reading is more lenient than writing, within what converts exactly or harmlessly: a
variable-size list (what pandas and Ray write from numpy arrays) is accepted when every row
has the dimension, and float64 values are rounded to float32, the precision the index keeps
anyway. Vectors that are not unit length are normalised, as the model's own last layer does
(sentence-transformers leaves it out unless asked), since the index ranks by inner product and
that equals cosine only on unit vectors; rows already unit length to float32 rounding are kept
bit for bit, so an exported index comes back identical. A zero or non-finite vector has no
direction to search by and is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from indexing.errors import PapersearchError
from indexing.plural import counted
from models import KNOWN_MODELS, ModelUnavailable, resolve_model_name

MODEL_KEY = "papersearch.model"
BACKEND_KEY = "papersearch.backend"
DIMENSION_KEY = "papersearch.dimension"
ID_COLUMN = "id"
VECTOR_COLUMN = "vector"

# Rows per row group written, and per batch read: 65,536 vectors of 384 floats are 96 MiB,
# small beside the index itself and large enough that Parquet's per-group overhead vanishes.
CHUNK_ROWS = 65_536

# How far from 1 a vector's length may be and still count as unit length: float32 rounding
# of a normalised vector stays within about 1e-6 of it; anything further was not normalised.
UNIT_TOLERANCE = 1e-4

# How many offending ids a refusal names; the count says how many there are in all.
NAMED_IDS = 5


class VectorFileError(PapersearchError, ValueError):
    """A vector file that cannot be used; nothing was written."""

    status = 422  # what was given cannot be indexed
    code = "invalid_vectors"


def write_vectors(
    path: Path,
    ids: Sequence[str],
    vectors: np.ndarray,
    *,
    model: str,
    backend: str,
) -> None:
    """Write ``vectors`` (``(n, dimension)``, row ``i`` the vector of ``ids[i]``) to ``path``.

    ``vectors`` may be a memory-mapped array of millions of rows: it is read one chunk at a
    time, so memory stays bounded by ``CHUNK_ROWS``. The file appears whole or not at all.
    """
    if vectors.ndim != 2 or vectors.shape[1] == 0:
        raise VectorFileError(
            f"vectors must be a 2-D array (papers x dimension), not shape {vectors.shape}"
        )
    if len(ids) != len(vectors):
        raise VectorFileError(f"{len(ids)} ids for {len(vectors)} vectors: give one id a vector")

    def chunks() -> Iterator[tuple[Sequence[str], np.ndarray]]:
        for start in range(0, len(ids), CHUNK_ROWS):
            yield ids[start : start + CHUNK_ROWS], vectors[start : start + CHUNK_ROWS]

    write_vector_chunks(path, chunks(), model=model, backend=backend, dimension=vectors.shape[1])


def write_vector_chunks(
    path: Path,
    chunks: Iterable[tuple[Sequence[str], np.ndarray]],
    *,
    model: str,
    backend: str,
    dimension: int,
) -> int:
    """Write ``(ids, vectors)`` chunks as they come (an index's rows, read a chunk at a time)
    and return the number of rows; each chunk is one row group. Atomic: written to a
    temporary file beside ``path``, then renamed over it."""
    if path.is_dir():  # refused before a chunk is read, not after the whole index was
        raise VectorFileError(
            f"{path} is a folder: name the file to write, such as {path / 'vectors.parquet'}"
        )
    schema = vector_schema(dimension, model=model, backend=backend)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    os.close(descriptor)
    rows = 0
    try:
        # ids are unique, so a dictionary would only cost; vectors do not compress.
        with pq.ParquetWriter(
            temporary,
            schema,
            use_dictionary=[ID_COLUMN],
            compression={ID_COLUMN: "zstd", VECTOR_COLUMN: "none"},
        ) as writer:
            for chunk_ids, chunk_vectors in chunks:
                writer.write_table(_table(schema, chunk_ids, chunk_vectors, dimension))
                rows += len(chunk_ids)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the file from other users
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return rows


def vector_schema(dimension: int, *, model: str, backend: str) -> pa.Schema:
    return pa.schema(
        [
            pa.field(ID_COLUMN, pa.string(), nullable=False),
            pa.field(VECTOR_COLUMN, pa.list_(pa.float32(), dimension), nullable=False),
        ],
        metadata={MODEL_KEY: model, BACKEND_KEY: backend, DIMENSION_KEY: str(dimension)},
    )


def _table(schema: pa.Schema, ids: Sequence[str], vectors: np.ndarray, dimension: int) -> pa.Table:
    if len(ids) != len(vectors) or vectors.ndim != 2 or vectors.shape[1] != dimension:
        raise VectorFileError(
            f"a chunk of {len(ids)} ids came with vectors of shape {vectors.shape}; "
            f"expected ({len(ids)}, {dimension})"
        )
    values = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    return pa.table(
        [
            pa.array(list(ids), type=pa.string()),
            pa.FixedSizeListArray.from_arrays(values, dimension),
        ],
        schema=schema,
    )


@dataclass(frozen=True)
class SuppliedVectors:
    """The checked vectors of one file: unit-length float32 rows, one per distinct id."""

    path: Path
    model: str
    backend: str
    ids: list[str]
    vectors: np.ndarray  # (len(ids), dimension), float32, unit rows
    normalised: int  # rows that were not unit length in the file

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    @classmethod
    def read(
        cls,
        path: Path,
        *,
        model: str,
        backend: str,
        dimension: int | None = None,
        declared_model: str | None = None,
        declared_backend: str | None = None,
    ) -> SuppliedVectors:
        """Read and check ``path`` for an index of ``model`` through ``backend``.

        ``dimension`` is the index's where vectors are added to one; otherwise the model's
        own, read from its package where it is installed. A file without papersearch's
        metadata is taken only when the caller says what made it (``declared_model`` and
        ``declared_backend``, the CLI's ``--vectors-model``/``--vectors-backend``): vectors of
        the wrong model would search fine and rank nonsense, so a guess is never made.
        """
        parquet = _open(path)
        made_by = _made_by(parquet.schema_arrow, path, declared_model, declared_backend)
        if made_by != (resolve_model_name(model), backend):
            raise VectorFileError(
                f"{path} holds vectors of {made_by[0]} ({made_by[1]}), but the index uses "
                f"{model} ({backend}): vectors of different models or backends cannot be "
                f"searched together; embed with {model} ({backend}), or index with "
                f"--model {made_by[0]} --backend {made_by[1]}"
            )
        file_dimension = _vector_dimension(parquet, path)
        expected = dimension if dimension is not None else model_dimension(model)
        if expected is not None and file_dimension != expected:
            whose = "the index's" if dimension is not None else f"{model}'s"
            raise VectorFileError(
                f"{path} holds {file_dimension}-dimensional vectors, but {whose} are "
                f"{expected}-dimensional: they were not made by {model}"
            )
        ids, vectors = _read_rows(parquet, path, file_dimension)
        _refuse_duplicates(ids, path)
        normalised = _normalise(vectors, ids, path)
        return cls(path, made_by[0], made_by[1], ids, vectors, normalised)

    def rows_for(self, paper_ids: Sequence[str]) -> np.ndarray:
        """Each paper's row in ``vectors``, ``-1`` where the file has none.

        A file may hold more papers than are being indexed: vectors of a whole dump, computed
        once on a GPU, serve each slice added from it. One that holds none of them is
        refused: its ids are not the corpus's (another id scheme, a stale file), and every
        paper would silently be embedded instead.
        """
        row_of = {paper_id: row for row, paper_id in enumerate(self.ids)}
        rows = np.fromiter(
            (row_of.get(paper_id, -1) for paper_id in paper_ids), dtype=np.int64, count=-1
        )
        if len(self.ids) and not (rows >= 0).any():
            raise VectorFileError(
                f"{self.path} holds vectors for {counted(len(self.ids), 'id')}, none of them a "
                f"paper of the corpus: {_named(self.ids)}; ids must be the corpus's own "
                f"(`papersearch export-vectors` shows them)"
            )
        return rows


def model_dimension(model: str) -> int | None:
    """The packaged model's output size, read from its sentence-transformers configuration
    without loading it (a build whose vectors are all supplied loads no model); ``None`` when
    the model is not installed or its configuration does not say."""
    try:
        folder = KNOWN_MODELS[resolve_model_name(model)].path()
        modules = json.loads((folder / "modules.json").read_text())
    except (KeyError, ModelUnavailable, OSError, ValueError):
        return None
    dimension: int | None = None
    for module in modules:
        kind = str(module.get("type", ""))
        config = folder / str(module.get("path", "")) / "config.json"
        try:
            if kind.endswith(".Pooling"):
                dimension = int(json.loads(config.read_text())["word_embedding_dimension"])
            elif kind.endswith(".Dense"):
                dimension = int(json.loads(config.read_text())["out_features"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return dimension


def _open(path: Path) -> pq.ParquetFile:
    if not path.is_file():
        raise VectorFileError(f"vector file {path} does not exist or is not a file")
    try:
        # Without pre-buffering, and read on this thread below, a batch at a time is all
        # Arrow holds: with both, it read ahead a million rows' worth (1.8 GB) of buffers.
        return pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise VectorFileError(f"{path} is not a readable Parquet file: {exc}") from exc


def _made_by(
    schema: pa.Schema, path: Path, declared_model: str | None, declared_backend: str | None
) -> tuple[str, str]:
    """``(model, backend)`` from the file's metadata, else from the caller's declaration; a
    declaration that contradicts the metadata is refused rather than either one believed."""
    metadata = schema.metadata or {}
    stored_model = metadata.get(MODEL_KEY.encode())
    stored_backend = metadata.get(BACKEND_KEY.encode())
    if stored_model is None or stored_backend is None:
        if declared_model is None or declared_backend is None:
            raise VectorFileError(
                f"{path} does not say which model and backend made its vectors (schema "
                f"metadata {MODEL_KEY} and {BACKEND_KEY}); say it with --vectors-model and "
                f"--vectors-backend, or write the file with indexing.vector_files.write_vectors"
            )
        return resolve_model_name(declared_model), declared_backend
    made_by = (resolve_model_name(stored_model.decode()), stored_backend.decode())
    declared = (
        resolve_model_name(declared_model) if declared_model else made_by[0],
        declared_backend or made_by[1],
    )
    if declared != made_by:
        raise VectorFileError(
            f"{path} says its vectors were made by {made_by[0]} ({made_by[1]}), not "
            f"{declared[0]} ({declared[1]}) as declared; drop --vectors-model/--vectors-backend"
        )
    return made_by


def _vector_dimension(parquet: pq.ParquetFile, path: Path) -> int:
    """The vectors' dimension: the fixed size where the column has one, else the first row's
    (every row is checked against it as it is read)."""
    schema = parquet.schema_arrow
    missing = [name for name in (ID_COLUMN, VECTOR_COLUMN) if schema.get_field_index(name) < 0]
    if missing:
        raise VectorFileError(
            f"{path} has no {' or '.join(repr(name) for name in missing)} column (it has "
            f"{', '.join(schema.names) or 'none'}): a vector file has 'id' (string) and "
            f"'vector' (fixed_size_list<float32>)"
        )
    id_type = schema.field(ID_COLUMN).type
    if not (pa.types.is_string(id_type) or pa.types.is_large_string(id_type)):
        raise VectorFileError(f"{path}: column 'id' is {id_type}, not a string")
    vector_type = schema.field(VECTOR_COLUMN).type
    if not (
        pa.types.is_fixed_size_list(vector_type)
        or pa.types.is_list(vector_type)
        or pa.types.is_large_list(vector_type)
    ) or not (
        pa.types.is_float32(vector_type.value_type) or pa.types.is_float64(vector_type.value_type)
    ):
        raise VectorFileError(
            f"{path}: column 'vector' is {vector_type}, not a list of float32 (or float64)"
        )
    if pa.types.is_fixed_size_list(vector_type):
        size = int(vector_type.list_size)
    else:
        if parquet.metadata.num_rows == 0:
            raise VectorFileError(f"{path} holds no vectors")
        first = next(parquet.iter_batches(batch_size=1, columns=[VECTOR_COLUMN])).column(0)[0]
        if not first.is_valid:
            raise VectorFileError(f"{path} has rows without a vector")
        size = len(first)
    stated = (schema.metadata or {}).get(DIMENSION_KEY.encode())
    if stated is not None and stated.decode() != str(size):
        raise VectorFileError(
            f"{path}: its metadata says {DIMENSION_KEY}={stated.decode()}, but its vectors "
            f"have {size} values"
        )
    if size == 0:
        raise VectorFileError(f"{path} holds vectors of no values")
    return size


def _read_rows(parquet: pq.ParquetFile, path: Path, dimension: int) -> tuple[list[str], np.ndarray]:
    """Every row, batch by batch, into one float32 array allocated once: the file's own
    copy never exists whole in memory beside it."""
    total = parquet.metadata.num_rows
    if total == 0:
        raise VectorFileError(f"{path} holds no vectors")
    ids: list[str] = []
    vectors = np.empty((total, dimension), dtype=np.float32)
    at = 0
    try:
        batches = parquet.iter_batches(
            batch_size=CHUNK_ROWS, columns=[ID_COLUMN, VECTOR_COLUMN], use_threads=False
        )
        for batch in batches:
            id_column, vector_column = batch.column(0), batch.column(1)
            if id_column.null_count or vector_column.null_count:
                raise VectorFileError(f"{path} has rows without an id or a vector")
            if pa.types.is_fixed_size_list(vector_column.type):
                values = vector_column.flatten()
            else:
                lengths = vector_column.value_lengths().to_numpy(zero_copy_only=False)
                wrong = np.flatnonzero(lengths != dimension)
                if len(wrong):
                    raise VectorFileError(
                        f"{path}: the vector of {id_column[int(wrong[0])].as_py()!r} has "
                        f"{lengths[wrong[0]]} values, the first row's {dimension}"
                    )
                values = vector_column.flatten()
            if values.null_count:
                raise VectorFileError(f"{path} has vectors with missing values")
            block = values.to_numpy(zero_copy_only=False).reshape(-1, dimension)
            vectors[at : at + len(block)] = block  # float64 rounds to float32 here
            ids.extend(id_column.to_pylist())
            at += len(block)
    except pa.ArrowException as exc:
        raise VectorFileError(f"{path} could not be read: {exc}") from exc
    if at != total:
        raise VectorFileError(f"{path} declares {total} rows but holds {at}")
    empty = [paper_id for paper_id in ids if not paper_id.strip()]
    if empty:
        raise VectorFileError(f"{path} has {counted(len(empty), 'empty id')}")
    return ids, vectors


def _refuse_duplicates(ids: list[str], path: Path) -> None:
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for paper_id in ids:
        if paper_id in seen:
            repeated[paper_id] = None
        seen.add(paper_id)
    if repeated:
        raise VectorFileError(
            f"{path} has more than one vector for {counted(len(repeated), 'id')}: "
            f"{_named(list(repeated))}; keep one vector per paper"
        )


def _normalise(vectors: np.ndarray, ids: list[str], path: Path) -> int:
    """Scale every row to unit length in place and return how many needed it; zero and
    non-finite rows are refused (there is no direction to rank them by)."""
    normalised = 0
    for start in range(0, len(vectors), CHUNK_ROWS):
        block = vectors[start : start + CHUNK_ROWS]
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            bad = [ids[start + int(row)] for row in np.flatnonzero(~finite)]
            raise VectorFileError(
                f"{path} has non-finite values (NaN or infinity) in the vectors of "
                f"{counted(len(bad), 'id')}: {_named(bad)}"
            )
        norms = np.linalg.norm(block.astype(np.float64), axis=1)
        zero = norms == 0
        if zero.any():
            bad = [ids[start + int(row)] for row in np.flatnonzero(zero)]
            raise VectorFileError(
                f"{path} has zero vectors for {counted(len(bad), 'id')}: {_named(bad)}"
            )
        off = np.abs(norms - 1.0) > UNIT_TOLERANCE
        if off.any():
            block[off] = (block[off] / norms[off, None]).astype(np.float32)
            normalised += int(off.sum())
    return normalised


def _named(ids: Sequence[str]) -> str:
    named = ", ".join(repr(paper_id) for paper_id in ids[:NAMED_IDS])
    return named + (", …" if len(ids) > NAMED_IDS else "")
