"""Find a paper from its title as a person types it: any case, no punctuation, typos, a prefix."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from indexing.records import normalise_title

# An arXiv identifier, new style (YYMM.NNNN, five digits since 2015) or old style
# (archive/YYMMNNN, the archive sometimes written with its subject class, math.GT/0309136),
# with an optional version; alone, after "arXiv:", or in an arxiv.org address
# (abs/pdf/html, with or without scheme, "www." or "export.", ".pdf", a query or fragment).
_ARXIV_ID = re.compile(
    r"""
    (?:arxiv:\s*
      |(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/
    )?
    (?P<id>
        (?P<new>\d{2}(?P<new_month>\d{2})\.\d{4,5})
      | (?P<archive>[a-z]+(?:-[a-z]+)?)(?:\.[a-z]{2})?/(?P<old>\d{2}(?P<old_month>\d{2})\d{3})
    )
    (?:v\d+)?
    (?:\.pdf)?/?(?:[?#]\S*)?
    """,
    re.IGNORECASE | re.VERBOSE,
)


def typed_arxiv_id(text: str) -> str | None:
    """The arXiv id (without version) when ``text`` is an arXiv id or address, else None.

    People paste ``arXiv:2502.09375v2`` or ``https://arxiv.org/pdf/2502.09375v1.pdf`` where a
    title is asked for; the paper is then found by its id, not by fuzzy title matching
    (which would match digits against titles). The id comes back as the corpus stores it:
    no version, an old-style id as ``archive/YYMMNNN`` (``cs/0112017``: a subject class such
    as ``math.GT/`` is not part of the id). What no arXiv id can be (month 13, five digits
    before 2015) is left to the title search.
    """
    match = _ARXIV_ID.fullmatch(text.strip())
    if match is None:
        return None
    month = int(match["new_month"] or match["old_month"])
    if not 1 <= month <= 12:
        return None
    new = match["new"]
    if new:  # four digits after the dot until 2014, five since
        return str(new) if (len(new) == 10) == (int(new[:2]) >= 15) else None
    return f"{match['archive'].lower()}/{match['old']}"


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
