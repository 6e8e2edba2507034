"""What a serving process holds per paper stays bytes, not Python objects, and answers as
the plain definitions do: the filter columns (segments concatenated, every filter against
the papers' own fields), the title matcher (its candidate path finds what scoring every
title finds, on the seed corpus and on 75,000 real arXiv titles) and the corpus overview (a
map of at most a fixed number of points, spread over the map, with the corpus's counts).

Memory and speed are measured by a benchmark, not here: these tests pin behaviour.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from indexing.columns import PaperColumns
from indexing.reader import PaperIndex
from indexing.records import Paper, all_categories
from indexing.row_space import RowSpace
from indexing.title_index import TitleIndex
from service.corpus_overview import SAMPLE_GRID, CorpusOverview, sampled_rows
from service.filters import SearchFilters
from service.schemas import CorpusMap
from service.settings import Settings
from service.titles import TitleMatcher
from tests.conftest import shared_data

CLOCK_ID = "long-term-interest-clock-fine-grained-3265cadf58"
CLOCK_TITLE = (
    "Long-Term Interest Clock: Fine-Grained Time Perception in Streaming Recommendation System"
)
MATCHED = Settings().title_match_threshold
# How people type titles (test_api's cases, and the README's): typos, prefixes, squashed
# or split names, and text that names no paper.
TYPED = [
    CLOCK_TITLE,
    "long term interest clock fine grained time perception in streaming recommendation system",
    "Long-Term Intrest Clock: Fine-Grained Time Perception in Streaming Recommendation Sytem",
    "Long-Term Interest Clock: Fine-Grained Time Perception",
    "long term intrest clock",
    "Trinity",
    "one reason",
    "one reason technical report",
    "AdaF2M2",
    "quantum chromodynamics on the lattice",
]


@pytest.fixture(scope="module")
def seed_index(seed_settings: Settings) -> Iterator[PaperIndex]:
    index = PaperIndex.open(seed_settings.index_dir, model=seed_settings.model)
    try:
        yield index
    finally:
        index.close()


@pytest.fixture(scope="module")
def seed_papers(seed_index: PaperIndex) -> list[Paper]:
    return seed_index.papers_at(range(len(seed_index)))


def _named(columns: PaperColumns) -> dict[str, list[Any]]:
    """The columns with codes replaced by the names they stand for: what two sets of columns
    must agree on, whatever their codes and however their segments are laid out."""
    categories: list[list[str]] = []
    authors: list[bytes] = []
    for text in columns.texts:
        starts, author_starts = text.category_starts.tolist(), text.author_starts.tolist()
        for row in range(text.rows) if text.live is None else text.live.tolist():
            codes = text.category_codes[text.category_ids[starts[row] : starts[row + 1]]]
            categories.append([columns.category_names[code] for code in codes.tolist()])
            authors.append(text.authors[author_starts[row] : author_starts[row + 1]].tobytes())
    return {
        "year": columns.year.tolist(),
        "published": columns.published.tolist(),
        "has_code": columns.has_code.tolist(),
        "source": [columns.source_names[code] for code in columns.source.tolist()],
        "categories": categories,
        "authors": authors,
    }


def test_columns_are_mapped_numbers_and_codes_not_python_objects(seed_index, seed_papers):
    columns = seed_index.columns
    assert len(columns) == len(seed_papers) == 98
    assert (columns.year.dtype, columns.published.dtype) == (np.int16, np.int32)
    assert columns.has_code.dtype == np.bool_
    (text,) = columns.texts
    for array in (columns.year, columns.source, text.category_ids, text.authors):
        assert isinstance(array.base, np.memmap) and not array.flags.writeable
    for array in (columns.source, text.category_ids, text.category_starts):
        assert array.dtype.kind in "iu"
    named = _named(columns)
    for row, paper in enumerate(seed_papers):
        assert named["year"][row] == (paper.published.year if paper.published else 0)
        assert named["categories"][row] == [c.lower() for c in all_categories(paper)]
        assert named["source"][row] == paper.source
        written = "\n".join(paper.authors).lower().encode() + b"\n"
        assert named["authors"][row] == written


def test_segments_columns_concatenate_and_merge_to_the_whole_ones(tmp_path, seed_papers):
    PaperColumns.write(tmp_path / "whole", seed_papers)
    # Segments listing the papers in other orders, so their code tables differ.
    PaperColumns.write(tmp_path / "first", seed_papers[:40][::-1])
    PaperColumns.write(tmp_path / "second", seed_papers[40:][::-1])
    expected = _named(PaperColumns.open(tmp_path / "whole", None))
    parts = [PaperColumns.open(tmp_path / name, None) for name in ("first", "second")]
    reversed_back = _named(PaperColumns.concat(parts))
    for name, values in reversed_back.items():
        assert values[:40][::-1] + values[40:][::-1] == expected[name], name
    # Only the live rows, in row order; none live is an empty segment.
    live = np.array([0, 5, 17, 97])
    picked = _named(PaperColumns.open(tmp_path / "whole", live))
    for name, values in picked.items():
        assert values == [expected[name][row] for row in live.tolist()], name
    empty = PaperColumns.open(tmp_path / "whole", np.array([], dtype=np.int64))
    assert len(empty) == 0 and len(PaperColumns.concat([empty, parts[0]])) == 40
    # A merge writes what the segments' live rows hold, back to back, as one segment.
    first_live = np.array([row for row in range(40) if row % 3])
    PaperColumns.merge(
        [(tmp_path / "first", first_live), (tmp_path / "second", None)], tmp_path / "merged"
    )
    merged = _named(PaperColumns.open(tmp_path / "merged", None))
    joined = _named(
        PaperColumns.concat([PaperColumns.open(tmp_path / "first", first_live), parts[1]])
    )
    assert merged == joined and len(merged["year"]) == len(first_live) + 58


@pytest.mark.parametrize(
    "filters",
    [
        {"category": "IR"},
        {"category": "cs.ir"},
        {"category": "lg"},
        {"category": "ai"},
        {"category": "nothing"},
        {"author": "zhu"},
        {"author": "ZHANG"},
        {"author": "an"},
        {"author": "yongchun zhu"},
        {"author": "n, g"},
        {"has_code": True},
        {"year_from": 2024, "year_to": 2025, "category": "IR", "author": "li"},
    ],
    ids=lambda filters: ",".join(f"{k}={v}" for k, v in filters.items()),
)
def test_each_filter_keeps_the_papers_its_definition_names(seed_index, seed_papers, filters):
    mask = SearchFilters(**filters).mask(seed_index)
    assert mask is not None
    wanted = str(filters.get("category", "")).lower()
    needle = str(filters.get("author", "")).lower()
    expected = [
        (not wanted or any(wanted in (c, c.rpartition(".")[2]) for c in _lowered(paper)))
        and (not needle or any(needle in name.lower() for name in paper.authors))
        and ("has_code" not in filters or paper.has_code == filters["has_code"])
        and (
            "year_from" not in filters
            or (paper.published is not None and paper.published.year >= filters["year_from"])
        )
        and (
            "year_to" not in filters
            or (paper.published is not None and paper.published.year <= filters["year_to"])
        )
        for paper in seed_papers
    ]
    assert mask.tolist() == expected


def test_the_source_filter_takes_a_file_name_as_indexed(seed_index, seed_papers):
    sources = {paper.source for paper in seed_papers}
    for source in [*sources, "no-such-file.jsonl"]:
        mask = SearchFilters(source=source).mask(seed_index)
        assert mask is not None
        assert mask.tolist() == [paper.source == source for paper in seed_papers]


def _lowered(paper: Paper) -> list[str]:
    return [c.lower() for c in all_categories(paper)]


@pytest.mark.parametrize("typed", TYPED)
def test_the_candidate_path_finds_what_scoring_every_title_finds(seed_index, typed):
    titles = seed_index.title_parts()
    every = TitleMatcher(titles, seed_index.rows)  # 98 titles: each one scored
    # Forced to pick candidates first.
    narrowed = TitleMatcher(titles, seed_index.rows, candidates=12)
    best, found = every.closest(typed)[0], narrowed.closest(typed)[0]
    if best.score >= MATCHED:
        assert (found.row, found.title, found.score) == (best.row, best.title, best.score)
    else:  # no title matches: the suggestions are near ones, and none matches either
        assert found.score <= best.score


def test_titles_are_found_as_typed_on_the_seed_corpus(seed_index):
    matcher = TitleMatcher(seed_index.title_parts(), seed_index.rows, candidates=12)
    clock = seed_index.row_of(CLOCK_ID)
    for typed in TYPED[:5]:
        best = matcher.closest(typed)[0]
        assert best.row == clock and best.score >= 88, typed
    assert matcher.closest("one reason")[0].title.startswith("OneReason")
    assert matcher.closest("AdaF2M2")[0].title.startswith("AdaF^2M^2")
    assert matcher.closest("Trinity")[0].title.startswith("Trinity")
    assert matcher.closest("quantum chromodynamics on the lattice")[0].score < 88
    # Naming scores read the titles back from the matcher's bytes.
    assert matcher.naming_scores("Long-Term Interest Clock", [clock, 10**9]) == [100.0, 0.0]


@pytest.fixture(scope="module")
def arxiv_titles() -> list[tuple[int, str]]:
    path = shared_data("arxiv/arxiv-75k.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        titles = [str(json.loads(line).get("title") or "") for line in lines]
    return [(row, " ".join(title.split())) for row, title in enumerate(titles)]


def test_typed_titles_are_found_among_75k_arxiv_titles(arxiv_titles, tmp_path):
    papers = [
        Paper(id=str(row), title=title or None, abstract="", source="arxiv")
        for row, title in arxiv_titles
    ]
    TitleIndex.write(tmp_path / "titles", papers)
    parts = [TitleIndex.open(tmp_path / "titles", None)]
    matcher = TitleMatcher(parts, RowSpace([len(papers)], [None]))
    arxiv_titles = [(row, title) for row, title in arxiv_titles if title]
    rng = random.Random(11)
    first_row = {}
    for row, title in arxiv_titles:  # a title listed twice is found under its first row
        first_row.setdefault(title, row)
    for row, title in rng.sample(arxiv_titles, 60):
        cut = rng.randrange(1, len(title) - 1)
        typo = title[:cut] + title[cut + 1 :]
        prefix = " ".join(title.split()[:4]).lower()
        best = matcher.closest(typo)[0]
        assert best.title == title and best.score >= 88, (typo, best)
        assert matcher.closest(prefix)[0].score == 100.0, prefix
        assert matcher.naming_scores(title, [row]) == [100.0]


def test_the_map_shows_a_spread_sample_with_the_corpus_counts(seed_index, seed_papers):
    full = CorpusOverview.of(seed_index)
    sampled = CorpusOverview.of(seed_index, map_points=40)
    assert sampled.facets == full.facets  # counted over every paper, not the sample
    whole = CorpusMap.model_validate_json(full.map_json)
    shown = CorpusMap.model_validate_json(sampled.map_json)
    assert (whole.papers, whole.shown) == (98, 98)
    assert (shown.papers, shown.shown, len(shown.ids), len(shown.x)) == (98, 40, 40, 40)
    assert json.loads(gzip.decompress(sampled.map_gzip)) == json.loads(sampled.map_json)
    rows = [seed_index.row_of(paper_id) for paper_id in shown.ids]
    assert rows == sorted(rows)  # in index order
    points = np.asarray(seed_index.map_points)[rows]
    assert np.allclose(np.column_stack([shown.x, shown.y]), points, atol=1e-4)
    assert shown.categories == whole.categories
    for row, label, category in zip(rows, shown.labels, shown.category, strict=True):
        paper = seed_papers[row]
        assert label == (paper.title or f"arXiv:{paper.arxiv_id}")
        assert (shown.categories[category] if category >= 0 else None) == paper.category


def test_the_sample_is_fixed_and_keeps_every_region():
    # A map shaped like a t-SNE layout of many papers: dense clusters, a thin haze between
    # them (drawn from a fixed seed; the seed corpus's 98 points are too few to sample).
    rng = np.random.default_rng(5)
    centres = rng.uniform(-1, 1, size=(30, 2))
    dense = centres[rng.integers(0, 30, 60_000)] + rng.normal(0, 0.03, size=(60_000, 2))
    sparse = rng.uniform(-1, 1, size=(300, 2))  # a thin haze between the clusters
    points = np.concatenate([dense, sparse]).astype(np.float32)
    rows = sampled_rows(points, 5_000)
    assert len(rows) == 5_000 and np.array_equal(rows, sampled_rows(points, 5_000))
    assert np.all(np.diff(rows) > 0)
    cells = _cells(points)
    assert set(cells[rows].tolist()) == set(cells.tolist())  # no occupied cell left empty
    # Dense regions stay dense: the clusters keep about their share of the points.
    kept_dense = np.count_nonzero(rows < 60_000) / len(rows)
    assert 0.9 < kept_dense < 1.0
    assert np.array_equal(sampled_rows(points[:100], 5_000), np.arange(100))


def _cells(points: np.ndarray) -> np.ndarray:
    low, high = points.min(axis=0), points.max(axis=0)
    cell = np.minimum(((points - low) / (high - low) * SAMPLE_GRID).astype(int), SAMPLE_GRID - 1)
    return np.asarray(cell[:, 0] * SAMPLE_GRID + cell[:, 1])


def test_the_map_places_results_by_id(client):
    whole = client.get("/map").json()
    ids = [whole["ids"][5], "no-such-paper", whole["ids"][0]]
    answer = client.get("/map", params={"ids": ",".join(ids)})
    assert answer.status_code == 200
    placed = answer.json()
    assert placed["ids"] == [whole["ids"][5], whole["ids"][0]]  # unknown ones left out
    assert (placed["papers"], placed["shown"]) == (98, 2)
    assert placed["categories"] == whole["categories"]
    for key in ("labels", "category", "x", "y"):
        assert placed[key] == [whole[key][5], whole[key][0]], key
    too_many = client.get("/map", params={"ids": ",".join(["a"] * 101)})
    assert too_many.status_code == 422 and too_many.json()["code"] == "invalid_request"
