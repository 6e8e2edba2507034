"""Precomputed vectors in and out: ``papersearch export-vectors`` and ``index --vectors``,
on the seed index and the real model; every refusal is one line and leaves the index as it
was."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indexing.build import build_index
from indexing.manifest import checked_build, read_manifest
from indexing.reader import PaperIndex
from indexing.vector_files import (
    BACKEND_KEY,
    DIMENSION_KEY,
    MODEL_KEY,
    SuppliedVectors,
    VectorFileError,
    write_vectors,
)
from models import DEFAULT_BACKEND, DEFAULT_MODEL
from service.settings import SEED_CAPTURE_DATE
from tests.conftest import SEEDS
from tests.test_cli import run_cli
from tests.utils.index_files import linked_copy, live_build


def index_vectors(index_dir: Path) -> tuple[list[str], np.ndarray]:
    """An index's ids and vectors, in row order."""
    index = PaperIndex.open_checked(checked_build(index_dir))
    try:
        ids = index.paper_ids()
        return ids, index.vectors_at(np.arange(len(ids)))
    finally:
        index.close()


def by_id(ids: list[str], vectors: np.ndarray, wanted: list[str]) -> np.ndarray:
    row_of = {paper_id: row for row, paper_id in enumerate(ids)}
    return vectors[[row_of[paper_id] for paper_id in wanted]]


@pytest.fixture(scope="module")
def seed_vectors(seed_build) -> tuple[list[str], np.ndarray]:
    return index_vectors(seed_build.index_dir)


def export(capsys, index_dir: Path, out: Path) -> tuple[int, str, str]:
    return run_cli(capsys, "export-vectors", "--index", str(index_dir), "--out", str(out))


def index_with(capsys, out_dir: Path, vectors: Path, cache: Path, *extra: str):
    return run_cli(
        capsys, "index", str(SEEDS), "--out", str(out_dir), "--vectors", str(vectors),
        "--cache-dir", str(cache), "--capture-date", SEED_CAPTURE_DATE.isoformat(), "--quiet",
        *extra,
    )  # fmt: skip


def test_exported_vectors_index_to_the_same_vectors_without_the_model(
    capsys, seed_build, seed_vectors, tmp_path
):
    out = tmp_path / "seeds.parquet"
    code, said, err = export(capsys, seed_build.index_dir, out)
    assert (code, err) == (0, "")
    assert said == (
        f"exported 98 vectors of {seed_build.index_dir} ({DEFAULT_MODEL}, {DEFAULT_BACKEND}) "
        f"to {out}\n"
    )
    schema = pq.read_schema(out)
    assert schema.field("vector").type == pa.list_(pa.float32(), 384)
    assert schema.metadata[MODEL_KEY.encode()] == DEFAULT_MODEL.encode()
    assert schema.metadata[BACKEND_KEY.encode()] == DEFAULT_BACKEND.encode()
    assert schema.metadata[DIMENSION_KEY.encode()] == b"384"

    # An empty cache: whatever is not in the file would have to be embedded.
    new_index = tmp_path / "from-file"
    code, said, err = index_with(capsys, new_index, out, tmp_path / "empty-cache")
    assert (code, err) == (0, "")
    assert f": 98 from {out}, 0 embedded, 0 reused from cache, " in said
    ids, vectors = index_vectors(new_index)
    assert sorted(ids) == sorted(seed_vectors[0])
    assert np.array_equal(vectors, by_id(*seed_vectors, ids))


def test_no_model_is_loaded_when_every_paper_has_a_vector(seed_build, tmp_path):
    out = tmp_path / "seeds.parquet"
    ids, vectors = index_vectors(seed_build.index_dir)
    write_vectors(out, ids, vectors, model=DEFAULT_MODEL, backend=DEFAULT_BACKEND)
    loads: list[tuple[str, str]] = []

    def load_model(name: str, backend: str):
        loads.append((name, backend))
        raise AssertionError("the model was loaded")

    report = build_index(
        [SEEDS], tmp_path / "index", cache_dir=tmp_path / "cache", model_name=DEFAULT_MODEL,
        load_model=load_model, capture_date=SEED_CAPTURE_DATE, progress=False, vectors=out,
    )  # fmt: skip
    assert loads == []
    assert (report.supplied, report.embedded, report.reused) == (98, 0, 0)


