"""Learned fusion on the seed index (real model, the shipped ranking model): what it reorders,
what it reads of each paper (checked against the seed texts, computed here independently),
and how a broken model file is reported."""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from indexing.lexical import LexicalIndex, SegmentPostings, analyse
from indexing.records import embedding_text
from service.learned_ranking import (
    FEATURES,
    RANKER_FILE,
    LearnedRanker,
    RankerUnusable,
    reordered,
)
from service.ranking import DENSE_WEIGHT, RERANK_DEPTH, Fusion
from service.schemas import MAX_K, SearchRequest
from service.search import SearchEngine
from service.settings import Settings
from tests.conftest import settings_with
from tests.test_cli import run_cli

QUERIES = [
    "live-streaming recommendation",
    "large language models for ranking",
    "user interest modeling over long sequences",
    "kuaishou short video",
]


@pytest.fixture(scope="module")
def blend(seed_settings: Settings) -> Iterator[SearchEngine]:
    engine = SearchEngine.load(settings_with(seed_settings, fusion=Fusion.BLEND))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def learned(blend: SearchEngine, seed_settings: Settings) -> SearchEngine:
    """The same index and model as ``blend``, ranked by the shipped model."""
    return SearchEngine(
        blend.index, blend.queries, settings_with(seed_settings, fusion=Fusion.LEARNED)
    )


def test_the_default_is_the_blend(seed_settings):
    assert Settings().fusion is Fusion.BLEND and seed_settings.fusion is Fusion.BLEND


@pytest.mark.parametrize("query", QUERIES)
def test_learned_fusion_reorders_the_blends_top_papers(blend, learned, query):
    request = SearchRequest(q=query, k=MAX_K, highlight=False)
    before, after = blend.search(request), learned.search(request)
    top = {hit.id for hit in before.results[:RERANK_DEPTH]}
    assert {hit.id for hit in after.results[:RERANK_DEPTH]} == top
    assert after.total == before.total
    scores = [hit.score for hit in after.results]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    # Pages continue one another exactly.
    first = learned.search(SearchRequest(q=query, k=10, highlight=False)).results
    second = learned.search(SearchRequest(q=query, k=10, offset=10, highlight=False)).results
    assert [h.id for h in first + second] == [h.id for h in after.results[:20]]


def test_learned_fusion_changes_the_order(blend, learned):
    """Not the blend under another name: some query's top ten comes back in another order."""
    changed = 0
    for query in QUERIES:
        request = SearchRequest(q=query, k=10, highlight=False)
        changed += [h.id for h in blend.search(request).results] != [
            h.id for h in learned.search(request).results
        ]
    assert changed


def test_dense_and_lexical_modes_are_untouched(blend, learned):
    for mode in ("dense", "lexical"):
        request = SearchRequest(q=QUERIES[0], k=20, mode=mode, highlight=False)
        assert blend.search(request).model_dump() == learned.search(request).model_dump()


def test_features_are_what_the_papers_hold(blend):
    """Each column of the window, computed again from the seed texts and the vectors."""
    query = "user interest modeling over long sequences"
    ids, features = blend.learning_window(query)
    assert features.shape == (len(ids), len(FEATURES)) and len(ids) == len(blend.index)
    column = {name: features[:, number] for number, name in enumerate(FEATURES)}
    rows = [blend.index.row_of(paper_id) for paper_id in ids]
    papers = blend.index.papers_at(rows)
    terms = list(dict.fromkeys(analyse(query)))
    idf = blend.index.lexical.idfs(terms)
    vector = blend.embedder.encode([query])[0]
    cosines = blend.index.vectors_at(rows) @ vector
    np.testing.assert_allclose(column["dense"], cosines, atol=1e-5)
    assert column["dense_rank"][0] >= 0 and np.all(column["dense_gap"] <= 1e-6)
    all_cosines = blend.index.vectors_at(np.arange(len(blend.index))) @ vector
    expected_rank = [math.log1p(int((all_cosines > c + 1e-6).sum())) for c in cosines]
    np.testing.assert_allclose(column["dense_rank"], expected_rank, atol=0.05)
    np.testing.assert_allclose(column["bm25_scaled"].max(), 1.0, atol=1e-6)
    assert column["query_terms"].tolist() == [len(terms)] * len(ids)
    for number, paper in enumerate(papers):
        held = set(analyse(embedding_text(paper)))
        title = set(analyse(paper.title or ""))
        assert column["length"][number] == len(analyse(embedding_text(paper)))
        total = sum(idf.values())
        coverage = sum(idf[t] for t in terms if t in held) / total
        title_coverage = sum(idf[t] for t in terms if t in title) / total
        assert column["coverage"][number] == pytest.approx(coverage, abs=1e-5)
        assert column["title_coverage"][number] == pytest.approx(title_coverage, abs=1e-5)
    # The window is the blend's order: its best first.
    assert np.all(np.diff(column["blend"]) <= 1e-6)


def test_lengths_and_holdings_over_segments_with_dead_rows(tmp_path):
    """Two segments, some rows of the second removed: read by global row, as BM25 numbers
    the live papers."""
    first = ["graph neural networks", "language models rank papers", "graph ranking"]
    second = ["dead paper about graphs", "live streaming video", "dead again", "graph video"]
    SegmentPostings.write(tmp_path / "a", first)
    SegmentPostings.write(tmp_path / "b", second)
    live = np.array([1, 3])
    index = LexicalIndex(
        [
            (SegmentPostings.open(tmp_path / "a"), None),
            (SegmentPostings.open(tmp_path / "b"), live),
        ]
    )
    texts = first + [second[row] for row in live]
    rows = np.array([4, 0, 3, 2, 1])
    expected = [len(analyse(texts[row])) for row in rows]
    assert index.lengths_at(rows).tolist() == expected
    terms = ["graph", "video", "absent"]
    held = index.holding(terms, rows)
    for t, term in enumerate(terms):
        assert held[t].tolist() == [term in analyse(texts[row]) for row in rows]


