"""Find a paper from its title as a person types it: any case, no punctuation, typos, a prefix."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from indexing.records import normalise_title
from indexing.row_space import RowSpace
from indexing.title_index import (
    HEAD_BITS,
    HEAD_CHARS,
    WHOLE_BITS,
    TitleIndex,
    shared_bits,
    signatures,
    squash,
)

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


# Titles scored exactly per look-up; a larger corpus first narrows to this many candidates.
CANDIDATES = 1000
# Titles compared with the typed text at a time in a look-up.
_SCAN_CHUNK = 1 << 16


class TitleMatcher:
    """Fuzzy title look-up over every titled paper of the index.

    A typed title is compared, with case, punctuation and spaces dropped ("one reason" and
    "AdaF2M2" should still find "OneReason" and "AdaF^2M^2"), with each title twice: whole
    (typos, a missing word) and cut to the typed length (a prefix such as "Trinity" or "long
    term intrest clock"); the better of the two is the score, 0-100. Token-set and partial
    scorers are avoided on purpose: they rate any title that shares "on the" highly.

    What it reads per title is each segment's title files (``indexing.title_index``),
    memory-mapped: the titles as one UTF-8 blob, and per title two signatures of its letter
    pairs (of the whole squashed title and of its head). A look-up compares the typed text's
    pairs with every signature in numpy (pairs shared, relative to the typed pairs for a
    prefix, to both for a whole title), and scores only the ``candidates`` best of each
    exactly: a typo changes two pairs, so the title meant stays far ahead of titles that
    merely share letters. Corpora of at most ``candidates`` titles are scored whole. A
    title whose paper was removed since its segment was written is never a candidate.

    Titles are numbered across the segments in order ("positions"), so positions ascend
    with rows, and ties keep the corpus's order.
    """

    def __init__(
        self, parts: Sequence[TitleIndex], rows: RowSpace, candidates: int = CANDIDATES
    ) -> None:
        if len(parts) != len(rows.live):
            raise ValueError("one title index per segment is needed")
        self._candidates = candidates
        self._parts = list(parts)
        self._row_starts = rows.starts
        self._ends = np.cumsum([len(part) for part in parts], dtype=np.int64)
        self._firsts = self._ends - [len(part) for part in parts]
        # The dead titles' positions: few (a merge drops them).
        self._dead = np.concatenate(
            [
                np.zeros(0, np.int64),
                *(part.dead + first for part, first in zip(parts, self._firsts, strict=True)),
            ]
        )
        self._count = int(self._ends[-1]) if len(parts) else 0

    def __len__(self) -> int:
        return self._count - len(self._dead)

    def title(self, position: int) -> str:
        part, entry = self._entry(position)
        return self._parts[part].title(entry)

    def titles_of_rows(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        """Each row's title, "" where its paper has none: read from the mapped title data,
        cheaper than the paper records (learned fusion reads a hundred a search)."""
        rows = np.asarray(rows, dtype=np.int64)
        titles = [""] * len(rows)
        parts = np.searchsorted(self._row_starts, rows, side="right") - 1
        for part in np.unique(parts).tolist():
            if not 0 <= part < len(self._parts):
                continue  # a row outside the index has no title
            mine = np.flatnonzero(parts == part)
            index = self._parts[part]
            entries = index.entries_of(rows[mine] - int(self._row_starts[part]))
            for position, entry in zip(mine.tolist(), entries.tolist(), strict=True):
                if entry >= 0:
                    titles[position] = index.title(entry)
        return titles

    def naming_scores(self, query: str, rows: Sequence[int]) -> list[float]:
        """How closely ``query`` is the whole title or the short name of each row's paper.

        Unlike ``closest`` this does not score prefixes: "large language models" is the start
        of many titles but names none of them. Only the given rows are scored, so a search can
        afford it on its top hits.
        """
        typed = squash(normalise_title(query))
        scores = []
        for title in self.titles_of_rows(rows):
            if not title or not typed:
                scores.append(0.0)
                continue
            name = squash(normalise_title(title.partition(":")[0]))
            squashed = squash(normalise_title(title))
            scores.append(max(fuzz.ratio(typed, squashed), fuzz.ratio(typed, name)))
        return scores

    def closest(self, typed: str, limit: int = 5) -> list[TitleCandidate]:
        query = normalise_title(typed)
        if not query or not len(self):
            return []
        typed_squashed = squash(query)
        positions = self._candidate_positions(typed_squashed).tolist()
        titles = self._titles(positions)
        normalised = [normalise_title(title) for title in titles]
        whole = process.cdist(
            [typed_squashed],
            [squash(title) for title in normalised],
            scorer=fuzz.ratio,
            dtype=np.float32,
        )[0]
        prefixes = [squash(_cut_after_word(title, len(query))) for title in normalised]
        prefix = process.cdist([typed_squashed], prefixes, scorer=fuzz.ratio, dtype=np.float32)[0]
        scores = np.maximum(whole, prefix).astype(np.float32)
        best = np.argsort(-scores, kind="stable")[:limit]
        return [
            TitleCandidate(self._row(positions[i]), titles[i], round(float(scores[i]), 1))
            for i in best
        ]

    def _candidate_positions(self, typed_squashed: str) -> np.ndarray:
        """Positions of the live titles worth scoring exactly, ascending (so ties keep the
        corpus's order): every title of a small corpus, else the best by three estimates
        from the letter pairs shared with the typed text: of the typed head found in the
        title's head (a prefix; ties go to the head with fewest other pairs), of the typed
        text found anywhere in the title (a long prefix), and of both titles' pairs shared
        (a whole title)."""
        if len(self) <= self._candidates:
            return np.setdiff1d(np.arange(self._count), self._dead)
        typed = signatures([typed_squashed], None, WHOLE_BITS)[0]
        typed_head = signatures([typed_squashed], HEAD_CHARS, HEAD_BITS)[0]
        typed_bits = int(np.bitwise_count(typed).sum())
        typed_head_bits = int(np.bitwise_count(typed_head).sum())
        estimates = np.empty((3, self._count), dtype=np.float32)
        for part, first in zip(self._parts, self._firsts.tolist(), strict=True):
            for start in range(0, len(part), _SCAN_CHUNK):
                local = slice(start, start + _SCAN_CHUNK)
                span = slice(first + start, first + min(start + _SCAN_CHUNK, len(part)))
                in_head = shared_bits(part.head[:, local], typed_head)
                in_whole = shared_bits(part.whole[:, local], typed)
                extra = part.head_bits[local] - in_head
                estimates[0, span] = in_head / typed_head_bits - 1e-3 * extra
                estimates[1, span] = in_whole / typed_bits
                estimates[2, span] = 2 * in_whole / (typed_bits + part.whole_bits[local])
        estimates[:, self._dead] = -np.inf
        share = max(self._candidates // 3, 1)
        chosen = np.argpartition(-estimates, share, axis=1)[:, :share]
        return np.setdiff1d(np.unique(chosen), self._dead)

    def _titles(self, positions: list[int]) -> list[str]:
        """The titles at ``positions`` (ascending), read a segment at a time."""
        found: list[str] = []
        parts = np.searchsorted(self._ends, positions, side="right")
        for part in np.unique(parts).tolist():
            index = self._parts[part]
            entries = np.asarray(positions, dtype=np.int64)[parts == part] - self._firsts[part]
            starts = index.starts[entries].tolist()
            ends = index.starts[entries + 1].tolist()
            text = index.text
            found += [
                text[start:end].tobytes().decode() for start, end in zip(starts, ends, strict=True)
            ]
        return found

    def _entry(self, position: int) -> tuple[int, int]:
        part = int(np.searchsorted(self._ends, position, side="right"))
        return part, position - int(self._firsts[part])

    def _row(self, position: int) -> int:
        part, entry = self._entry(position)
        local = self._parts[part].positions(np.array([entry]))
        return int(local[0]) + int(self._row_starts[part])


def _cut_after_word(title: str, length: int) -> str:
    """The title's first ``length`` characters, extended to the end of the word they stop in."""
    end = title.find(" ", length)
    return title if end < 0 else title[:end]