def test_a_file_covering_some_papers_embeds_only_the_rest(capsys, seed_vectors, tmp_path):
    ids, vectors = seed_vectors
    some = tmp_path / "some.parquet"
    write_vectors(some, ids[:95], vectors[:95], model=DEFAULT_MODEL, backend=DEFAULT_BACKEND)
    new_index = tmp_path / "index"
    code, said, err = index_with(capsys, new_index, some, tmp_path / "empty-cache")
    assert (code, err) == (0, "")
    assert f": 95 from {some}, 3 embedded, 0 reused from cache, " in said
    new_ids, new_vectors = index_vectors(new_index)
    assert np.array_equal(by_id(new_ids, new_vectors, ids[:95]), vectors[:95])
    # The other three are the model's own, as the seed index has them.
    assert np.allclose(by_id(new_ids, new_vectors, ids[95:]), vectors[95:], atol=1e-5)


def test_vectors_that_are_not_unit_length_are_normalised(capsys, seed_vectors, tmp_path):
    ids, vectors = seed_vectors
    scaled = tmp_path / "scaled.parquet"
    write_vectors(scaled, ids, vectors * 3.0, model=DEFAULT_MODEL, backend=DEFAULT_BACKEND)
    supplied = SuppliedVectors.read(scaled, model=DEFAULT_MODEL, backend=DEFAULT_BACKEND)
    assert supplied.normalised == 98
    assert np.allclose(np.linalg.norm(supplied.vectors, axis=1), 1.0, atol=1e-6)
    assert np.allclose(supplied.vectors, vectors, atol=1e-6)


