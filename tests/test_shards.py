"""A sharded index answers exactly as the whole one: the seed index cut into 2 and 3 shards,
SciFact into 2, served in this process (``LocalShard``) and on a real 2-node Ray cluster
(Serve deployments over HTTP), compared with the unsharded engine query for query."""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import faiss
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from indexing.build import BuildReport
from indexing.corpus import papers_checksum
from indexing.index_types import IndexType, Ranked, build_ann
from indexing.lexical import analyse
from indexing.manifest import (
    COLUMNS_DIR,
    FORMAT_VERSION,
    VECTORS_FILE,
    IndexUnusable,
    Manifest,
    Segment,
    read_manifest,
)
from indexing.reader import PaperIndex
from indexing.records import Paper
from indexing.shards import ShardingRefused, checked_shards, shard_folders, write_shards
from indexing.update import remove_papers
from indexing.writer import (
    IndexChange,
    next_segment_name,
    segment_writer,
    update_index,
    write_index,
)
from models import DEFAULT_BACKEND, DEFAULT_MODEL
from service.app import create_app
from service.cli import main
from service.errors import ShardUnavailable, TitleNotFound
from service.schemas import (
    RecommendRequest,
    SearchRequest,
    SimilarTextRequest,
    TitleLookup,
)
from service.search import CANDIDATES, SearchEngine
from service.settings import SEED_CAPTURE_DATE, Settings
from service.shards import (
    LocalShard,
    ServeShard,
    ShardedIndex,
    ShardServer,
    ShardSet,
    load_sharded_engine,
)
from tests.conftest import REPO, SEEDS, free_port, index_corpus, settings_with, shared_data
from tests.utils.index_files import in_first_segment, index_file

MODES = ("hybrid", "dense", "lexical")
TOPICS = [
    "live-streaming recommendation",
    "graph neural networks for recommendation",
    "large language models for ranking",
    "user interest modeling over long sequences",
    "contrastive learning",
    "kuaishou",
    "retrieval augmented generation",
    '"cold start" recommendation',
    '"large language" ranking',
    "recommendation -graph",
    'ranking -"click-through"',
    "long term intrest clock",  # a typo of a seed title
]


@pytest.fixture(scope="module")
def whole(seed_settings: Settings) -> Iterator[SearchEngine]:
    engine = SearchEngine.load(seed_settings)
    yield engine
    engine.close()


def sharded_engine(settings: Settings, folders: list[Path]) -> tuple[SearchEngine, list]:
    servers = [ShardServer(folder) for folder in folders]
    return load_sharded_engine(settings, shards=[LocalShard(s) for s in servers]), servers


@pytest.fixture(scope="module", params=[2, 3], ids=["2-shards", "3-shards"])
def sharded(
    request: pytest.FixtureRequest,
    seed_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SearchEngine]:
    out = tmp_path_factory.mktemp(f"seed-shards-{request.param}")
    summary = write_shards(seed_settings.index_dir, request.param, out=out)
    engine, servers = sharded_engine(seed_settings, summary.folders)
    yield engine
    engine.close()
    for server in servers:
        server.close()


def queries(engine: SearchEngine) -> list[str]:
    """The topics, and the titles of papers spread over every shard."""
    rows = np.linspace(0, len(engine.index) - 1, 4).astype(int).tolist()
    return [*TOPICS, *(p.title or "" for p in engine.index.papers_at(rows))]


