"""The corpus map: computed at index time on the real seed embeddings, stored and checksummed
with the index, reproducible, keeping neighbours together, and kept row for row with the
papers by incremental updates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import indexing.corpus_map
from indexing.build import build_index
from indexing.corpus_map import place, project
from indexing.manifest import MAP_FILE, read_manifest
from indexing.reader import PaperIndex
from indexing.update import add_files, add_papers, remove_papers
from models import DEFAULT_MODEL, load_embedder
from service.settings import SEED_CAPTURE_DATE
from tests.conftest import SEEDS
from tests.utils.index_files import in_first_segment

# Seed files of an index that the last one is then added to: 48 papers, then 50 more.
FIRST_SEEDS = sorted(SEEDS.iterdir())[:4]
LAST_SEEDS = sorted(SEEDS.iterdir())[4]


def opened(index_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(vectors, map points, paper ids) of an index, row for row."""
    index = PaperIndex.open(index_dir, model=DEFAULT_MODEL)
    try:
        ids = [paper_id for paper_id, *_ in index.map_labels()]
        return index.vectors_at(range(len(index))), index.map_points.copy(), ids
    finally:
        index.close()


def build(paths: list[Path], index_dir: Path, cache_dir: Path) -> Path:
    build_index(
        paths,
        index_dir,
        cache_dir=cache_dir,
        model_name=DEFAULT_MODEL,
        load_model=load_embedder,
        capture_date=SEED_CAPTURE_DATE,
        progress=False,
    )
    return index_dir


def mean_pair_distance(points: np.ndarray) -> float:
    """Mean map distance between two different papers: what a random neighbour would give."""
    upper = np.triu_indices(len(points), 1)
    return float(np.linalg.norm(points[upper[0]] - points[upper[1]], axis=1).mean())


def test_the_seed_index_holds_a_checksummed_map_of_every_paper(seed_build):
    index = PaperIndex.open(seed_build.index_dir, model=DEFAULT_MODEL)
    try:
        points = index.map_points
        assert points.shape == (98, 2) and points.dtype == np.float32
        assert np.isfinite(points).all() and np.abs(points).max() == pytest.approx(1.0)
        assert not points.flags.writeable
        labels = index.map_labels()
        papers = index.list_papers(limit=98, offset=0)
    finally:
        index.close()
    assert in_first_segment(MAP_FILE) in read_manifest(seed_build.index_dir).files
    # Row i labels point i, with the category as the source wrote it (not the filter's "ir").
    assert labels == [(p.id, p.title, p.category, p.arxiv_id) for p in papers]
    assert labels[0][2] == "IR"


def test_a_papers_nearest_neighbour_is_near_it_on_the_map(seed_build):
    vectors, points, _ = opened(seed_build.index_dir)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = similarity.argmax(axis=1)
    to_nearest = np.linalg.norm(points - points[nearest], axis=1).mean()
    # Measured 0.16; a map that ignored the embedding would give about 1.
    assert to_nearest / mean_pair_distance(points) < 0.3


def test_the_same_vectors_give_the_same_map(seed_build, cache_dir, tmp_path):
    vectors, points, _ = opened(seed_build.index_dir)
    _, rebuilt, _ = opened(build([SEEDS], tmp_path / "index", cache_dir))
    assert np.array_equal(rebuilt, points)
    assert np.array_equal(project(vectors), points)


def test_a_handful_of_papers_still_gets_a_map(seed_build):
    vectors, _, _ = opened(seed_build.index_dir)
    assert np.array_equal(project(vectors[:1]), np.zeros((1, 2), dtype=np.float32))
    three = project(vectors[:3])
    assert three.shape == (3, 2) and np.abs(three).max() == pytest.approx(1.0)
    assert len({tuple(point) for point in three.round(3)}) == 3


def test_a_vector_already_on_the_map_is_placed_on_its_point(seed_build):
    vectors, points, _ = opened(seed_build.index_dir)
    assert np.allclose(place(vectors, vectors, points), points, atol=1e-3)
    no_anchors = place(vectors[:3], vectors[:0], points[:0])
    assert np.array_equal(no_anchors, np.zeros((3, 2), dtype=np.float32))


def test_an_excluded_anchor_does_not_place_its_vector(seed_build):
    vectors, points, _ = opened(seed_build.index_dir)
    rows = np.array([0, 40, 97])
    placed = place(vectors[rows], vectors, points, exclude=rows)
    for row, point in zip(rows, placed, strict=True):
        others = np.delete(np.arange(98), row)
        alone = place(vectors[[row]], vectors[others], points[others])[0]
        assert np.allclose(point, alone, atol=1e-6)
        assert np.linalg.norm(point - points[row]) > 0.01  # not pinned to its own point