def test_a_file_without_metadata_is_taken_when_its_model_is_named(capsys, seed_vectors, tmp_path):
    """What pandas or Ray write: variable-size float64 lists, no papersearch metadata."""
    ids, vectors = seed_vectors
    plain = tmp_path / "plain.parquet"
    pq.write_table(
        pa.table({"id": ids, "vector": [row.astype(np.float64).tolist() for row in vectors]}),
        plain,
    )
    new_index = tmp_path / "index"
    code, said, err = index_with(capsys, new_index, plain, tmp_path / "cache")
    assert code == 1 and said == ""
    assert "does not say which model and backend made its vectors" in err
    assert "--vectors-model and --vectors-backend" in err
    code, said, err = index_with(
        capsys, new_index, plain, tmp_path / "cache",
        "--vectors-model", DEFAULT_MODEL, "--vectors-backend", DEFAULT_BACKEND,
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert f": 98 from {plain}, 0 embedded, " in said
    new_ids, new_vectors = index_vectors(new_index)
    assert np.array_equal(new_vectors, by_id(*seed_vectors, new_ids))


def test_written_vectors_round_trip(tmp_path):
    """A memory-mapped array of more rows than one chunk, as a benchmark writes it."""
    rng = np.random.default_rng(7)
    rows = 70_000  # more than one row group of CHUNK_ROWS
    mapped = np.lib.format.open_memmap(
        tmp_path / "v.npy", mode="w+", dtype=np.float32, shape=(rows, 16)
    )
    mapped[:] = rng.normal(size=(rows, 16)).astype(np.float32)
    mapped /= np.linalg.norm(mapped, axis=1, keepdims=True)
    ids = [f"paper-{i}" for i in range(rows)]
    out = tmp_path / "v.parquet"
    write_vectors(out, ids, mapped, model="some-model", backend="torch")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.npy", "v.parquet"]  # no temp left
    assert out.stat().st_mode & 0o777 == 0o644
    assert pq.ParquetFile(out).num_row_groups == 2
    read = SuppliedVectors.read(out, model="some-model", backend="torch", dimension=16)
    assert read.ids == ids
    assert np.array_equal(read.vectors, np.asarray(mapped))
    assert (read.model, read.backend, read.normalised) == ("some-model", "torch", 0)
    with pytest.raises(VectorFileError, match="3 ids for 2 vectors"):
        write_vectors(out, ["a", "b", "c"], mapped[:2], model="m", backend="torch")


def _table(ids, vectors, *, model=DEFAULT_MODEL, backend=DEFAULT_BACKEND) -> pa.Table:
    return pa.table({"id": ids, "vector": vectors}).replace_schema_metadata(
        {MODEL_KEY: model, BACKEND_KEY: backend}
    )


def _refusals(ids: list[str], vectors: np.ndarray, folder: Path) -> dict[str, tuple[Path, str]]:
    """Each bad file, with what its refusal must say."""

    def written(name: str, file_ids=ids, file_vectors=vectors, **metadata: str) -> Path:
        path = folder / f"{name}.parquet"
        write_vectors(path, file_ids, file_vectors, **{"model": DEFAULT_MODEL,
                      "backend": DEFAULT_BACKEND, **metadata})  # fmt: skip
        return path

    def table(name: str, table: pa.Table) -> Path:
        path = folder / f"{name}.parquet"
        pq.write_table(table, path)
        return path

    not_parquet = folder / "vectors.csv"
    not_parquet.write_text("id,vector\nx,1\n")
    bad = vectors.copy()
    bad[3, 5] = np.nan
    zero = vectors.copy()
    zero[[1, 2]] = 0.0
    unknown = [f"not-a-seed-{i}" for i in range(7)]
    return {
        "not parquet": (not_parquet, "is not a readable Parquet file"),
        "missing file": (folder / "nope.parquet", "does not exist"),
        "no vector column": (
            table("no-vector", _table(ids, [1.0] * len(ids)).drop_columns(["vector"])),
            "has no 'vector' column (it has id)",
        ),
        "vector of ints": (
            table("ints", _table(ids, [[1, 2, 3]] * len(ids))),
            "column 'vector' is list<element: int64>, not a list of float32 (or float64)",
        ),
        "other dimension": (
            written("dim", file_vectors=vectors[:, :100]),
            "holds 100-dimensional vectors, but all-MiniLM-L6-v2's are 384-dimensional",
        ),
        "other model": (
            written("mpnet", model="all-mpnet-base-v2"),
            f"holds vectors of all-mpnet-base-v2 (onnx-int8), but the index uses "
            f"{DEFAULT_MODEL} (onnx-int8)",
        ),
        "other backend": (
            written("torch", backend="torch"),
            f"holds vectors of {DEFAULT_MODEL} (torch), but the index uses {DEFAULT_MODEL} "
            f"(onnx-int8): vectors of different models or backends cannot be searched together",
        ),
        "duplicate ids": (
            written("dupes", file_ids=[ids[0], *ids[:-1]]),
            f"has more than one vector for 1 id: '{ids[0]}'; keep one vector per paper",
        ),
        "not finite": (written("nan", file_vectors=bad), f"in the vectors of 1 id: '{ids[3]}'"),
        "zero": (written("zero", file_vectors=zero), f"zero vectors for 2 ids: '{ids[1]}'"),
        "ids not in the corpus": (
            written("unknown", file_ids=unknown, file_vectors=vectors[:7]),
            "holds vectors for 7 ids, none of them a paper of the corpus: 'not-a-seed-0', "
            "'not-a-seed-1', 'not-a-seed-2', 'not-a-seed-3', 'not-a-seed-4', …",
        ),
    }


REFUSALS = [
    "not parquet", "missing file", "no vector column", "vector of ints", "other dimension",
    "other model", "other backend", "duplicate ids", "not finite", "zero",
    "ids not in the corpus",
]  # fmt: skip


@pytest.mark.parametrize("case", REFUSALS)
def test_a_bad_vector_file_is_refused_in_one_line_and_the_index_kept(
    capsys, case, seed_build, seed_vectors, cache_dir, tmp_path
):
    own = linked_copy(seed_build.index_dir, tmp_path / "index")
    before = (live_build(own), read_manifest(own))
    path, message = _refusals(*seed_vectors, tmp_path)[case]
    code, said, err = index_with(capsys, own, path, cache_dir, "--force")
    assert code == 1 and said == ""
    assert err.startswith("papersearch: error: ") and err.count("\n") == 1, err
    assert message in err
    assert (live_build(own), read_manifest(own)) == before


def test_export_of_a_missing_index_is_one_line(capsys, tmp_path):
    code, said, err = export(capsys, tmp_path / "nothing", tmp_path / "out.parquet")
    assert code == 1 and said == ""
    assert err.startswith(f"papersearch: error: no index at {tmp_path / 'nothing'}")
    assert err.count("\n") == 1
    assert not (tmp_path / "out.parquet").exists()


def test_export_into_a_folder_is_one_line(capsys, seed_build, tmp_path):
    code, said, err = export(capsys, seed_build.index_dir, tmp_path)
    assert (code, said) == (1, "")
    assert err == (
        f"papersearch: error: {tmp_path} is a folder: name the file to write, such as "
        f"{tmp_path / 'vectors.parquet'}\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_export_after_a_removal_holds_the_papers_left(capsys, seed_build, seed_vectors, tmp_path):
    own = linked_copy(seed_build.index_dir, tmp_path / "index")
    removed = seed_vectors[0][10]
    assert run_cli(capsys, "remove", removed, "--index", str(own))[0] == 0
    out = tmp_path / "left.parquet"
    code, said, err = export(capsys, own, out)
    assert (code, err) == (0, "") and said.startswith("exported 97 vectors of ")
    left = SuppliedVectors.read(out, model=DEFAULT_MODEL, backend=DEFAULT_BACKEND)
    assert sorted(left.ids) == sorted(set(seed_vectors[0]) - {removed})
    assert np.array_equal(left.vectors, by_id(*seed_vectors, left.ids))


def _new_papers(folder: Path) -> tuple[Path, list[str]]:
    corpus = folder / "new.jsonl"
    ids = ["vectors-test-1", "vectors-test-2"]
    corpus.write_text(
        "".join(
            json.dumps({"id": paper_id, "title": f"Paper {paper_id}", "abstract": "Words."}) + "\n"
            for paper_id in ids
        )
    )
    return corpus, ids


def test_add_takes_the_added_papers_vectors_from_the_file(capsys, seed_build, tmp_path):
    """The file may hold more papers than are added (a whole dump's vectors, computed once):
    the added papers' are taken, the others left."""
    own = linked_copy(seed_build.index_dir, tmp_path / "index")
    corpus, ids = _new_papers(tmp_path)
    vectors = np.random.default_rng(3).normal(size=(12, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    supplied = tmp_path / "new.parquet"
    others = [f"elsewhere-{i}" for i in range(10)]
    write_vectors(supplied, [*others, *ids], vectors, model=DEFAULT_MODEL, backend=DEFAULT_BACKEND)
    vectors = vectors[10:]
    code, said, err = run_cli(
        capsys, "add", str(corpus), "--index", str(own), "--vectors", str(supplied),
        "--cache-dir", str(tmp_path / "empty-cache"), "--quiet",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert ": 2 added, 0 replaced, 0 removed; 0 embedded, 2 from a vector file, " in said
    assert np.array_equal(by_id(*index_vectors(own), ids), vectors)


@pytest.mark.parametrize(
    ("dimension", "backend", "message"),
    [
        (
            100,
            DEFAULT_BACKEND,
            "holds 100-dimensional vectors, but the index's are 384-dimensional",
        ),
        (384, "torch", f"holds vectors of {DEFAULT_MODEL} (torch), but the index uses "),
    ],
)
def test_add_refuses_vectors_unlike_the_index(
    capsys, seed_build, cache_dir, tmp_path, dimension, backend, message
):
    own = linked_copy(seed_build.index_dir, tmp_path / "index")
    before = (live_build(own), read_manifest(own))
    corpus, ids = _new_papers(tmp_path)
    supplied = tmp_path / "new.parquet"
    write_vectors(supplied, ids, np.ones((2, dimension), np.float32), model=DEFAULT_MODEL,
                  backend=backend)  # fmt: skip
    code, said, err = run_cli(
        capsys, "add", str(corpus), "--index", str(own), "--vectors", str(supplied),
        "--cache-dir", str(cache_dir), "--quiet",
    )  # fmt: skip
    assert code == 1 and said == ""
    assert err.startswith("papersearch: error: ") and err.count("\n") == 1, err
    assert message in err
    assert (live_build(own), read_manifest(own)) == before
