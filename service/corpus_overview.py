"""The corpus as a whole: the values its filters can take, and its map.

Both are derived once per loaded index and kept with its engine (a reload brings new ones),
the map's JSON serialised and compressed once too. Neither grows with the corpus beyond a
few arrays: the facets are counted from the compact filter columns, and the map sends at
most ``MAP_POINTS`` papers, a sample spread over the whole map, so a million papers are a
map the size of twenty thousand (every paper was 120 MB of JSON at a million).
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexing import paper_db
from indexing.columns import PaperColumns
from indexing.reader import PaperIndex
from indexing.records import all_categories
from service.citations import paper_label
from service.schemas import CategoryCount, CorpusMap, Facets

# Map coordinates lie within [-1, 1]; four decimals are finer than any screen shows them.
MAP_DECIMALS = 4
# The most papers the map shows: enough to see every region and its density (a browser
# draws them in tens of milliseconds), a JSON answer of a few megabytes.
MAP_POINTS = 20_000
# The map is cut into this many cells a side for sampling: every cell holding papers keeps
# at least one, so sparse regions do not vanish from a sampled map.
SAMPLE_GRID = 64
# Fixed, so the same index always shows the same sample.
SAMPLE_SEED = 20240613

# (id, title, category as written, arXiv id): what the index labels a map point with.


@dataclass(frozen=True)
class CorpusOverview:
    facets: Facets
    map_json: bytes
    map_gzip: bytes

    @classmethod
    def of(cls, index: PaperIndex, map_points: int = MAP_POINTS) -> CorpusOverview:
        columns = index.columns
        rows = sampled_rows(index.map_points, map_points)
        labels = index.map_labels(rows.tolist())
        counts = columns.category_counts()
        names = _display_names(index, columns, [category for _, _, category, _ in labels])
        # Counted over every category a paper lists (a cross-listed paper counts in each, as
        # the filter finds it in each); the map colours it by its primary one.
        categories = sorted(
            ((names[code], int(count)) for code, count in enumerate(counts) if count),
            key=lambda item: (-item[1], item[0].lower()),
        )
        facets = _facets(index, columns, categories)
        map_json = _map(index, rows, labels, facets).model_dump_json().encode()
        return cls(facets, map_json, gzip.compress(map_json, compresslevel=6, mtime=0))

    def map_of(self, index: PaperIndex, paper_ids: Sequence[str]) -> CorpusMap:
        """The map's columns for the given papers (unknown ids left out), their categories
        numbered as in the whole map: a page places results the sample lacks."""
        found = [index.row_of(paper_id) for paper_id in dict.fromkeys(paper_ids)]
        rows = np.array([row for row in found if row is not None], dtype=np.int64)
        return _map(index, rows, index.map_labels(rows.tolist()), self.facets)


def _map(
    index: PaperIndex, rows: np.ndarray, labels: list[paper_db.Label], facets: Facets
) -> CorpusMap:
    names = [category.name for category in facets.categories]
    position = {name.lower(): i for i, name in enumerate(names)}
    points = np.round(index.map_points[rows].astype(np.float64), MAP_DECIMALS).reshape(-1, 2)
    return CorpusMap(
        papers=len(index),
        shown=len(rows),
        categories=names,
        ids=[paper_id for paper_id, _, _, _ in labels],
        labels=[paper_label(title, arxiv_id, paper_id) for paper_id, title, _, arxiv_id in labels],
        category=[position.get((c or "").lower(), -1) for _, _, c, _ in labels],
        x=points[:, 0].tolist(),
        y=points[:, 1].tolist(),
    )


def sampled_rows(points: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` rows, ascending, spread over the map as the papers are.

    The map is cut into a ``SAMPLE_GRID`` square grid; the papers of each cell are put in a
    seeded random order, and the rows taken are those earliest in their cell's order
    relative to its size: every occupied cell keeps its first paper, and beyond that each
    keeps its share, so dense regions stay dense. The same points give the same rows.
    """
    count = len(points)
    if count <= limit:
        return np.arange(count)
    xy = np.asarray(points, dtype=np.float64)
    low, high = xy.min(axis=0), xy.max(axis=0)
    scaled = (xy - low) / np.where(high > low, high - low, 1.0)
    cell_xy = np.minimum((scaled * SAMPLE_GRID).astype(np.int64), SAMPLE_GRID - 1)
    cell = cell_xy[:, 0] * SAMPLE_GRID + cell_xy[:, 1]
    shuffled = np.random.default_rng(SAMPLE_SEED).permutation(count)
    # Rows grouped by cell, each cell's rows in the shuffled order.
    grouped = shuffled[np.argsort(cell[shuffled], kind="stable")]
    sizes = np.bincount(cell, minlength=SAMPLE_GRID * SAMPLE_GRID)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(count, dtype=np.float64)
    rank[grouped] = np.arange(count) - np.repeat(first, sizes)
    share = rank / sizes[cell]
    return np.sort(np.argsort(share, kind="stable")[:limit])


def _display_names(
    index: PaperIndex, columns: PaperColumns, written: list[str | None]
) -> list[str]:
    """Each category's name as the corpus writes it, by code. The filter ignores case, so
    "cs.IR" and "CS.IR" are one category, named as most of the mapped papers write it; one
    that none of them lists first (a cross-listing) is named as the first paper listing it
    writes it, read from its record."""
    spellings: dict[str, Counter[str]] = {}
    for category in written:
        if category:
            spellings.setdefault(category.lower(), Counter())[category] += 1
    names = list(columns.category_names)
    missing = [code for code, name in enumerate(names) if name not in spellings]
    if missing:
        # A category only removed papers listed is counted nowhere: named as stored.
        spellings.update((names[code], Counter([names[code]])) for code in missing)
        first = columns.first_rows_listing(missing)
        found = [(code, row) for code, row in zip(missing, first, strict=True) if row >= 0]
        papers = index.papers_at([row for _, row in found])
        for (code, _), paper in zip(found, papers, strict=True):
            listed = [c for c in all_categories(paper) if c.lower() == names[code]]
            spellings[names[code]] = Counter(listed[:1] or [names[code]])
    return [spellings[name].most_common(1)[0][0] for name in names]


def _facets(index: PaperIndex, columns: PaperColumns, categories: list[tuple[str, int]]) -> Facets:
    years = columns.year[columns.year > 0]
    return Facets(
        papers=len(index),
        categories=[CategoryCount(name=name, papers=count) for name, count in categories],
        year_min=int(years.min()) if len(years) else None,
        year_max=int(years.max()) if len(years) else None,
        with_code=int(columns.has_code.sum()),
    )
