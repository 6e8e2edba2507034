"""Segments: after adds, replacements, removals and merges, searches answer exactly as a fresh
build of the same papers does; updates write only what changed; merging keeps every answer."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from indexing import reader
from indexing.build import build_index, read_papers
from indexing.index_types import MIN_SAMPLE
from indexing.manifest import FORMAT_VERSION, VECTORS_FILE, Manifest, Segment, read_manifest
from indexing.reader import PaperIndex
from indexing.records import Paper
from indexing.update import MAX_SEGMENTS, add_papers, merge_plan, merge_segments, remove_papers
from models import DEFAULT_MODEL, load_embedder
from service.corpus_overview import CorpusOverview
from service.filters import SearchFilters
from service.ranking import SearchMode
from service.schemas import SearchRequest
from service.search import SearchEngine
from service.settings import SEED_CAPTURE_DATE, Settings
from service.titles import CANDIDATES, TitleMatcher
from tests.conftest import SEEDS
from tests.utils.index_files import live_build

QUERIES = [
    "cross-domain live-streaming recommendation",
    "large language models for ranking",
    "graph neural networks cold start",
    '"click-through rate" -video',
]
FILTERS = [SearchFilters(), SearchFilters(year_from=2025), SearchFilters(category="cs.IR")]


def seed_papers() -> list[Paper]:
    return read_papers([SEEDS], SEED_CAPTURE_DATE).papers


def answers(index_dir: Path, cache_dir: Path) -> dict[tuple[str, str, int], list]:
    """(id, score) of the top 10 of every query, mode and filter, and the facets' counts."""
    engine = SearchEngine.load(Settings(index_dir=index_dir, cache_dir=cache_dir))
    try:
        found: dict[tuple[str, str, int], list] = {}
        for query in QUERIES:
            for mode in SearchMode:
                for number, filters in enumerate(FILTERS):
                    request = SearchRequest(q=query, k=10, mode=mode, **filters.filter_values())
                    response = engine.search(request)
                    hits = [(hit.id, hit.score) for hit in response.results]
                    found[(query, mode.value, number)] = [response.total, *hits]
        some = engine.index.paper_ids()[:3]
        found[("similar", "", 0)] = [
            (hit.id, hit.score) for hit in engine.similar_to_paper(some[0]).results
        ]
        found[("ids", "", 0)] = sorted(engine.index.paper_ids())
        return found
    finally:
        engine.close()


def fresh_build(papers: list[Paper], folder: Path, cache_dir: Path) -> Path:
    """A full build of exactly ``papers``: the seeds, with the others removed and merged
    away (one segment, no tombstone: what `papersearch index` of those papers writes)."""
    report = build_index(
        [SEEDS],
        folder,
        cache_dir=cache_dir,
        model_name=DEFAULT_MODEL,
        load_model=load_embedder,
        capture_date=SEED_CAPTURE_DATE,
        progress=False,
    )
    wanted = {paper.id for paper in papers}
    remove_papers([p.id for p in seed_papers() if p.id not in wanted], report.index_dir)
    merge_segments(report.index_dir)
    manifest = read_manifest(report.index_dir)
    assert len(manifest.segments) == 1 and not manifest.segments[0].deleted
    return report.index_dir


@pytest.fixture(scope="module")
def updated(
    tmp_path_factory: pytest.TempPathFactory, cache_dir: Path
) -> tuple[Path, list[Paper], int]:
    """An index taken through adds, replacements and removals, never merged: several
    segments, tombstones in more than one; the papers it must hold, and the inode of the
    base segment's vectors as the first build wrote them."""
    folder = tmp_path_factory.mktemp("segments")
    papers = seed_papers()
    index_dir = folder / "index"
    first = [paper for paper in papers if paper.source != papers[-1].source]
    build_index(
        sorted(SEEDS.iterdir())[:-1],
        index_dir,
        cache_dir=cache_dir,
        model_name=DEFAULT_MODEL,
        load_model=load_embedder,
        capture_date=SEED_CAPTURE_DATE,
        progress=False,
    )
    base_vectors = live_build(index_dir) / read_manifest(index_dir).segments[0].path(VECTORS_FILE)
    written = base_vectors.stat().st_ino
    options = {"cache_dir": cache_dir, "load_model": load_embedder, "merge": False}
    last_file = [paper for paper in papers if paper not in first]
    add_papers(last_file[:30], index_dir, **options)
    add_papers(last_file[30:], index_dir, **options)
    # A replacement and its undoing: tombstones in two segments, the paper back as it was.
    changed = first[5].model_copy(update={"abstract": first[5].abstract + " Also graphs."})
    add_papers([changed], index_dir, **options)
    add_papers([first[5], last_file[2]], index_dir, **options)
    removed = [first[0].id, first[20].id, last_file[10].id, last_file[40].id]
    report = remove_papers(removed, index_dir, merge=False)
    assert report.removed == 4
    kept = [paper for paper in papers if paper.id not in removed]
    return index_dir, kept, written