def test_papers_beyond_the_fit_limit_are_placed_with_their_cluster(monkeypatch):
    """Four well-separated topics of 300 papers; t-SNE sees 200 of them, the rest are placed."""
    monkeypatch.setattr(indexing.corpus_map, "MAP_FIT_LIMIT", 200)
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((4, 384))
    topic = np.repeat(np.arange(4), 300)
    # Noise of norm about 1.2 around unit centres: cosine 0.4 within a topic, 0.0 across.
    vectors = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = vectors[topic] + 0.06 * rng.standard_normal((1200, 384))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    points = project(vectors)
    assert points.shape == (1200, 2) and np.abs(points).max() <= 1.0
    middles = np.stack([points[topic == t].mean(axis=0) for t in range(4)])
    radius = max(np.linalg.norm(points[topic == t] - middles[t], axis=1).max() for t in range(4))
    gap = min(np.linalg.norm(middles[a] - middles[b]) for a in range(4) for b in range(a))
    assert radius < gap / 4  # measured 0.10 against 1.28: no paper strays into another topic
    assert np.array_equal(project(vectors), points)


def test_added_papers_are_placed_by_their_neighbours_and_old_points_stay(cache_dir, tmp_path):
    index_dir = build(FIRST_SEEDS, tmp_path / "index", cache_dir)
    old_vectors, old_points, old_ids = opened(index_dir)
    report = add_files(
        [LAST_SEEDS],
        index_dir,
        capture_date=SEED_CAPTURE_DATE,
        cache_dir=cache_dir,
        load_model=load_embedder,
    )
    assert (report.added, report.papers) == (50, 98)
    vectors, points, ids = opened(index_dir)
    assert ids[:48] == old_ids and np.array_equal(points[:48], old_points)
    added = points[48:]
    assert np.isfinite(added).all() and np.abs(added).max() <= 1.0
    nearest = (vectors[48:] @ old_vectors.T).argmax(axis=1)
    to_nearest = np.linalg.norm(added - old_points[nearest], axis=1).mean()
    assert to_nearest / mean_pair_distance(old_points) < 0.3  # measured 0.17


def test_a_replaced_paper_moves_only_if_its_text_changed(cache_dir, tmp_path):
    """A replaced paper leaves its row for the segment the update writes: points are
    compared by paper id."""

    def points_by_id() -> dict[str, np.ndarray]:
        _, points, ids = opened(index_dir)
        return dict(zip(ids, points, strict=True))

    index_dir = build(FIRST_SEEDS, tmp_path / "index", cache_dir)
    _, _, ids = opened(index_dir)
    before = points_by_id()
    index = PaperIndex.open(index_dir, model=DEFAULT_MODEL)
    first, other = index.papers_at([0, 30])
    index.close()
    options = {"cache_dir": cache_dir, "load_model": load_embedder}

    add_papers([first.model_copy(update={"category": "XX"})], index_dir, **options)
    after = points_by_id()
    assert after.keys() == before.keys()
    assert all(np.array_equal(after[i], before[i]) for i in ids)  # same vector: it stays

    # The first paper now has the text of the 31st (an embedding the cache holds): it moves
    # onto that one, placed among the others, not held back by its own old point.
    rewritten = first.model_copy(update={"title": other.title, "abstract": other.abstract})
    report = add_papers([rewritten], index_dir, **options)
    assert (report.added, report.replaced) == (0, 1)
    after = points_by_id()
    assert after.keys() == before.keys()
    assert all(np.array_equal(after[i], before[i]) for i in ids[1:])
    moved, target, old = after[ids[0]], before[ids[30]], before[ids[0]]
    assert np.linalg.norm(moved - target) < 0.01 < np.linalg.norm(old - target)


def test_removed_papers_leave_the_map_and_the_others_keep_their_points(cache_dir, tmp_path):
    index_dir = build(FIRST_SEEDS, tmp_path / "index", cache_dir)
    _, before, ids = opened(index_dir)
    report = remove_papers([ids[0], ids[17], ids[-1]], index_dir)
    assert report.removed == 3
    _, points, after_ids = opened(index_dir)
    kept = [row for row in range(48) if row not in (0, 17, 47)]
    assert after_ids == [ids[row] for row in kept]
    assert np.array_equal(points, before[kept])
