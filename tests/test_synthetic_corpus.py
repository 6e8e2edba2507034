"""benchmarks/synthetic_corpus.py: the million-paper corpus generator, run on a slice of the
real arXiv file with vectors from the real model, read back with papersearch's own readers."""

from __future__ import annotations

import gzip
from itertools import islice
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from indexing.corpus import read_corpus
from indexing.records import embedding_text
from indexing.vector_files import SuppliedVectors, write_vectors
from models import DEFAULT_BACKEND, DEFAULT_MODEL, load_embedder
from service.settings import SEED_CAPTURE_DATE
from tests.conftest import shared_data
from tests.utils.scripts import load_script

SLICE = 200  # real papers drawn from (embedded here: a few seconds)
PAPERS = 2000
SEED = 7


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_script("synthetic_corpus")


@pytest.fixture(scope="module")
def real_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The first papers of the real arXiv file and their vectors from the real model, in the
    Parquet format `papersearch export-vectors` writes."""
    arxiv = shared_data("arxiv/arxiv-75k.jsonl.gz")
    folder = tmp_path_factory.mktemp("arxiv-slice")
    sliced = folder / "arxiv-slice.jsonl"
    with gzip.open(arxiv, "rb") as stream:
        sliced.write_bytes(b"".join(islice(stream, SLICE)))
    papers = read_corpus([sliced], SEED_CAPTURE_DATE).papers
    vectors = load_embedder(DEFAULT_MODEL, DEFAULT_BACKEND).encode(
        [embedding_text(p) for p in papers]
    )
    real_vectors = folder / "vectors.parquet"
    write_vectors(
        real_vectors,
        [p.id for p in papers],
        vectors,
        model=DEFAULT_MODEL,
        backend=DEFAULT_BACKEND,
    )
    return sliced, real_vectors


def _generate(generator: ModuleType, inputs: tuple[Path, Path], out: Path, *extra: str) -> Path:
    arxiv, real_vectors = inputs
    status = generator.main(
        ["--arxiv", str(arxiv), "--real-vectors", str(real_vectors), "--out", str(out),
         "--seed", str(SEED), "--quiet", *extra]
    )  # fmt: skip
    assert status == 0
    return out


@pytest.fixture(scope="module")
def corpus(
    generator: ModuleType,
    real_inputs: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    return _generate(
        generator, real_inputs, tmp_path_factory.mktemp("synthetic"), "--papers", str(PAPERS)
    )


def test_every_paper_parses_with_papersearch_reader(corpus: Path) -> None:
    read = read_corpus([corpus / "papers.jsonl"], SEED_CAPTURE_DATE)
    assert read.issues == []
    assert read.merged_duplicates == 0
    ids = [p.id for p in read.papers]
    assert ids == [f"syn:{i:07d}" for i in range(1, PAPERS + 1)]  # unique, in order
    for paper in read.papers:
        assert paper.title and paper.abstract and paper.authors
        assert paper.published is not None and paper.category
        assert paper.arxiv_id is None  # never passed off as a real arXiv paper


def test_same_seed_same_corpus(
    generator: ModuleType, real_inputs: tuple[Path, Path], corpus: Path, tmp_path: Path
) -> None:
    again = _generate(generator, real_inputs, tmp_path / "again", "--papers", str(PAPERS))
    assert (again / "papers.jsonl").read_bytes() == (corpus / "papers.jsonl").read_bytes()
    first, second = (
        SuppliedVectors.read(folder / "vectors.parquet", model=DEFAULT_MODEL, backend="onnx-int8")
        for folder in (corpus, again)
    )
    assert first.ids == second.ids
    assert np.array_equal(first.vectors, second.vectors)


def test_next_papers_continue_the_same_run(
    generator: ModuleType, real_inputs: tuple[Path, Path], corpus: Path, tmp_path: Path
) -> None:
    """`--start` gives the papers a larger run would have written next (what the scale
    benchmark adds): paper i depends on the seed and i only."""
    more = _generate(
        generator, real_inputs, tmp_path / "more", "--papers", "100", "--start", "1950"
    )
    lines = (more / "papers.jsonl").read_text().splitlines()
    assert lines[:50] == (corpus / "papers.jsonl").read_text().splitlines()[1950:]
    assert lines[50].startswith('{"id": "syn:0002001"')


def test_vectors_unit_length_near_their_parent(
    generator: ModuleType, real_inputs: tuple[Path, Path], corpus: Path
) -> None:
    supplied = SuppliedVectors.read(
        corpus / "vectors.parquet", model=DEFAULT_MODEL, backend=DEFAULT_BACKEND
    )
    assert supplied.ids == [f"syn:{i:07d}" for i in range(1, PAPERS + 1)]
    assert supplied.dimension == 384
    assert supplied.normalised == 0  # every stored row already unit length
    np.testing.assert_allclose(np.linalg.norm(supplied.vectors, axis=1), 1.0, atol=1e-5)

    pool = generator.load_pool(*real_inputs)
    parents = np.concatenate([c.parents for c in generator.generate(pool, 0, PAPERS, SEED)])
    cosines = np.einsum("ij,ij->i", supplied.vectors, pool.vectors[parents])
    assert cosines.min() > 0.8 and cosines.max() < 0.95
    assert abs(cosines.mean() - generator.TARGET_COSINE) < 0.01


def test_missing_input_is_one_error_line(
    generator: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        generator.main(
            ["--arxiv", str(tmp_path / "none.jsonl.gz"), "--real-vectors", str(tmp_path / "v"),
             "--papers", "10", "--out", str(tmp_path / "out")]
        )  # fmt: skip
    assert exited.value.code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