def test_updates_write_segments_and_tombstones(updated):
    index_dir, kept, written = updated
    manifest = read_manifest(index_dir)
    # The fourth segment (the changed paper alone) lost its only paper: it is gone.
    assert [(s.name, s.rows, s.deleted) for s in manifest.segments] == [
        ("000001", 48, 3), ("000002", 30, 2), ("000003", 20, 1), ("000005", 2, 0)
    ]  # fmt: skip
    assert manifest.paper_count == len(kept) == 94
    # The base segment's vectors are the very file the first build wrote: linked, not copied.
    base = manifest.segments[0].path(VECTORS_FILE)
    assert (live_build(index_dir) / base).stat().st_ino == written
    index = PaperIndex.open(index_dir)
    try:
        assert sorted(index.paper_ids()) == sorted(paper.id for paper in kept)
        assert len(index) == 94 and index.lexical.size == 94 and len(index.map_points) == 94
    finally:
        index.close()


@pytest.mark.parametrize("sample", [MIN_SAMPLE, 8])
def test_searches_across_segments_equal_a_fresh_build(
    updated, cache_dir, tmp_path, monkeypatch, sample
):
    """Also where the hybrid range is estimated from a sample smaller than the corpus (at
    4,096 papers and more): the sample is the same papers in any index of them."""
    monkeypatch.setattr(reader, "MIN_SAMPLE", sample)
    index_dir, kept, _ = updated
    fresh = fresh_build(kept, tmp_path / "fresh" / "index", cache_dir)
    expected = answers(fresh, cache_dir)
    found = answers(index_dir, cache_dir)
    assert found.keys() == expected.keys()
    for key, hits in expected.items():
        assert found[key] == hits, key


def test_merging_keeps_every_answer_and_drops_the_tombstones(updated, cache_dir, tmp_path):
    index_dir, _, _ = updated
    copy = tmp_path / "index"
    before = answers(index_dir, cache_dir)
    os.symlink(live_build(index_dir), copy)  # merging writes a new build beside the copy
    assert merge_segments(copy) == 4
    manifest = read_manifest(copy)
    assert [(s.rows, s.deleted) for s in manifest.segments] == [(94, 0)]
    assert answers(copy, cache_dir) == before
    assert merge_segments(copy) == 0  # one segment without tombstones: nothing to do


# One filter of each kind, on the values the seed papers hold.
FILTER_KINDS = [
    SearchFilters(year_from=2025),
    SearchFilters(year_to=2024),
    SearchFilters(category="cs.IR"),
    SearchFilters(category="lg"),
    SearchFilters(author="zhang"),
    SearchFilters(author="li"),
    SearchFilters(has_code=True),
    SearchFilters(has_code=False, year_from=2024, category="ir", author="an"),
]


def filtered_and_titled(index_dir: Path, papers: list[Paper]) -> dict[str, list]:
    """The ids each filter keeps, the facets, and what title look-ups find (by id): for
    the title of every paper of ``papers`` typed with a typo, through every title scored
    and through the candidate path."""
    index = PaperIndex.open(index_dir)
    try:
        ids = index.paper_ids()
        found: dict[str, list] = {}
        sources = sorted({paper.source for paper in papers})
        for filters in [*FILTER_KINDS, *(SearchFilters(source=name) for name in sources)]:
            mask = filters.mask(index)
            assert mask is not None and len(mask) == len(index)
            found[repr(filters)] = sorted(ids[row] for row in np.flatnonzero(mask).tolist())
        found["facets"] = [CorpusOverview.of(index).facets]
        for candidates in (CANDIDATES, 12):
            matcher = TitleMatcher(index.title_parts(), index.rows, candidates=candidates)
            for paper in papers:
                # A removed paper's title matches nothing well: through candidates, which
                # poor match comes first may differ; every title scored, it may not.
                if paper.title and (paper.id in ids or candidates == CANDIDATES):
                    typo = paper.title[:5] + paper.title[6:]
                    best = matcher.closest(typo)
                    found[f"{candidates} {paper.id}"] = [
                        ids[best[0].row],
                        best[0].title,
                        # Every title scored: the same scores. Through candidates, ties of
                        # the estimates may pick other runners-up: the best is what counts.
                        sorted(hit.score for hit in best) if candidates == CANDIDATES else None,
                        best[0].score,
                        matcher.naming_scores(paper.title, [ids.index(paper.id)])
                        if paper.id in ids
                        else None,
                    ]
        return found
    finally:
        index.close()


