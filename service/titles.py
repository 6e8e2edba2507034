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


# Titles scored exactly per look-up; a larger corpus first narrows to this many candidates.
CANDIDATES = 1000
# Bits of a title's signatures: its letter pairs hashed into 256 bits, those of its head
# (fewer pairs) into 128: 48 bytes a title.
WHOLE_BITS = 256
HEAD_BITS = 128
# A title's head, the squashed characters a typed prefix is compared with: long enough for
# the short name and first words people type, short enough that few bits are set.
HEAD_CHARS = 24
# Titles whose signatures are built (and scanned) at a time: bounds the temporary arrays.
_CHUNK = 8192
# Titles compared with the typed text at a time in a look-up.
_SCAN_CHUNK = 1 << 16
# Squashed titles hold only these; "^" marks a title's start, so the pair of "^" and the
# first letter says how a title begins.
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz^"
_START = len(_ALPHABET) - 1
_CODE = np.full(256, _START, dtype=np.int64)
_CODE[np.frombuffer(_ALPHABET.encode(), dtype=np.uint8)] = np.arange(len(_ALPHABET))
# Each letter pair's bit: a fixed scramble, so similar pairs ("ab", "ac") fall apart.
_PAIR_BIT = np.random.default_rng(20240613).integers(0, WHOLE_BITS, len(_ALPHABET) ** 2)