def filters(engine: SearchEngine) -> list[dict[str, object]]:
    """A category, a year range, an author and a source filter the seeds really hold."""
    facets = engine.overview.facets
    paper = engine.index.papers_at([len(engine.index) // 2])[0]
    assert facets.categories and facets.year_min and paper.authors
    return [
        {"category": facets.categories[1].name},
        {"year_from": facets.year_max, "year_to": facets.year_max},
        {"author": paper.authors[0].split()[-1]},
        {"category": facets.categories[0].name, "year_from": facets.year_min},
    ]


def assert_same_search(whole: SearchEngine, sharded: SearchEngine, **params: object) -> None:
    request = SearchRequest(**params)  # type: ignore[arg-type]
    expected, found = whole.search(request), sharded.search(request)
    assert found.total == expected.total, params
    assert [h.id for h in found.results] == [h.id for h in expected.results], params
    assert found.model_dump() == expected.model_dump(), params  # scores, highlights too


@pytest.mark.parametrize("mode", MODES)
def test_searches_equal_the_whole_index(whole, sharded, mode):
    """Every query, in every mode, on pages 1-3, with each filter, by date and by recency."""
    for q in queries(whole):
        for offset in (0, 5, 10):
            assert_same_search(whole, sharded, q=q, mode=mode, k=5, offset=offset)
        for chosen in filters(whole):
            assert_same_search(whole, sharded, q=q, mode=mode, k=10, **chosen)
        assert_same_search(whole, sharded, q=q, mode=mode, sort="date", offset=3)
        assert_same_search(whole, sharded, q=q, mode=mode, recency=365)


def test_learned_fusion_equals_the_whole_index(whole, sharded, seed_settings):
    """The ranking model reads lengths, postings and titles through the shards too."""
    settings = settings_with(seed_settings, fusion="learned")
    learned_whole = SearchEngine(whole.index, whole.queries, settings)
    learned_sharded = SearchEngine(sharded.index, sharded.queries, settings)
    for q in queries(whole):
        assert_same_search(learned_whole, learned_sharded, q=q, k=10)
        assert_same_search(learned_whole, learned_sharded, q=q, k=5, offset=5, **filters(whole)[0])
    rows = np.arange(len(whole.index))[::-7]
    terms = analyse(TOPICS[1])
    np.testing.assert_array_equal(
        sharded.index.lexical.lengths_at(rows), whole.index.lexical.lengths_at(rows)
    )
    np.testing.assert_array_equal(
        sharded.index.lexical.holding(terms, rows), whole.index.lexical.holding(terms, rows)
    )


def test_candidate_scores_equal_the_whole_index(whole, sharded):
    """The raw candidates, before any rounding: BM25 rows and float32 scores bit for bit,
    the nearest papers and their exact scores, the hybrid range's low end."""
    for q in queries(whole):
        terms = analyse(q)
        expected, found = whole.index.lexical.matches(terms), sharded.index.lexical.matches(terms)
        np.testing.assert_array_equal(found[0], expected[0])
        np.testing.assert_array_equal(found[1], expected[1])
        vector = whole.embedder.encode([q])[0]
        (near,) = whole.index.dense.nearest_many(vector[None], CANDIDATES, whole.search_depth)
        (far,) = sharded.index.dense.nearest_many(vector[None], CANDIDATES, whole.search_depth)
        np.testing.assert_array_equal(far.rows, near.rows)
        np.testing.assert_array_equal(far.scores, near.scores)
        rows = np.arange(len(whole.index))[::-3]
        np.testing.assert_array_equal(
            sharded.index.dense_scores_at(vector, rows), whole.index.dense_scores_at(vector, rows)
        )
        assert sharded.index.dense_range(vector, 0.5) == whole.index.dense_range(vector, 0.5)
    assert sharded.index.lexical.idfs(analyse(TOPICS[0])) == whole.index.lexical.idfs(
        analyse(TOPICS[0])
    )


def test_bm25_uses_corpus_wide_statistics(whole, sharded):
    """A shard scored with its own statistics would rank differently (so this can fail);
    with the sums over every shard it scores exactly as the whole index."""
    terms = analyse("recommendation ranking with large language models")
    server = sharded.index.shards.clients[1].server
    own_rows, own_scores = server.matches(terms, server.index.lexical.stats(terms))
    corpus = sharded.index.lexical.stats(terms)
    rows, scores = server.matches(terms, corpus)
    np.testing.assert_array_equal(rows, own_rows)  # the same papers hold the terms...
    assert not np.array_equal(scores, own_scores)  # ...but weigh differently
    assert corpus.size == len(whole.index) > server.index.lexical.size
    start = int(sharded.index.rows.starts[1])
    expected_rows, expected_scores = whole.index.lexical.matches(terms)
    in_shard = (expected_rows >= start) & (expected_rows < start + server.index.lexical.size)
    np.testing.assert_array_equal(rows + start, expected_rows[in_shard])
    np.testing.assert_array_equal(scores, expected_scores[in_shard])


def test_papers_similar_and_lookups_equal_the_whole_index(whole, sharded):
    ids = whole.index.paper_ids()
    assert sharded.index.paper_ids() == ids
    spread = [ids[0], ids[len(ids) // 2], ids[-1]]
    assert sharded.papers(spread[::-1]) == whole.papers(spread[::-1])
    assert sharded.paper(ids[-1]) == whole.paper(ids[-1])
    assert sharded.list_papers(5, len(ids) - 7) == whole.list_papers(5, len(ids) - 7)
    chosen = filters(whole)[0]
    for paper_id in spread:
        for offset, options in ((0, {}), (5, {}), (0, chosen)):
            assert sharded.similar_to_paper(
                paper_id, 5, offset=offset, filters=SearchRequest(q="x", **options)
            ) == whole.similar_to_paper(
                paper_id, 5, offset=offset, filters=SearchRequest(q="x", **options)
            )
    title = whole.index.papers_at([len(ids) - 2])[0].title or ""
    typo = title[:8] + title[9:]  # one letter dropped
    for lookup in (TitleLookup(title=typo, k=5), TitleLookup(title=typo, k=5, offset=5)):
        assert sharded.similar_to_title(lookup) == whole.similar_to_title(lookup)
    assert sharded.titles.closest(typo) == whole.titles.closest(typo)
    with pytest.raises(TitleNotFound) as unsharded_miss:
        whole.similar_to_title(TitleLookup(title="quantum chromodynamics of lattice gauges"))
    with pytest.raises(TitleNotFound) as sharded_miss:
        sharded.similar_to_title(TitleLookup(title="quantum chromodynamics of lattice gauges"))
    assert sharded_miss.value.suggestions == unsharded_miss.value.suggestions
    text = "\n".join(p.abstract for p in whole.index.papers_at([3, len(ids) - 3]))
    for request in (SimilarTextRequest(text=text, k=7), SimilarTextRequest(text=text, offset=4)):
        assert sharded.similar_to_text(request) == whole.similar_to_text(request)
    recommend = RecommendRequest(positive=[ids[1], ids[-2]], negative=[ids[len(ids) // 2]], k=6)
    assert sharded.recommend(recommend) == whole.recommend(recommend)


def test_overview_and_map_equal_the_whole_index(whole, sharded):
    assert sharded.overview.facets == whole.overview.facets
    assert sharded.overview.map_json == whole.overview.map_json
    ids = whole.index.paper_ids()[::7]
    assert sharded.overview.map_of(sharded.index, ids) == whole.overview.map_of(whole.index, ids)


def test_the_router_reports_the_shards_as_segments(whole, sharded):
    manifest = sharded.index.manifest
    assert len(sharded.index) == len(whole.index) == manifest.paper_count
    assert manifest.corpus_checksum == whole.index.manifest.corpus_checksum
    assert len(manifest.segments) == len(sharded.index.shards) > 1
    assert sharded.index.build_dir == whole.index.build_dir
    assert sharded.index.remote and not whole.index.remote


def test_a_search_asks_each_shard_a_few_questions(sharded):
    """Round trips to the shards per hybrid search with highlights: document frequencies
    (only for terms not asked before), postings, nearest papers, scores of BM25's extra
    candidates, and the page's records with their sentences. Counted, so they cannot grow
    back unnoticed."""
    shards = sharded.index.shards.clients
    for shard in shards:
        shard.calls.clear()
    first = sharded.search(SearchRequest(q="graph neural networks for recommendation zyzzyva"))
    assert any(hit.highlights for hit in first.results)  # highlighted: idfs asked, no round
    for shard in shards:
        assert shard.calls["dfs"] == 1 and shard.calls["matches"] == 1
        shard.calls.clear()
    # The same words in another order: another vector to search for, no new term.
    sharded.search(SearchRequest(q="zyzzyva recommendation networks for neural graph"))
    asked = Counter[str]()
    for shard in shards:
        assert shard.calls["matches"] == shard.calls["nearest_many"] == 1, shard.calls
        assert set(shard.calls) <= {"matches", "nearest_many", "scores_at", "papers_with_sentences"}
        assert max(shard.calls.values()) == 1, shard.calls
        asked.update(shard.calls)
    assert asked["papers_with_sentences"] >= 1  # (every BM25 match of 98 seeds is near)


# --- SciFact: 5,183 papers, the test queries ------------------------------------------------


@pytest.fixture(scope="module")
def scifact_index(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> BuildReport:
    """SciFact indexed once; with the evaluation's embedding cache where this checkout has
    one (a copy: the test writes to it), else embedded here (a minute or two)."""
    corpus = shared_data("scifact")
    folder = tmp_path_factory.mktemp("scifact")
    cache = cache_dir
    evaluation_cache = REPO / "data" / "cache-eval" / "embeddings.sqlite"
    if evaluation_cache.is_file():
        cache = folder / "cache"
        cache.mkdir()
        shutil.copy(evaluation_cache, cache)
    return index_corpus([corpus], folder / "index", cache)


def test_scifact_sharded_equals_whole(scifact_index, seed_settings, tmp_path):
    settings = settings_with(seed_settings, index_dir=scifact_index.index_dir)
    whole_engine = SearchEngine.load(settings)
    folders = write_shards(settings.index_dir, 2, out=tmp_path / "shards").folders
    engine, servers = sharded_engine(settings, folders)
    try:
        lines = (shared_data("scifact") / "queries.jsonl").read_text().splitlines()
        texts = [json.loads(line)["text"] for line in lines][:20]
        for q in texts:
            for mode in MODES:
                for offset in (0, 10):
                    assert_same_search(whole_engine, engine, q=q, mode=mode, k=10, offset=offset)
                terms = analyse(q)
                expected = whole_engine.index.lexical.matches(terms)
                found = engine.index.lexical.matches(terms)
                np.testing.assert_array_equal(found[1], expected[1])
            # The filter's mask path: a source every paper has, narrowed by an excluded word.
            word = terms[0]
            assert_same_search(
                whole_engine, engine, q=f"{q} -{word}", source="corpus.jsonl", k=10, offset=5
            )
    finally:
        engine.close()
        whole_engine.close()
        for server in servers:
            server.close()


def test_ivf_shards_refill_the_sources_trained_lists(seed_settings, cache_dir, tmp_path):
    """An IVF index's shards hold its trained quantiser, refilled with their own vectors:
    each probes the lists the whole index probes, and the seeds rank as in the whole."""
    index_dir = tmp_path / "index"
    index_corpus([SEEDS], index_dir, cache_dir, index_type=IndexType.IVF_SQ8)
    settings = settings_with(seed_settings, index_dir=index_dir)
    whole_engine = SearchEngine.load(settings)
    engine, servers = sharded_engine(
        settings, write_shards(index_dir, 2, out=tmp_path / "s").folders
    )
    try:
        centroids = _centroids(whole_engine.index.segments[0].ann)
        for server in servers:
            (segment,) = server.index.segments
            assert server.index.manifest.index_type is IndexType.IVF_SQ8
            assert segment.ann is not None and segment.ann.ntotal == len(server.index)
            np.testing.assert_array_equal(_centroids(segment.ann), centroids)
        for q in TOPICS[:4]:
            for mode in MODES:
                assert_same_search(whole_engine, engine, q=q, mode=mode, k=10, offset=5)
    finally:
        engine.close()
        whole_engine.close()
        for server in servers:
            server.close()


def _centroids(ann: faiss.Index | None) -> np.ndarray:
    quantizer = faiss.extract_index_ivf(ann).quantizer
    return quantizer.reconstruct_n(0, quantizer.ntotal)


# --- Synthetic vectors: the ANN's ranking and ties at the cut --------------------------------


def synthetic_index(folder: Path, vectors: np.ndarray, index_type: IndexType) -> Path:
    """An index of ``vectors`` (unit rows) written through the normal writer, with a
    trained ANN structure where ``index_type`` has one; its papers are placeholders."""
    papers = [
        Paper(id=f"p{row}", title=f"paper {row}", abstract=f"text {row % 7}", source="s.jsonl")
        for row in range(len(vectors))
    ]
    ann = None if index_type is IndexType.FLAT else build_ann(index_type, vectors)
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        model=DEFAULT_MODEL,
        backend=DEFAULT_BACKEND,
        index_type=index_type,
        dimension=vectors.shape[1],
        paper_count=len(papers),
        corpus_checksum=papers_checksum(papers),
        built_at=datetime.now(UTC),
        build_seconds=0.0,
        sources=["s.jsonl"],
        capture_date=SEED_CAPTURE_DATE.isoformat(),
        segments=[Segment(name=next_segment_name(None), rows=len(papers), ann=ann is not None)],
    )
    sentences = [[(0, len(paper.abstract))] for paper in papers]
    points = np.zeros((len(papers), 2), dtype=np.float32)
    write_index(folder, manifest, segment_writer(papers, vectors, sentences, points, ann=ann))
    return folder


def unit_vectors(count: int, dimension: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def sharded_index(settings: Settings, index_dir: Path, count: int, out: Path) -> ShardedIndex:
    servers = [ShardServer(folder) for folder in write_shards(index_dir, count, out=out).folders]
    return ShardedIndex([LocalShard(server) for server in servers], index_dir, settings)


def test_ivf_shards_keep_the_whole_indexs_approximate_nearest(seed_settings, tmp_path):
    """More vectors in the probed lists than asked for: the whole index keeps the best by
    its quantised distances, and so must the shards' merge (by exact scores it would not)."""
    index_dir = synthetic_index(tmp_path / "index", unit_vectors(3000, 32, 1), IndexType.IVF_SQ8)
    settings = settings_with(seed_settings, index_dir=index_dir)
    whole = PaperIndex.open(index_dir)
    sharded = sharded_index(settings, index_dir, 2, tmp_path / "shards")
    queries, n, probes = unit_vectors(50, 32, 2), 20, 4
    expected = whole.dense.nearest_many(queries, n, probes)
    found = sharded.dense.nearest_many(queries, n, probes)
    for near, far in zip(expected, found, strict=True):
        np.testing.assert_array_equal(far.rows, near.rows)
        np.testing.assert_array_equal(far.scores, near.scores)
    # The test can fail: kept by exact score instead, some queries' rows differ.
    ranked = [server.server.nearest_many(queries, n, probes) for server in sharded.shards.clients]
    by_score = [[Ranked(h.rows, h.scores, h.scores) for h in hits] for hits in ranked]
    exact = sharded.dense.merged(by_score, len(queries), n)
    differing = sum(
        set(a.rows.tolist()) != set(b.rows.tolist()) for a, b in zip(exact, expected, strict=True)
    )
    assert differing > 0
    whole.close()
    for shard in sharded.shards.clients:
        shard.server.close()


def test_tied_vectors_are_cut_by_row(seed_settings, tmp_path):
    """Three identical vectors (rows 10, 40, 70): FAISS orders them as its heap leaves
    them; every cut keeps the lowest rows first, in the whole index and over shards."""
    vectors = unit_vectors(100, 16, 3)
    vectors[[40, 70]] = vectors[10]
    index_dir = synthetic_index(tmp_path / "index", vectors, IndexType.FLAT)
    whole = PaperIndex.open(index_dir)
    sharded = sharded_index(
        settings_with(seed_settings, index_dir=index_dir), index_dir, 3, tmp_path / "shards"
    )
    query = vectors[10]
    for n, rows in ((1, [10]), (2, [10, 40]), (3, [10, 40, 70])):
        for index in (whole, sharded):
            assert index.dense.nearest(query, n, 1).rows.tolist() == rows
    whole.close()
    for shard in sharded.shards.clients:
        shard.server.close()


# --- Where the shards live, and what is refused ----------------------------------------------


@pytest.fixture
def index_copy(seed_build: BuildReport, tmp_path: Path) -> Path:
    """A copy of the seed index to cut, change and break (the session's stays as it is)."""
    copy = tmp_path / "index"
    shutil.copytree(seed_build.index_dir.resolve(), copy)
    return copy


def test_shards_are_cut_again_only_for_another_build(index_copy, seed_settings):
    folders = shard_folders(index_copy, 2)
    assert folders == [index_copy.parent / "index-shards" / "2" / f"shard-00{i}" for i in (0, 1)]
    builds = [folder.resolve() for folder in folders]
    assert [folder.resolve() for folder in shard_folders(index_copy, 2)] == builds  # as they were
    remove_papers([ids_of(folders[1])[0]], index_copy, merge=False)
    again = shard_folders(index_copy, 2)
    assert [folder.resolve() for folder in again] != builds
    checked = checked_shards(again, index_dir=index_copy)
    assert sum(shard.manifest.paper_count for shard in checked) == len(ids_of(index_copy))


def ids_of(index_dir: Path) -> list[str]:
    """The ids of the papers of an index (or a shard), in row order."""
    server = ShardServer(index_dir)
    try:
        return server.paper_ids()
    finally:
        server.close()


def test_a_missing_shard_or_one_of_another_build_is_refused(index_copy, seed_settings, tmp_path):
    settings = settings_with(seed_settings, index_dir=index_copy)
    first = write_shards(index_copy, 2, out=tmp_path / "first").folders
    three = write_shards(index_copy, 3, out=tmp_path / "three").folders
    remove_papers([ids_of(index_copy)[0]], index_copy, merge=False)
    later = write_shards(index_copy, 2, out=tmp_path / "later").folders
    cases = {
        "no shard at": [first[0], tmp_path / "nowhere" / "shard-001"],
        "was cut from build": [first[0], later[1]],
        "is shard 0 of 3, not 1 of 2": [first[0], three[0]],
    }
    for problem, folders in cases.items():
        with pytest.raises(IndexUnusable) as refused:
            checked_shards(folders, index_dir=index_copy)
        assert problem in str(refused.value)
        assert f"papersearch shard --index {index_copy} --shards 2" in str(refused.value)
    servers = [ShardServer(first[0]), ShardServer(later[1])]
    with pytest.raises(IndexUnusable, match="was cut from build"):
        ShardedIndex([LocalShard(server) for server in servers], index_copy, settings)
    for server in servers:
        server.close()
    with pytest.raises(IndexUnusable, match="is an index, not a shard"):
        checked_shards([index_copy], index_dir=index_copy)


def test_a_shard_is_no_index_of_its_own(index_copy, seed_settings, capsys, tmp_path):
    """Searched, served or updated alone, a shard would score BM25 with its own statistics
    and drift from its placement: refused in one line; a shard changed all the same (its
    manifest given a tombstone) is refused by the router, with what to run."""
    folders = write_shards(index_copy, 2, out=tmp_path / "shards").folders
    paper_id = ids_of(folders[1])[0]
    for argv in (
        ["search", "--index", str(folders[1]), "ranking"],
        ["remove", "--index", str(folders[1]), paper_id],
    ):
        assert main(argv) == 1
        (error,) = capsys.readouterr().err.splitlines()
        assert error.startswith(f"papersearch: error: {folders[1]} is shard 1 of the 2 ")
        assert "not an index of its own" in error
    with pytest.raises(IndexUnusable, match="not an index of its own"):
        SearchEngine.load(settings_with(seed_settings, index_dir=folders[0]))
    placement = read_manifest(folders[1]).shard
    remove_papers([paper_id], index_copy, merge=False)
    update_index(
        index_copy,
        lambda current: IndexChange(current.manifest.model_copy(update={"shard": placement})),
    )
    with pytest.raises(IndexUnusable) as refused:
        checked_shards([folders[0], index_copy], index_dir=index_copy)
    assert "was changed since it was cut (1 segment, 1 paper removed)" in str(refused.value)
    assert f"papersearch shard --index {index_copy} --shards 2" in str(refused.value)


def test_the_router_hashes_only_what_it_maps(index_copy, seed_settings, tmp_path):
    """Each shard server verified its whole build as it opened it; the router hashes only
    the files it maps (filter columns, titles, map points), not the vectors and postings
    it never opens. A file swapped in after the servers opened: a vector file goes unseen
    by the router, a column file is refused."""
    settings = settings_with(seed_settings, index_dir=index_copy)
    folders = write_shards(index_copy, 2, out=tmp_path / "shards").folders
    servers = [ShardServer(folder) for folder in folders]
    manifest = read_manifest(folders[1])
    column = next(name for name in manifest.files if f"/{COLUMNS_DIR}/" in name)
    for name in (in_first_segment(VECTORS_FILE), column):
        path = index_file(folders[1], name)
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF  # the same size, another last byte: a new file in its place
        swapped = path.with_name(f"{path.name}.new")
        swapped.write_bytes(bytes(data))
        os.replace(swapped, path)
        shards = [LocalShard(server) for server in servers]
        if name == column:
            with pytest.raises(IndexUnusable, match="does not match the sha256"):
                ShardedIndex(shards, index_copy, settings)
        else:
            assert len(ShardedIndex(shards, index_copy, settings)) == len(ids_of(index_copy))
    with pytest.raises(IndexUnusable, match="does not match the sha256"):
        ShardServer(folders[1])  # the shard's own check sees every file
    for server in servers:
        server.close()


def test_shard_command(index_copy, capsys):
    assert main(["shard", "--index", str(index_copy), "--shards", "3"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"cut {len(ids_of(index_copy))} papers of {index_copy}")
    assert "into 3 shards" in line
    assert len(checked_shards(shard_folders(index_copy, 3), index_dir=index_copy)) == 3
    assert main(["shard", "--index", str(index_copy), "--shards", "200"]) == 1
    (error,) = capsys.readouterr().err.splitlines()
    assert error.startswith("papersearch: error: cannot cut the ") and "into 200 shards" in error
    with pytest.raises(ShardingRefused):
        write_shards(index_copy, 200)


def test_the_app_over_shards_equals_the_app_and_keeps_its_shards(index_copy, seed_settings, client):
    """The HTTP app (its lifespan loads the sharded engine on its event loop, searches run
    off it) answers as the unsharded app; a new build of the index is not swapped in
    unsharded by the reloader: the shards stay served until cut and deployed again."""
    settings = settings_with(seed_settings, index_dir=index_copy, api_key="secret")
    servers = [ShardServer(folder) for folder in shard_folders(index_copy, 2)]
    load = functools.partial(load_sharded_engine, shards=[LocalShard(s) for s in servers])
    key = {"Authorization": "Bearer secret"}
    app = create_app(settings, load_engine=load)
    with TestClient(app, headers=key) as sharded_client:
        for path, params in (
            ("/search", {"q": "live-streaming recommendation", "k": 20}),
            ("/search", {"q": '"large language" -graph', "mode": "lexical", "offset": 2}),
            ("/similar", {"title": "Long-Term Interest Clock", "k": 5}),
            ("/facets", {}),
        ):
            assert sharded_client.get(path, params=params).json() == (
                client.get(path, params=params).json()
            )
        papers = sharded_client.get("/readyz").json()["papers"]
        # An update over HTTP would change the index, not the shards served: refused.
        paper = {"id": "new-1", "title": "A new paper", "abstract": "About ranking."}
        for refused in (
            sharded_client.post("/admin/papers", json={"papers": [paper]}),
            sharded_client.delete(f"/admin/papers/{ids_of(index_copy)[0]}"),
        ):
            assert refused.status_code == 409
            assert refused.json()["code"] == "sharded_index_read_only"
            assert "papersearch shard" in refused.json()["message"]
        assert len(ids_of(index_copy)) == papers
        remove_papers([ids_of(index_copy)[0]], index_copy, merge=False)
        reloader = sharded_client.app.state.reloader
        assert sharded_client.portal.call(reloader.reload_if_changed) is False
        assert sharded_client.get("/readyz").json()["papers"] == papers
    for server in servers:
        server.close()


# --- On a real 2-node Ray cluster -------------------------------------------------------------


def test_served_on_ray_with_two_shards_equals_one_process(
    ray_cluster, seed_build, seed_settings, client, tmp_path
):
    """The seed index (a copy) deployed as 2 shard deployments behind the service's router,
    through Serve's HTTP proxy on the 2-node cluster; answers equal the single-process app's."""
    from ray import serve

    from service.ray_serving import serve_options, service_application
    from service.shards import shard_applications

    copy = tmp_path / "index"
    shutil.copytree(seed_build.index_dir.resolve(), copy)
    settings = settings_with(
        seed_settings,
        index_dir=copy,
        shards=2,
        replica_cpus=0.5,
        reload_interval=0,
        host="127.0.0.1",
        port=free_port(),
    )
    started = time.monotonic()
    serve.shutdown()  # a Serve another test left listens on another port
    serve.start(**serve_options(settings))
    try:
        serve.run(
            service_application(settings, shards=shard_applications(settings)),
            name="papersearch-sharded",
            route_prefix="/",
        )
        url = f"http://127.0.0.1:{settings.port}"
        ready = httpx.get(f"{url}/readyz", timeout=30).json()
        assert ready["segments"] == 2 and ready["papers"] == len(ids_of(copy))
        category = client.get("/facets").json()["categories"][1]["name"]
        for path, params in (
            ("/search", {"q": "live-streaming recommendation", "mode": "hybrid"}),
            ("/search", {"q": "graph neural networks", "mode": "dense", "offset": 5}),
            ("/search", {"q": '"large language" -graph', "mode": "lexical"}),
            ("/search", {"q": "user interest modeling", "category": category, "k": 20}),
            ("/search", {"q": "contrastive learning", "sort": "date", "k": 5}),
            ("/similar", {"title": "Long-Term Interest Clock", "k": 5, "offset": 2}),
            ("/papers", {"limit": 5, "offset": 90}),
            ("/facets", {}),
        ):
            served = httpx.get(f"{url}{path}", params=params, timeout=30)
            assert served.status_code == 200, served.text
            assert served.json() == client.get(path, params=params).json(), params
        # A shard that does not answer in time, or fails, is a 503 naming it.
        shard = ServeShard(serve.get_deployment_handle("shard-1", app_name="papersearch-sharded"))
        with pytest.raises(ShardUnavailable, match=r"shard 0 of 1 .*no answer within 1e-05 s"):
            ShardSet([shard], timeout=1e-5).everywhere(ShardServer.paper_ids)
        with pytest.raises(ShardUnavailable, match="shard 0 of 1 is unavailable") as failed:
            ShardSet([shard], timeout=30).everywhere(ShardServer.papers_at, np.array([10**6]))
        assert failed.value.status == 503 and failed.value.code == "shard_unavailable"
        assert time.monotonic() - started < 60
    finally:
        serve.delete("papersearch-sharded")
        serve.shutdown()
