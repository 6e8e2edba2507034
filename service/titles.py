"""Find a paper from its title as a person types it: any case, no punctuation, typos, a prefix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from indexing.records import normalise_title


@dataclass(frozen=True)
class TitleCandidate:
    row: int
    title: str
    score: float


class TitleMatcher:
    """Fuzzy title look-up over every titled paper of the index.

    A typed title is compared, with case, punctuation and spaces dropped ("one reason" and
    "AdaF2M2" should still find "OneReason" and "AdaF^2M^2"), with each title twice: whole
    (typos, a missing word) and cut to the typed length (a prefix such as "Trinity" or "long
    term intrest clock"); the better of the two is the score, 0-100. Token-set and partial
    scorers are avoided on purpose: they rate any title that shares "on the" highly.
    """

    def __init__(self, titles: list[tuple[int, str]]) -> None:
        self._rows = [row for row, _ in titles]
        self._titles = [title for _, title in titles]
        self._normalised = [normalise_title(title) for title in self._titles]
        self._squashed = [_squash(title) for title in self._normalised]

    def closest(self, typed: str, limit: int = 5) -> list[TitleCandidate]:
        query = normalise_title(typed)
        if not query or not self._normalised:
            return []
        typed_squashed = _squash(query)
        whole = process.cdist(
            [typed_squashed], self._squashed, scorer=fuzz.ratio, dtype=np.float32
        )[0]
        prefixes = [_squash(_cut_after_word(title, len(query))) for title in self._normalised]
        prefix = process.cdist([typed_squashed], prefixes, scorer=fuzz.ratio, dtype=np.float32)[0]
        scores = np.maximum(whole, prefix)
        best = np.argsort(-scores, kind="stable")[:limit]
        return [
            TitleCandidate(self._rows[i], self._titles[i], round(float(scores[i]), 1)) for i in best
        ]


def _squash(normalised: str) -> str:
    return normalised.replace(" ", "")


def _cut_after_word(title: str, length: int) -> str:
    """The title's first ``length`` characters, extended to the end of the word they stop in."""
    end = title.find(" ", length)
    return title if end < 0 else title[:end]
