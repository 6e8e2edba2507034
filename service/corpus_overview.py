"""The corpus as a whole: the values its filters can take, and its map.

Both are derived once per loaded index and kept with its engine (a reload brings new ones),
the map's JSON serialised and compressed once too: for a large corpus it is megabytes that
every page load would otherwise rebuild.
"""

from __future__ import annotations

import gzip
from collections import Counter
from dataclasses import dataclass

import numpy as np

from indexing.reader import PaperIndex
from service.citations import paper_label
from service.schemas import CategoryCount, CorpusMap, Facets

# Map coordinates lie within [-1, 1]; four decimals are finer than any screen shows them.
MAP_DECIMALS = 4


@dataclass(frozen=True)
class CorpusOverview:
    facets: Facets
    map_json: bytes
    map_gzip: bytes

    @classmethod
    def of(cls, index: PaperIndex) -> CorpusOverview:
        labels = index.map_labels()
        # Counted over every category a paper lists (a cross-listed paper counts in each, as
        # the filter finds it in each); the map colours it by its primary one.
        categories = _category_names([c for cats in index.category_lists() for c in cats])
        facets = _facets(index, categories)
        position = {name.lower(): i for i, (name, _) in enumerate(categories)}
        points = np.round(index.map_points.astype(np.float64), MAP_DECIMALS)
        corpus_map = CorpusMap(
            papers=len(labels),
            categories=[name for name, _ in categories],
            ids=[paper_id for paper_id, _, _, _ in labels],
            labels=[
                paper_label(title, arxiv_id, paper_id) for paper_id, title, _, arxiv_id in labels
            ],
            category=[position.get((c or "").lower(), -1) for _, _, c, _ in labels],
            x=points[:, 0].tolist(),
            y=points[:, 1].tolist(),
        )
        map_json = corpus_map.model_dump_json().encode()
        return cls(facets, map_json, gzip.compress(map_json, compresslevel=6, mtime=0))


def _category_names(categories: list[str | None]) -> list[tuple[str, int]]:
    """``(name, papers)``, most papers first. The filter ignores case, so "cs.IR" and
    "CS.IR" are one category, named as most of its papers write it."""
    spellings: dict[str, Counter[str]] = {}
    for category in categories:
        if category:
            spellings.setdefault(category.lower(), Counter())[category] += 1
    counted = [(counts.most_common(1)[0][0], sum(counts.values())) for counts in spellings.values()]
    return sorted(counted, key=lambda item: (-item[1], item[0].lower()))


def _facets(index: PaperIndex, categories: list[tuple[str, int]]) -> Facets:
    years = index.columns.year[index.columns.year > 0]
    return Facets(
        papers=len(index),
        categories=[CategoryCount(name=name, papers=count) for name, count in categories],
        year_min=int(years.min()) if len(years) else None,
        year_max=int(years.max()) if len(years) else None,
        with_code=int(index.columns.has_code.sum()),
    )