class TitleMatcher:
    """Fuzzy title look-up over every titled paper of the index.

    A typed title is compared, with case, punctuation and spaces dropped ("one reason" and
    "AdaF2M2" should still find "OneReason" and "AdaF^2M^2"), with each title twice: whole
    (typos, a missing word) and cut to the typed length (a prefix such as "Trinity" or "long
    term intrest clock"); the better of the two is the score, 0-100. Token-set and partial
    scorers are avoided on purpose: they rate any title that shares "on the" highly.

    A server holds this for every title, so it keeps bytes, not Python strings: the titles as
    one UTF-8 blob, and per title two 256-bit signatures of its letter pairs (of the whole
    squashed title and of its head). A look-up compares the typed text's pairs with every
    signature in numpy (pairs shared, relative to the typed pairs for a prefix, to both for
    a whole title), and scores only the ``candidates`` best of each exactly: a typo changes
    two pairs, so the title meant stays far ahead of titles that merely share letters.
    Corpora of at most ``candidates`` titles are scored whole.
    """

    def __init__(self, titles: Sequence[tuple[int, str]], candidates: int = CANDIDATES) -> None:
        self._candidates = candidates
        rows = np.fromiter((row for row, _ in titles), dtype=np.int64, count=len(titles))
        self._rows = rows.astype(_offset_type(int(rows.max()) if len(rows) else 0))
        # Rows come ascending from the index; an order to search them is kept otherwise.
        ascending = bool(np.all(rows[1:] > rows[:-1]))
        self._by_row = None if ascending else np.argsort(rows, kind="stable")
        count = len(titles)
        lengths = (len(title.encode("utf-8")) for _, title in titles)
        offsets = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(np.fromiter(lengths, dtype=np.int64, count=count), out=offsets[1:])
        # Each array allocated once at its final size and filled a chunk at a time, so the
        # temporaries are a chunk's and the heap keeps no corpus's worth of them. The
        # signatures are stored word by word (a row of ``bits // 64`` words per title,
        # transposed), so a look-up works on contiguous columns.
        self._starts = offsets.astype(_offset_type(int(offsets[-1])))
        del offsets
        self._text = np.empty(int(self._starts[-1]), dtype=np.uint8)  # the titles, UTF-8
        self._whole = np.empty((WHOLE_BITS // 64, count), dtype=np.uint64)
        self._head = np.empty((HEAD_BITS // 64, count), dtype=np.uint64)
        self._whole_bits = np.empty(count, dtype=np.uint16)
        self._head_bits = np.empty(count, dtype=np.uint16)
        for start in range(0, count, _CHUNK):
            stop = min(start + _CHUNK, count)
            chunk = [title for _, title in titles[start:stop]]
            encoded = "".join(chunk).encode("utf-8")
            at = slice(int(self._starts[start]), int(self._starts[stop]))
            self._text[at] = np.frombuffer(encoded, dtype=np.uint8)
            squashed = [_squash(normalise_title(title)) for title in chunk]
            self._whole[:, start:stop] = _signatures(squashed, None, WHOLE_BITS).T
            self._head[:, start:stop] = _signatures(squashed, HEAD_CHARS, HEAD_BITS).T
            self._whole_bits[start:stop] = _shared(self._whole[:, start:stop], None)
            self._head_bits[start:stop] = _shared(self._head[:, start:stop], None)
            del chunk, encoded, squashed

    def __len__(self) -> int:
        return len(self._rows)

    def title(self, position: int) -> str:
        text = self._text[self._starts[position] : self._starts[position + 1]]
        return text.tobytes().decode("utf-8")

    def naming_scores(self, query: str, rows: Sequence[int]) -> list[float]:
        """How closely ``query`` is the whole title or the short name of each row's paper.

        Unlike ``closest`` this does not score prefixes: "large language models" is the start
        of many titles but names none of them. Only the given rows are scored, so a search can
        afford it on its top hits.
        """
        typed = _squash(normalise_title(query))
        scores = []
        for row in rows:
            position = self._position(int(row))
            if position is None or not typed:
                scores.append(0.0)
                continue
            title = self.title(position)
            name = _squash(normalise_title(title.partition(":")[0]))
            squashed = _squash(normalise_title(title))
            scores.append(max(fuzz.ratio(typed, squashed), fuzz.ratio(typed, name)))
        return scores

    def closest(self, typed: str, limit: int = 5) -> list[TitleCandidate]:
        query = normalise_title(typed)
        if not query or not len(self):
            return []
        typed_squashed = _squash(query)
        positions = self._candidate_positions(typed_squashed)
        normalised = [normalise_title(self.title(i)) for i in positions.tolist()]
        whole = process.cdist(
            [typed_squashed],
            [_squash(title) for title in normalised],
            scorer=fuzz.ratio,
            dtype=np.float32,
        )[0]
        prefixes = [_squash(_cut_after_word(title, len(query))) for title in normalised]
        prefix = process.cdist([typed_squashed], prefixes, scorer=fuzz.ratio, dtype=np.float32)[0]
        scores = np.maximum(whole, prefix).astype(np.float32)
        best = np.argsort(-scores, kind="stable")[:limit]
        return [
            TitleCandidate(
                int(self._rows[positions[i]]), self.title(positions[i]), round(float(scores[i]), 1)
            )
            for i in best
        ]

    def _candidate_positions(self, typed_squashed: str) -> np.ndarray:
        """Positions of the titles worth scoring exactly, ascending (so ties keep the
        corpus's order): every title of a small corpus, else the best by three estimates
        from the letter pairs shared with the typed text: of the typed head found in the
        title's head (a prefix; ties go to the head with fewest other pairs), of the typed
        text found anywhere in the title (a long prefix), and of both titles' pairs shared
        (a whole title)."""
        if len(self) <= self._candidates:
            return np.arange(len(self))
        typed = _signatures([typed_squashed], None, WHOLE_BITS)[0]
        typed_head = _signatures([typed_squashed], HEAD_CHARS, HEAD_BITS)[0]
        typed_bits = int(np.bitwise_count(typed).sum())
        typed_head_bits = int(np.bitwise_count(typed_head).sum())
        estimates = np.empty((3, len(self)), dtype=np.float32)
        for start in range(0, len(self), _SCAN_CHUNK):
            part = slice(start, start + _SCAN_CHUNK)
            in_head = _shared(self._head[:, part], typed_head)
            in_whole = _shared(self._whole[:, part], typed)
            extra = self._head_bits[part] - in_head
            estimates[0, part] = in_head / typed_head_bits - 1e-3 * extra
            estimates[1, part] = in_whole / typed_bits
            estimates[2, part] = 2 * in_whole / (typed_bits + self._whole_bits[part])
        share = max(self._candidates // 3, 1)
        chosen = np.argpartition(-estimates, share, axis=1)[:, :share]
        return np.unique(chosen)

    def _position(self, row: int) -> int | None:
        at = int(np.searchsorted(self._rows, row, sorter=self._by_row))
        position = at if self._by_row is None or at == len(self) else int(self._by_row[at])
        return position if at < len(self) and self._rows[position] == row else None


def _signatures(squashed: Sequence[str], head: int | None, bits: int) -> np.ndarray:
    """Per title, the set of its letter pairs (the first ``head`` characters' only, where
    given), "^" and the first letter included, hashed into ``bits`` bits: rows of
    ``bits // 64`` uint64."""
    marked = [b"^" + (text[:head] if head else text).encode("ascii") for text in squashed]
    lengths = np.fromiter(map(len, marked), dtype=np.int64, count=len(marked))
    codes = _CODE[np.frombuffer(b"".join(marked), dtype=np.uint8)]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    # A pair at every position but each title's last (whose next letter is the next title's).
    pair_at = np.ones(len(codes), dtype=bool)
    pair_at[starts[1:] - 1] = False
    first = np.flatnonzero(pair_at)
    pair_bits = _PAIR_BIT[codes[first] * len(_ALPHABET) + codes[first + 1]] % bits
    title_of = np.searchsorted(starts, first, side="right") - 1
    flags = np.zeros((len(marked), bits), dtype=bool)
    flags[title_of, pair_bits] = True
    return np.ascontiguousarray(np.packbits(flags, axis=1)).view(np.uint64)


def _shared(words: np.ndarray, typed: np.ndarray | None) -> np.ndarray:
    """Per title (a column of ``words``), the bits it shares with ``typed`` (all its bits
    where None)."""
    count = np.zeros(words.shape[1], dtype=np.uint16)
    for i, word in enumerate(words):
        count += np.bitwise_count(word if typed is None else word & typed[i])
    return count


def _offset_type(largest: int) -> type[np.integer]:
    return np.uint32 if largest < 2**32 else np.int64


def _squash(normalised: str) -> str:
    return normalised.replace(" ", "")


def _cut_after_word(title: str, length: int) -> str:
    """The title's first ``length`` characters, extended to the end of the word they stop in."""
    end = title.find(" ", length)
    return title if end < 0 else title[:end]