def test_filters_and_titles_across_segments_equal_a_fresh_build(updated, cache_dir, tmp_path):
    index_dir, kept, _ = updated
    kept_ids = {paper.id for paper in kept}
    removed = [paper for paper in seed_papers() if paper.id not in kept_ids]
    fresh = fresh_build(kept, tmp_path / "fresh" / "index", cache_dir)
    expected = filtered_and_titled(fresh, kept + removed)
    assert filtered_and_titled(index_dir, kept + removed) == expected
    # A removed paper's title finds another paper: its row is never a candidate.
    for paper in removed:
        if paper.title:
            assert expected[f"{CANDIDATES} {paper.id}"][0] != paper.id
    copy = tmp_path / "merged"
    os.symlink(live_build(index_dir), copy)  # merging writes a new build beside the copy
    assert merge_segments(copy) == 4
    assert filtered_and_titled(copy, kept + removed) == expected


def test_updates_past_the_thresholds_merge_on_their_own(seed_build, cache_dir, tmp_path):
    index_dir = tmp_path / "index"
    os.symlink(live_build(seed_build.index_dir), index_dir)
    papers = seed_papers()
    for paper in papers[: MAX_SEGMENTS + 1]:
        changed = paper.model_copy(update={"title": f"{paper.title} (revised)"})
        add_papers([changed], index_dir, cache_dir=cache_dir, load_model=load_embedder)
    manifest = read_manifest(index_dir)
    assert len(manifest.segments) <= MAX_SEGMENTS  # past its thresholds, it merged
    index = PaperIndex.open(index_dir)
    try:
        assert len(index) == 98
        rows = [index.row_of(paper.id) for paper in papers[: MAX_SEGMENTS + 1]]
        titles = [
            paper.title for paper in index.papers_at([row for row in rows if row is not None])
        ]
        assert all(title.endswith("(revised)") for title in titles) and len(titles) == len(rows)
        assert np.isfinite(index.map_points).all()
    finally:
        index.close()


def plan_for(*segments: tuple[int, int]) -> tuple[int, int] | None:
    """``merge_plan`` of an index of segments given as (rows, deleted)."""
    manifest = read_manifest_like(
        [Segment(name=f"{n + 1:06d}", rows=rows, deleted=deleted) for n, (rows, deleted) in
         enumerate(segments)]
    )  # fmt: skip
    return merge_plan(manifest, full=False)


def read_manifest_like(segments: list[Segment]) -> Manifest:
    return Manifest(
        format_version=FORMAT_VERSION, model=DEFAULT_MODEL, dimension=384,
        paper_count=sum(segment.live for segment in segments), corpus_checksum="0" * 64,
        built_at=datetime.now(UTC), build_seconds=0.0, sources=[], capture_date="2025-01-01",
        segments=segments,
    )  # fmt: skip


def test_merge_plan_merges_small_segments_first_and_everything_past_its_shares():
    base = (10_000, 0)
    assert plan_for(base, *[(10, 0)] * (MAX_SEGMENTS - 1)) is None
    assert plan_for(base, *[(10, 0)] * MAX_SEGMENTS) == (1, MAX_SEGMENTS + 1)  # not the base
    assert plan_for(base, (900, 0), (200, 0)) == (0, 3)  # over a tenth of the base outside it
    assert plan_for((10_000, 2_500), (10, 0)) == (0, 2)  # a fifth of the rows removed
    assert plan_for((10_000, 1_000), (10, 0)) is None
    single = read_manifest_like([Segment(name="000001", rows=5)])
    assert merge_plan(single, full=True) is None
    assert merge_plan(read_manifest_like([Segment(name="000001", rows=5, deleted=1)]), full=True)
