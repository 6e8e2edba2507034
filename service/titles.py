"""Find a paper from its title as a person types it: any case, no punctuation, typos, a prefix."""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz import fuzz, process, utils

from indexing.records import normalise_title


@dataclass(frozen=True)
class TitleCandidate:
    row: int
    title: str
    score: float


class TitleMatcher:
    """Fuzzy title look-up over every titled paper of the index.

    Scoring is rapidfuzz's ``WRatio``: whole-title similarity for full titles, partial
    similarity for a typed prefix or fragment (scaled down as the fragment gets shorter, so
    "learning" alone is not a confident match), token-set similarity for shuffled words.
    """

    def __init__(self, titles: list[tuple[int, str]]) -> None:
        self._rows = [row for row, _ in titles]
        self._titles = [title for _, title in titles]
        self._normalised = [normalise_title(title) for title in self._titles]

    def closest(self, typed: str, limit: int = 5) -> list[TitleCandidate]:
        query = normalise_title(typed)
        if not query:
            return []
        found = process.extract(
            query,
            self._normalised,
            scorer=fuzz.WRatio,
            processor=utils.default_process,
            limit=limit,
        )
        return [
            TitleCandidate(self._rows[position], self._titles[position], round(score, 1))
            for _, score, position in found
        ]
