"""Answering queries: the operations the HTTP routes and the CLI share."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexing.records import Paper
from indexing.store import PaperIndex, check_compatible, read_manifest
from models import Embedder, load_embedder
from service.errors import PaperNotFound, TitleNotFound
from service.schemas import (
    PaperPage,
    SearchHit,
    SearchResponse,
    SimilarToPaperResponse,
    SimilarToTitleResponse,
    TitleMatch,
    TitleSuggestion,
)
from service.settings import Settings
from service.titles import TitleMatcher


class SearchEngine:
    """An index plus the model that embeds queries for it; loaded once, shared by all requests."""

    def __init__(self, index: PaperIndex, embedder: Embedder, title_match_threshold: float) -> None:
        self.index = index
        self.embedder = embedder
        self.title_match_threshold = title_match_threshold
        self.titles = TitleMatcher(index.titles())

    @classmethod
    def load(cls, settings: Settings) -> SearchEngine:
        """Check the manifest before the slow model load, so a stale index fails in milliseconds."""
        check_index(settings.index_dir, settings.model)
        embedder = load_embedder(settings.model)
        index = PaperIndex.open(
            settings.index_dir, model=settings.model, dimension=embedder.dimension
        )
        return cls(index, embedder, settings.title_match_threshold)

    def close(self) -> None:
        self.index.close()

    def search(self, query: str, k: int = 10, offset: int = 0) -> SearchResponse:
        vector = self.embedder.encode([query])
        return SearchResponse(
            query=query, k=k, offset=offset, results=self._nearest(vector, k, offset=offset)
        )

    def paper(self, paper_id: str) -> Paper:
        row = self.index.row_of(paper_id)
        if row is None:
            raise PaperNotFound(paper_id)
        return self.index.papers_at([row])[0]

    def list_papers(self, limit: int, offset: int) -> PaperPage:
        return PaperPage(
            total=len(self.index),
            limit=limit,
            offset=offset,
            papers=self.index.list_papers(limit, offset),
        )

    def similar_to_paper(self, paper_id: str, k: int = 10) -> SimilarToPaperResponse:
        row = self.index.row_of(paper_id)
        if row is None:
            raise PaperNotFound(paper_id)
        paper = self.index.papers_at([row])[0]
        return SimilarToPaperResponse(paper=paper, results=self._neighbours(row, k))

    def similar_to_title(self, typed_title: str, k: int = 10) -> SimilarToTitleResponse:
        candidates = self.titles.closest(typed_title)
        if not candidates or candidates[0].score < self.title_match_threshold:
            suggestions = [
                TitleSuggestion(id=paper.id, title=c.title, match_score=c.score).model_dump()
                for c, paper in zip(
                    candidates, self.index.papers_at([c.row for c in candidates]), strict=True
                )
            ]
            raise TitleNotFound(typed_title, suggestions)
        best = candidates[0]
        paper = self.index.papers_at([best.row])[0]
        matched = TitleMatch(**paper.model_dump(), match_score=best.score)
        return SimilarToTitleResponse(matched=matched, results=self._neighbours(best.row, k))

    def _neighbours(self, row: int, k: int) -> list[SearchHit]:
        hits = self._nearest(self.index.vector(row)[None, :], k + 1, exclude_row=row)
        return hits[:k]

    def _nearest(
        self, vector: np.ndarray, k: int, *, offset: int = 0, exclude_row: int | None = None
    ) -> list[SearchHit]:
        scores, rows = self.index.search(vector, k + offset)
        ranked = [
            (float(s), int(r))
            for s, r in zip(scores[0], rows[0], strict=True)
            if r >= 0 and r != exclude_row
        ][offset : offset + k]
        papers = self.index.papers_at([row for _, row in ranked])
        return [
            SearchHit(**paper.model_dump(), score=round(score, 4))
            for (score, _), paper in zip(ranked, papers, strict=True)
        ]


def check_index(index_dir: Path, model: str) -> None:
    """Cheap start-up check (manifest only): raises IndexUnusable with what to run."""
    check_compatible(read_manifest(index_dir), index_dir, model)
