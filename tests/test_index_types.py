"""Approximate index types answer like exact search where they can see everything, and each
built index type is recorded and served; incremental updates match a build from scratch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from indexing.build import build_index
from indexing.index_types import AUTO_FLAT_LIMIT, IndexType, ivf_lists, resolve_index_type
from indexing.manifest import ANN_FILE, read_manifest
from indexing.reader import PaperIndex
from indexing.update import add_files, remove_papers
from models import DEFAULT_MODEL, load_embedder
from service.schemas import SearchRequest
from service.search import SearchEngine
from service.settings import SEED_CAPTURE_DATE, Settings
from tests.conftest import SEEDS
from tests.utils.index_files import in_first_segment, index_file

QUERIES = [
    "cross-domain live-streaming recommendation",
    "large language models for generative retrieval",
    "click-through rate prediction with user behaviour sequences",
]


def _build(target: Path, cache_dir: Path, index_type: IndexType, paths=(SEEDS,)) -> Path:
    build_index(
        list(paths),
        target,
        cache_dir=cache_dir,
        model_name=DEFAULT_MODEL,
        load_model=load_embedder,
        capture_date=SEED_CAPTURE_DATE,
        progress=False,
        index_type=index_type,
    )
    return target


def _results(index_dir: Path, cache_dir: Path, query: str, **options: object) -> list:
    engine = SearchEngine.load(Settings(index_dir=index_dir, cache_dir=cache_dir))
    try:
        response = engine.search(SearchRequest(q=query, k=10, **options))
    finally:
        engine.close()
    return [(hit.id, hit.score) for hit in response.results]


def test_auto_is_exact_for_small_corpora_and_ivf_beyond():
    assert resolve_index_type(IndexType.AUTO, 98) is IndexType.FLAT
    assert resolve_index_type(IndexType.AUTO, AUTO_FLAT_LIMIT) is IndexType.IVF_SQ8
    assert resolve_index_type(IndexType.HNSW, 98) is IndexType.HNSW
    assert ivf_lists(75_000) == 256 and ivf_lists(1_000_000) == 1024


@pytest.mark.parametrize("index_type", [IndexType.IVF_SQ8, IndexType.IVF_PQ, IndexType.HNSW])
def test_approximate_types_searched_to_full_depth_answer_exactly(
    seed_build, cache_dir, tmp_path, index_type
):
    """At the default depth every list of a 98-paper IVF index is probed (16 lists), and
    the graph reaches every node: results and scores must equal exact search's."""
    index_dir = _build(tmp_path / "index", cache_dir, index_type)
    manifest = read_manifest(index_dir)
    assert manifest.index_type is index_type
    assert index_file(index_dir, in_first_segment(ANN_FILE)).is_file()
    for query in QUERIES:
        for mode in ("dense", "hybrid"):
            assert _results(index_dir, cache_dir, query, mode=mode) == _results(
                seed_build.index_dir, cache_dir, query, mode=mode
            )


def test_vectors_are_memory_mapped_not_copied(seed_build):
    index = PaperIndex.open(seed_build.index_dir, model=DEFAULT_MODEL)
    try:
        (segment,) = index.segments
        assert isinstance(segment.vectors, np.memmap)
        assert not segment.vectors.flags.writeable
    finally:
        index.close()


def _write_jsonl(path: Path, papers: list[dict]) -> Path:
    path.write_text("".join(json.dumps(paper) + "\n" for paper in papers), encoding="utf-8")
    return path


NEW_PAPERS = [
    {
        "id": "new-1",
        "title": "Coral reef bleaching under marine heatwaves",
        "abstract": "We measure coral bleaching across reefs during marine heatwaves and relate "
        "it to sea surface temperature anomalies.",
    },
    {
        "id": "new-2",
        "title": "Sourdough fermentation kinetics",
        "abstract": "Lactic acid bacteria and wild yeast in sourdough starters: we model the "
        "fermentation kinetics of bread dough.",
    },
]


@pytest.mark.parametrize("index_type", [IndexType.FLAT, IndexType.IVF_SQ8])
def test_added_and_removed_papers_match_a_build_from_scratch(cache_dir, tmp_path, index_type):
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    index_dir = _build(tmp_path / "index", cache_dir, index_type, paths=(seeds,))
    first_seed = PaperIndex.open(index_dir, model=DEFAULT_MODEL).papers_at([0])[0]
    extra = _write_jsonl(tmp_path / "extra.jsonl", NEW_PAPERS)

    report = add_files(
        [extra],
        index_dir,
        capture_date=SEED_CAPTURE_DATE,
        cache_dir=cache_dir,
        load_model=load_embedder,
    )
    assert (report.added, report.replaced, report.papers) == (2, 0, 100)
    assert report.embedded <= 2  # the 98 seed papers keep their vectors
    assert _results(index_dir, cache_dir, "coral reef heatwave")[0][0] == "new-1"

    removed = remove_papers([first_seed.id, "new-2", "no-such-id"], index_dir)
    assert (removed.removed, removed.unknown_ids, removed.papers) == (2, ["no-such-id"], 98)

    # The same 98 papers indexed from scratch rank identically.
    scratch_corpus = tmp_path / "scratch"
    scratch_corpus.mkdir()
    _write_jsonl(scratch_corpus / "extra.jsonl", NEW_PAPERS[:1])
    for file in seeds.iterdir():
        shutil.copy(file, scratch_corpus / file.name)
    index = PaperIndex.open(index_dir, model=DEFAULT_MODEL)
    kept = {paper.id for paper in index.list_papers(limit=1000, offset=0)}
    index.close()
    assert first_seed.id not in kept and "new-1" in kept and len(kept) == 98
    for query in [*QUERIES, "coral reef heatwave"]:
        incremental = _results(index_dir, cache_dir, query)
        assert all(paper_id in kept for paper_id, _ in incremental)
        assert [paper_id for paper_id, _ in incremental][:3] == [
            paper_id
            for paper_id, _ in _results_without(
                scratch_corpus, tmp_path / "scratch-index", cache_dir, query, first_seed.id
            )
        ][:3]


def _results_without(corpus: Path, target: Path, cache_dir: Path, query: str, drop: str) -> list:
    if not target.exists():
        _build(target, cache_dir, IndexType.FLAT, paths=(corpus,))
        remove_papers([drop], target)
    return _results(target, cache_dir, query)


def test_a_paper_added_again_under_its_id_is_replaced(seed_build, cache_dir, tmp_path):
    index_dir = _build(tmp_path / "index", cache_dir, IndexType.FLAT)
    _write_jsonl(tmp_path / "v1.jsonl", NEW_PAPERS[:1])
    changed = dict(NEW_PAPERS[0], title="Coral reef bleaching, revised")
    _write_jsonl(tmp_path / "v2.jsonl", [changed])
    options = {
        "capture_date": SEED_CAPTURE_DATE,
        "cache_dir": cache_dir,
        "load_model": load_embedder,
    }
    add_files([tmp_path / "v1.jsonl"], index_dir, **options)
    report = add_files([tmp_path / "v2.jsonl"], index_dir, **options)
    assert (report.added, report.replaced, report.papers) == (0, 1, 99)
    index = PaperIndex.open(index_dir, model=DEFAULT_MODEL)
    try:
        assert index.papers_at([index.row_of("new-1")])[0].title == "Coral reef bleaching, revised"
    finally:
        index.close()