def test_titles_of_rows(blend):
    rows = [5, 0, 97, 42]
    titles = blend.titles.titles_of_rows(rows)
    assert titles == [paper.title or "" for paper in blend.index.papers_at(rows)]
    assert blend.titles.titles_of_rows([len(blend.index)]) == [""]


def test_the_shipped_model_reads_these_features():
    ranker = LearnedRanker.load()
    assert tuple(ranker.booster.feature_name()) == FEATURES
    assert RANKER_FILE.stat().st_size < 1_500_000  # a small file in the package


def test_a_model_of_other_features_is_refused(tmp_path):
    text = gzip.decompress(RANKER_FILE.read_bytes()).decode()
    renamed = tmp_path / "renamed.txt"
    renamed.write_text(text.replace("title_coverage", "title_words"), encoding="utf-8")
    with pytest.raises(RankerUnusable, match="retrain it"):
        LearnedRanker.load(renamed)


@pytest.mark.parametrize("content", [b"", b"not a model", b"\x1f\x8b broken gzip"])
def test_a_damaged_model_file_is_one_clear_error_line(
    capsys, monkeypatch, seed_settings, tmp_path, content
):
    model = tmp_path / "model.txt"
    model.write_bytes(content)
    with pytest.raises(RankerUnusable, match="cannot load the ranking model"):
        LearnedRanker.load(model)
    monkeypatch.setenv("PAPERSEARCH_FUSION", "learned")
    monkeypatch.setenv("PAPERSEARCH_RANKER", str(model))
    code, _, err = run_cli(capsys, "search", "ranking", "--index", str(seed_settings.index_dir))
    assert code != 0 and "cannot load the ranking model" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_missing_model_file_is_refused(tmp_path: Path):
    with pytest.raises(RankerUnusable, match="cannot load"):
        LearnedRanker.load(tmp_path / "absent.txt.gz")


def test_the_window_takes_the_top_of_the_scale_and_the_rest_keeps_the_blends_order():
    blend = np.array([0.9, 0.2, 0.8, 0.5, 0.7, 0.1], dtype=np.float32)
    window = np.array([0, 2, 4])  # the blend's best three
    learned = np.array([-3.0, 40.0, 39.999])  # far apart and nearly tied, as LambdaMART gives
    scores = reordered(blend, window, learned)
    assert scores.dtype == np.float32
    order = np.argsort(-scores, kind="stable").tolist()
    assert order == [2, 4, 0, 3, 1, 5]  # the model's order, then the blend's
    assert scores[2] == 1.0 and scores[2] > scores[4] > scores[0] == 0.5 > scores[3]
    assert np.all((scores >= 0) & (scores <= 1))
    single = reordered(blend, np.array([0]), np.array([7.0]))
    assert single[0] == 1.0 and single[1:].max() <= 0.5


def test_date_order_is_the_blends(blend, learned):
    """The date pool is the blend's top papers, which learned fusion only reorders."""
    request = SearchRequest(q=QUERIES[0], k=20, sort="date", highlight=False)
    assert [h.id for h in blend.search(request).results] == [
        h.id for h in learned.search(request).results
    ]


def test_a_ranker_without_learned_fusion_or_another_weight_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="used only with fusion=learned"):
        Settings(ranker=tmp_path / "model.txt.gz")
    with pytest.raises(ValidationError, match="trained on"):
        Settings(fusion=Fusion.LEARNED, dense_weight=0.5)
    assert Settings(fusion=Fusion.LEARNED).dense_weight == DENSE_WEIGHT


def test_eval_refuses_a_ranker_without_learned_fusion_in_one_line(capsys, tmp_path):
    code, _, err = run_cli(
        capsys,
        "eval",
        "--corpus",
        str(tmp_path),
        "--queries",
        str(tmp_path / "q.jsonl"),
        "--qrels",
        str(tmp_path / "qrels.tsv"),
        "--ranker",
        str(tmp_path / "model.txt.gz"),
    )
    assert code != 0 and "used only with fusion=learned" in err
    assert len(err.strip().splitlines()) == 1


def test_recency_and_filters_apply_to_the_learned_order(blend, learned):
    """A recency boost reorders the learned scores as it does the blend's (each scaled to the
    best, then mixed with the paper's age), and a filter narrows the candidates first."""
    query = QUERIES[1]
    plain = learned.search(SearchRequest(q=query, k=MAX_K, highlight=False))
    boosted = learned.search(SearchRequest(q=query, k=MAX_K, recency=365, highlight=False))
    assert {h.id for h in boosted.results} == {h.id for h in plain.results}
    assert all(0 <= h.score <= 1 for h in boosted.results)
    assert [h.id for h in boosted.results] != [h.id for h in plain.results]
    category = blend.overview.facets.categories[0].name
    filtered = SearchRequest(q=query, k=MAX_K, category=category, highlight=False)
    kept = {h.id for h in blend.search(filtered).results}
    assert {h.id for h in learned.search(filtered).results} == kept
