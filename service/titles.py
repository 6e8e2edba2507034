"""Find a paper from its title as a person types it: any case, no punctuation, typos, a prefix."""

from __future__ import annotations

from collections.abc import Sequence
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
        # The short name many papers lead with ("Trinity: ...", "Long-Term Interest Clock:
        # ..."): what people type when they search for the paper itself.
        self._names = [_squash(normalise_title(title.partition(":")[0])) for title in self._titles]
        self._position = {row: i for i, row in enumerate(self._rows)}

    def naming_scores(self, query: str, rows: Sequence[int]) -> list[float]:
        """How closely ``query`` is the whole title or the short name of each row's paper.

        Unlike ``closest`` this does not score prefixes: "large language models" is the start
        of many titles but names none of them. Only the given rows are scored, so a search can
        afford it on its top hits.
        """
        typed = _squash(normalise_title(query))
        scores = []
        for row in rows:
            i = self._position.get(row)
            if i is None or not typed:
                scores.append(0.0)
                continue
            scores.append(
                max(fuzz.ratio(typed, self._squashed[i]), fuzz.ratio(typed, self._names[i]))
            )
        return scores

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
