"""Keyword relevance (BM25) over titles and abstracts, beside the dense vectors.

BM25 with an English Snowball stemmer was chosen over SQLite FTS5 by measurement on SciFact
train (the same quality, two orders of magnitude faster a query), and it scores every paper
at once, which filters and score fusion need. ``k1``/``b`` are the Lucene defaults; nothing
else tried on train did better. The scores are bm25s's ``"lucene"`` method, term for term (the
tests hold bm25s up as the oracle).

bm25s is no longer the store, for three reasons. It bakes idf and the average length into the
score it stores per (term, paper), so one segment's scores are wrong as soon as another segment
adds papers or a tombstone removes one; an index made of a base segment and small delta
segments must rank exactly as one index of the live papers would, so the statistics (document
count, document frequencies, average length) are computed at open time over the live papers
of every segment. It loads its matrix and a Python vocabulary dict into memory, which at a
million papers is far beyond what a serving process may hold (0.3 kB a paper); here every
array, the vocabulary included, is memory-mapped, and a term is found by bisection. And a
merge must not analyse any text again: raw term counts and lengths can be renumbered and
concatenated, baked scores cannot. bm25s still lends its English stopword list.

The same ``analyse`` turns documents, queries and highlight sentences into terms, so a word
that matched in the ranking is the word that is highlighted.
"""

from __future__ import annotations

import math
import mmap
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import compress, pairwise
from pathlib import Path
from typing import Final, TypeAlias

import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

K1 = 1.5
B = 0.75
# Past this share of the corpus in postings (1/DENSE_MERGE_SHARE), a query's lists are summed
# into one array over every paper rather than merged by sorting (see ``matches``).
DENSE_MERGE_SHARE = 16

_WORD = re.compile(r"(?u)\b\w\w+\b")
_WORD_CHAR = re.compile(r"\w")
_WORD_CHARS = re.compile(r"\w*")
_STOPWORDS = frozenset(STOPWORDS_EN)
_STEMMER = Stemmer.Stemmer("english")

# Postings are read and written this many at a time: merges and tombstone counts stream
# tens of millions of postings in bounded memory.
_CHUNK: Final = 1 << 20
# Texts analysed between two flushes of their postings into arrays while writing a segment.
_TEXTS_PER_BATCH: Final = 20_000


def analyse(text: str) -> list[str]:
    """Lower-cased, stemmed words of two or more characters, stopwords dropped."""
    words = [word for word in _WORD.findall(text.lower()) if word not in _STOPWORDS]
    stems: list[str] = _STEMMER.stemWords(words)
    return stems


class TermLocator:
    """Finds where the terms of one query occur in a text, for highlighting.

    Analysing every word of every hit's abstract costs milliseconds a query. Instead the text
    is searched for the start of each query term (a Snowball stem less its last letter is how
    its words begin: "studi" <- "studies", "us" <- "using"), and only the few words found
    are stemmed and compared.
    """

    def __init__(self, terms: frozenset[str]) -> None:
        self.terms = terms
        self._prefixes = sorted({term[:-1] if len(term) > 2 else term for term in terms})

    def occurrences(self, text: str) -> list[tuple[int, int, str]]:
        """``(start, end, term)`` of every word of ``text`` that ``analyse`` turns into a query
        term: ``text[start:end]`` is the word as written."""
        lowered = text.lower()
        if len(lowered) != len(text):  # a character whose lower case is longer: offsets move
            lowered = "".join(char if len(char.lower()) != 1 else char.lower() for char in text)
        words: dict[int, str] = {}
        for prefix in self._prefixes:
            start = lowered.find(prefix)
            while start >= 0:
                if start == 0 or not _WORD_CHAR.match(lowered, start - 1):
                    word = _WORD_CHARS.match(lowered, start)
                    assert word is not None  # \w* matches anywhere, if only the empty string
                    words[start] = word.group()
                start = lowered.find(prefix, start + 1)
        found = [(offset, word) for offset, word in words.items() if len(word) > 1]
        stems = _STEMMER.stemWords([word for _, word in found])
        return sorted(
            (offset, offset + len(word), stem)
            for (offset, word), stem in zip(found, stems, strict=True)
            if stem in self.terms and word not in _STOPWORDS
        )


class SegmentPostings:
    """One segment's BM25 postings on disk, memory-mapped when opened.

    Raw term counts and lengths, not scores: the statistics a score needs belong to the whole
    index of live papers, which a segment cannot know (see the module's docstring). Terms are
    sorted by their UTF-8 bytes (which is code point order), so the vocabulary is two flat
    arrays searched by bisection rather than a dict built at every start.
    """

    TERMS: Final = "terms.bin"  # the UTF-8 terms, concatenated in sorted order
    TERM_OFFSETS: Final = "term_offsets.npy"  # int64, terms + 1: term i is bytes [o[i], o[i+1])
    INDPTR: Final = "indptr.npy"  # int64, terms + 1: term i's postings are [p[i], p[i+1])
    DOCS: Final = "docs.npy"  # int32 local rows, ascending within a term
    COUNTS: Final = "counts.npy"  # uint16 (int32 where a count needs it): the term's count
    LENGTHS: Final = "lengths.npy"  # int32 a row: how many terms analyse gave its text
    FILES: Final = (TERMS, TERM_OFFSETS, INDPTR, DOCS, COUNTS, LENGTHS)

    def __init__(
        self,
        term_bytes: mmap.mmap | bytes,
        term_offsets: np.ndarray,
        indptr: np.ndarray,
        docs: np.ndarray,
        counts: np.ndarray,
        lengths: np.ndarray,
    ) -> None:
        self._term_bytes = term_bytes
        self.term_offsets = term_offsets
        self.indptr = indptr
        self.docs = docs
        self.counts = counts
        self.lengths = lengths
        self.size = len(lengths)
        self.term_count = len(indptr) - 1

    @staticmethod
    def write(folder: Path, texts: Sequence[str]) -> None:
        """Analyse ``texts`` (row ``i`` is ``texts[i]``) and write their postings to ``folder``.

        Texts are analysed in batches whose postings are kept as compact arrays (term ids seen
        in first-use order, rows, counts), so a corpus's millions of word strings never live
        at once; the terms are sorted once all are known and each batch is placed through the
        same sink a merge uses. A text without an indexable word gets length 0 and no postings.
        """
        ids: dict[str, int] = {}
        batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        lengths = np.zeros(len(texts), dtype=np.int32)
        for start in range(0, len(texts), _TEXTS_PER_BATCH):
            batch_terms: list[int] = []
            batch_lengths = []
            for text in texts[start : start + _TEXTS_PER_BATCH]:
                terms = analyse(text)
                batch_lengths.append(len(terms))
                batch_terms.extend([ids.setdefault(term, len(ids)) for term in terms])
            lengths[start : start + len(batch_lengths)] = batch_lengths
            term_ids = np.asarray(batch_terms, dtype=np.int64)
            rows = np.repeat(np.arange(len(batch_lengths), dtype=np.int64), batch_lengths)
            # One key per (term, row): unique counts the postings and sorts them by both.
            keys, counts = np.unique(term_ids * len(batch_lengths) + rows, return_counts=True)
            batches.append(
                (
                    (keys // len(batch_lengths)).astype(np.int32),
                    (keys % len(batch_lengths) + start).astype(np.int32),
                    counts,
                )
            )
        vocabulary = sorted(ids)
        rank = np.empty(len(ids), dtype=np.int64)
        rank[[ids[term] for term in vocabulary]] = np.arange(len(vocabulary))
        frequencies = np.zeros(len(vocabulary), dtype=np.int64)
        for term_ids, _, _ in batches:
            frequencies += np.bincount(rank[term_ids], minlength=len(vocabulary))
        largest = max((int(counts.max()) for _, _, counts in batches if len(counts)), default=0)
        with _new_folder(folder) as building:
            sink = _PostingsSink(building, frequencies, _count_dtype(largest))
            for term_ids, rows, counts in batches:
                ranked = rank[term_ids]
                order = np.argsort(ranked, kind="stable")  # rows stay ascending within a term
                ranked = ranked[order]
                first = np.flatnonzero(np.diff(ranked, prepend=-1))  # where each term's run starts
                runs = np.diff(np.append(first, len(ranked)))
                sink.add(ranked[first], runs, rows[order], counts[order])
            sink.close()
            _write_vocabulary(building, vocabulary)
            _save(building / SegmentPostings.LENGTHS, lengths)

    @classmethod
    def open(cls, folder: Path) -> SegmentPostings:
        """Map a segment's files; ``ValueError`` when one is missing or they disagree.

        Only the arrays' headers, ends and lengths are checked: reading every posting to
        validate it would undo what memory-mapping saves at start-up. The index's manifest
        checks each file's size and checksum.
        """
        missing = [name for name in cls.FILES if not (folder / name).is_file()]
        if missing:
            raise ValueError(f"{folder}: BM25 segment lacks {', '.join(missing)}")
        term_offsets = _load(folder / cls.TERM_OFFSETS, (np.int64,))
        indptr = _load(folder / cls.INDPTR, (np.int64,))
        docs = _load(folder / cls.DOCS, (np.int32,))
        counts = _load(folder / cls.COUNTS, (np.uint16, np.int32))
        lengths = _load(folder / cls.LENGTHS, (np.int32,))
        term_bytes = _map_bytes(folder / cls.TERMS)
        problems = []
        if len(term_offsets) < 1 or term_offsets[0] != 0 or term_offsets[-1] != len(term_bytes):
            problems.append(f"term offsets do not span the {len(term_bytes)} vocabulary bytes")
        if len(indptr) != len(term_offsets):
            problems.append(f"{len(indptr) - 1} posting lists for {len(term_offsets) - 1} terms")
        if len(indptr) < 1 or indptr[0] != 0 or indptr[-1] != len(docs):
            problems.append(f"posting pointers do not span the {len(docs)} postings")
        if len(counts) != len(docs):
            problems.append(f"{len(counts)} term counts for {len(docs)} postings")
        if problems:
            raise ValueError(f"{folder}: inconsistent BM25 segment: {'; '.join(problems)}")
        return cls(term_bytes, term_offsets, indptr, docs, counts, lengths)

    def term(self, term_id: int) -> str:
        start, end = self.term_offsets[term_id : term_id + 2]
        return self._term_bytes[int(start) : int(end)].decode("utf-8", "surrogatepass")

    def terms(self) -> list[str]:
        """The whole vocabulary, in term id order (for merges, never for serving)."""
        data = bytes(self._term_bytes)
        bounds = self.term_offsets.tolist()
        return [data[start:end].decode("utf-8", "surrogatepass") for start, end in pairwise(bounds)]

    def term_id(self, term: str) -> int | None:
        """The term's id, by bisection over the sorted vocabulary; None where it is absent."""
        wanted = term.encode("utf-8", "surrogatepass")
        offsets, data = self.term_offsets, self._term_bytes
        low, high = 0, self.term_count
        while low < high:
            middle = (low + high) // 2
            found = data[int(offsets[middle]) : int(offsets[middle + 1])]
            if found < wanted:
                low = middle + 1
            elif found > wanted:
                high = middle
            else:
                return middle
        return None

    def postings(self, term_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(local rows ascending, counts)`` of one term: views of the mapped files."""
        start, end = int(self.indptr[term_id]), int(self.indptr[term_id + 1])
        return self.docs[start:end], self.counts[start:end]


def bm25_idf(df: int, size: int) -> float:
    """Lucene's idf of a term ``df`` of ``size`` papers hold; 0 for a term none holds."""
    if df == 0:
        return 0.0
    return math.log(1 + (size - df + 0.5) / (df + 0.5))


@dataclass(frozen=True)
class CorpusStats:
    """What a BM25 score needs of the whole corpus besides a paper's own postings: its
    size, its texts' total length and the document frequency of each query term.

    A shard of a larger index (``indexing.shards``) scores its own postings with the whole
    index's statistics, summed over the shards, so that its scores are the ones the whole
    index would give; scored with its own, a term rare in one shard would weigh more there.
    """

    size: int
    length_sum: int
    dfs: Mapping[str, int]  # of the terms asked about; a term left out is held by none

    @property
    def average_length(self) -> float:
        # All texts empty: no posting exists, so the average is never used.
        return self.length_sum / self.size if self.length_sum else 1.0

    def idf(self, term: str) -> float:
        return bm25_idf(self.dfs.get(term, 0), self.size)

    @classmethod
    def total(cls, parts: Iterable[CorpusStats]) -> CorpusStats:
        """The statistics of several disjoint parts of a corpus taken together."""
        parts = list(parts)
        dfs: Counter[str] = Counter()
        for part in parts:
            dfs.update(part.dfs)
        return cls(
            sum(part.size for part in parts), sum(part.length_sum for part in parts), dict(dfs)
        )


# Segments in global order, each with its live local rows ascending (None: every row live).
Parts: TypeAlias = Sequence[tuple[SegmentPostings, np.ndarray | None]]


class _Part:
    """A segment with its live rows, placed in the global numbering of live papers."""

    def __init__(self, segment: SegmentPostings, live: np.ndarray | None, offset: int) -> None:
        self.segment = segment
        self.offset = offset  # the global row of the part's first live row
        self.alive: np.ndarray | None = None  # a flag per local row, only where some are dead
        self.rank: np.ndarray | None = None  # local row -> global row - offset (live rows)
        self.live_df: np.ndarray | None = None  # postings of live rows a term, where some dead
        self.live: np.ndarray | None = None  # live row -> local row, where some are dead
        if live is None:
            self.live_count = segment.size
            self.length_sum = int(segment.lengths.sum(dtype=np.int64))
            return
        live = np.asarray(live)
        if live.ndim != 1 or (live.size and not np.issubdtype(live.dtype, np.integer)):
            raise ValueError(f"live rows must be a 1-D integer array, not {live.dtype}{live.shape}")
        if live.size and (live[0] < 0 or live[-1] >= segment.size or np.any(live[1:] <= live[:-1])):
            raise ValueError(
                f"live rows must ascend strictly within 0..{segment.size - 1} (the segment's rows)"
            )
        self.live_count = len(live)
        self.length_sum = int(segment.lengths[live].sum(dtype=np.int64))
        if self.live_count == segment.size:
            return
        self.live = live
        self.alive = np.zeros(segment.size, dtype=bool)
        self.alive[live] = True
        self.rank = (np.cumsum(self.alive, dtype=np.int32) - 1).astype(np.int32)
        dead = np.zeros(segment.term_count, dtype=np.int64)
        for start, docs in _chunks(segment.docs):
            positions = np.flatnonzero(~self.alive[docs]) + start
            terms = np.searchsorted(segment.indptr, positions, side="right") - 1
            dead += np.bincount(terms, minlength=segment.term_count)
        self.live_df = (np.diff(segment.indptr) - dead).astype(np.int32)

    def df(self, term_id: int) -> int:
        if self.live_df is not None:
            return int(self.live_df[term_id])
        return int(self.segment.indptr[term_id + 1] - self.segment.indptr[term_id])

    def live_postings(self, term_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(global rows, counts, lengths)`` of the term's postings in live rows."""
        docs, counts = self.segment.postings(term_id)
        if self.alive is not None and self.rank is not None:
            keep = self.alive[docs]
            docs, counts = docs[keep], counts[keep]
            rows = self.rank[docs].astype(np.int64) + self.offset
        else:
            rows = docs.astype(np.int64) + self.offset
        return rows, counts, self.segment.lengths[docs]

    def lengths_at(self, rows: np.ndarray) -> np.ndarray:
        """The lengths of global ``rows``, all of them this part's."""
        local = rows - self.offset
        lengths: np.ndarray = self.segment.lengths[local if self.live is None else self.live[local]]
        return lengths


def _place(parts: Parts) -> list[_Part]:
    """Number the live rows of ``parts`` consecutively, in order: the one global numbering
    that search, scores and merges share."""
    placed = []
    offset = 0
    for segment, live in parts:
        part = _Part(segment, live, offset)
        placed.append(part)
        offset += part.live_count
    return placed


class LexicalIndex:
    """BM25 over the live documents of several segments, with statistics of the live
    documents only, so that it ranks as one index built from the live papers would."""

    def __init__(self, parts: Parts) -> None:
        self._parts = _place(parts)
        self.size = sum(part.live_count for part in self._parts)
        self.length_sum = sum(part.length_sum for part in self._parts)

    @classmethod
    def build(cls, texts: Sequence[str], folder: Path) -> LexicalIndex:
        """One all-live segment of ``texts``, written to ``folder`` and opened."""
        SegmentPostings.write(folder, texts)
        return cls([(SegmentPostings.open(folder), None)])

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """BM25 of every paper for the query terms (zeros where a paper has none of them)."""
        scores = np.zeros(self.size, dtype=np.float32)
        rows, matched = self.matches(terms)
        scores[rows] = matched
        return scores

    def matches(
        self, terms: Sequence[str], corpus: CorpusStats | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, scores)`` of the papers holding at least one query term, rows ascending.

        Only the postings of the query's terms are read, so the cost follows how many papers
        use those words, not the size of the corpus. A term given twice weighs twice.
        ``corpus``: the statistics to score with, where this index is a shard of a larger
        one (its ``dfs`` must hold every query term); None: this index's own.
        """
        counts_of = Counter(terms)
        located = {term: self._locate(term) for term in counts_of}
        if corpus is None:
            corpus = CorpusStats(
                self.size,
                self.length_sum,
                {term: sum(p.df(i) for p, i in found) for term, found in located.items()},
            )
        found_rows: list[np.ndarray] = []
        found_weights: list[np.ndarray] = []
        for term, times in counts_of.items():
            idf = corpus.idf(term)
            for part, term_id in located[term]:
                rows, counts, lengths = part.live_postings(term_id)
                # times * idf * tf / (tf + K1 * (1 - B + B * length / average)), in float32
                # and in place: a common word has postings in most of a million papers.
                tf = counts.astype(np.float32)
                norm = lengths.astype(np.float32)
                norm *= np.float32(K1 * B / corpus.average_length)
                norm += np.float32(K1 * (1 - B))
                norm += tf
                np.divide(tf, norm, out=tf)
                tf *= np.float32(times * idf)
                found_rows.append(rows)
                found_weights.append(tf)
        if not found_rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        # The corpus's postings of these terms decide how they are summed, not this index's:
        # the two ways round the last bit of a paper holding several terms differently, and
        # a shard must score as the whole index would.
        postings = sum(corpus.dfs.get(term, 0) for term in counts_of)
        if len(found_rows) > 1 and postings * DENSE_MERGE_SHARE > corpus.size:
            # Common words: adding each list into one array over every paper costs less than
            # sorting a corpus's worth of postings (a term's rows are distinct, so ``+=`` on
            # fancy indexes adds each once). A paper holding a term scores above zero.
            summed = np.zeros(self.size, dtype=np.float32)
            for rows, weights in zip(found_rows, found_weights, strict=True):
                summed[rows] += weights
            held = np.flatnonzero(summed)
            return held, summed[held]
        rows, weights = np.concatenate(found_rows), np.concatenate(found_weights)
        if len(found_rows) > 1 and len(rows):
            # Each list ascends: a stable sort merges runs (timsort), cheaper than np.unique.
            order = np.argsort(rows, kind="stable")
            rows, weights = rows[order], weights[order]
            first = np.concatenate(([True], rows[1:] != rows[:-1]))
            weights = np.bincount(np.cumsum(first) - 1, weights=weights)
            rows = rows[first]
        return rows, weights.astype(np.float32)

    def lengths_at(self, rows: np.ndarray) -> np.ndarray:
        """How many terms each of ``rows`` holds: the length BM25 normalises by."""
        lengths = np.zeros(len(rows), dtype=np.int32)
        ends = np.array([part.offset + part.live_count for part in self._parts], dtype=np.int64)
        part_of = np.searchsorted(ends, rows, side="right")
        for number, part in enumerate(self._parts):
            mine = part_of == number
            if mine.any():
                lengths[mine] = part.lengths_at(rows[mine])
        return lengths

    def holding(self, terms: Sequence[str], rows: np.ndarray) -> np.ndarray:
        """Whether each of ``rows`` holds each of ``terms``: ``(len(terms), len(rows))``
        booleans, read from the terms' postings (a few hundred candidates, not the corpus)."""
        held = np.zeros((len(terms), len(rows)), dtype=bool)
        for number, term in enumerate(terms):
            for part, term_id in self._locate(term):
                term_rows = part.live_postings(term_id)[0]
                if len(term_rows):
                    at = np.searchsorted(term_rows, rows).clip(max=len(term_rows) - 1)
                    held[number] |= term_rows[at] == rows
        return held

    def idf(self, term: str) -> float:
        """Lucene's idf over the live papers, the weight a matching term gets when choosing
        highlight sentences; 0 for a term no live paper holds. Computed per call (a few are
        asked per search) rather than for the whole vocabulary at start-up."""
        return self.idfs([term])[term]

    def idfs(self, terms: Iterable[str]) -> dict[str, float]:
        """``idf`` of several terms at once (a pasted text's hundreds: one question to each
        shard of a sharded index, not hundreds)."""
        return {term: bm25_idf(df, self.size) for term, df in self.dfs(terms).items()}

    def dfs(self, terms: Iterable[str]) -> dict[str, int]:
        """How many live papers hold each of ``terms``."""
        return {
            term: sum(part.df(term_id) for part, term_id in self._locate(term))
            for term in dict.fromkeys(terms)
        }

    def stats(self, terms: Iterable[str] = ()) -> CorpusStats:
        """This index's BM25 statistics, with the document frequencies of ``terms``."""
        return CorpusStats(self.size, self.length_sum, self.dfs(terms))

    def _locate(self, term: str) -> list[tuple[_Part, int]]:
        located = []
        for part in self._parts:
            if part.live_count and (term_id := part.segment.term_id(term)) is not None:
                located.append((part, term_id))
        return located


def merge_postings(parts: Parts, folder: Path) -> None:
    """Write to ``folder`` one segment of the live rows of ``parts``, numbered as
    ``LexicalIndex(parts)`` numbers them, without analysing any text again.

    Each segment's term ids are mapped into the sorted union of the vocabularies (terms no
    live row holds are dropped), and its live postings are streamed, a chunk at a time, into
    their places in output arrays that are memory-mapped files: within a term, earlier
    parts hold lower rows, so each chunk lands after what earlier chunks placed for the
    same term and nothing is ever sorted. Memory beyond the output's page cache is a chunk,
    a few arrays a term and an int32 a row.
    """
    placed = _place(parts)
    vocabularies = [part.segment.terms() for part in placed]
    union = sorted(set().union(*vocabularies))
    position = {term: index for index, term in enumerate(union)}
    mappings = [
        np.fromiter((position[term] for term in vocabulary), np.int64, len(vocabulary))
        for vocabulary in vocabularies
    ]
    del position
    frequencies = np.zeros(len(union), dtype=np.int64)
    for part, mapping in zip(placed, mappings, strict=True):
        live_df = part.live_df if part.live_df is not None else np.diff(part.segment.indptr)
        if part.live_count == 0:
            live_df = np.zeros(part.segment.term_count, dtype=np.int64)
        frequencies[mapping] += live_df
    kept = frequencies > 0
    renumber = np.cumsum(kept) - 1
    wide = any(part.segment.counts.dtype != np.uint16 for part in placed)
    with _new_folder(folder) as building:
        sink = _PostingsSink(building, frequencies[kept], np.dtype(np.int32 if wide else np.uint16))
        for part, mapping in zip(placed, mappings, strict=True):
            if part.live_count == 0:
                continue
            indptr = part.segment.indptr
            for start, docs in _chunks(part.segment.docs):
                end = start + len(docs)
                # The terms whose postings this chunk holds, first to last, and how many each.
                first = int(np.searchsorted(indptr, start, "right")) - 1
                last = int(np.searchsorted(indptr, end - 1, "right")) - 1
                bounds = np.clip(indptr[first : last + 2], start, end) - start
                counts = part.segment.counts[start:end]
                if part.alive is not None and part.rank is not None:
                    keep = part.alive[docs]
                    kept_before = np.concatenate(([0], np.cumsum(keep)))
                    runs = np.diff(kept_before[bounds])
                    docs, counts = part.rank[docs[keep]], counts[keep]
                else:
                    runs = np.diff(bounds)
                terms = renumber[mapping[first : last + 1]]
                sink.add(terms, runs, docs + np.int32(part.offset), counts)
        sink.close()
        _write_vocabulary(building, list(compress(union, kept.tolist())))
        lengths = [
            part.segment.lengths if part.alive is None else part.segment.lengths[part.alive]
            for part in placed
        ]
        _save(building / SegmentPostings.LENGTHS, np.concatenate([np.zeros(0, np.int32), *lengths]))


class _PostingsSink:
    """Places postings into a segment's ``docs`` and ``counts`` files, term by term.

    Each ``add`` gives postings in runs of one term each (terms ascending, rows ascending
    within a run), every row above the rows earlier calls gave for the same term; a cursor a
    term says where its next posting goes, so the arrays come out sorted by (term, row)
    without a sort over all of them.
    """

    def __init__(self, folder: Path, frequencies: np.ndarray, count_dtype: np.dtype) -> None:
        self._folder = folder
        indptr = np.zeros(len(frequencies) + 1, dtype=np.int64)
        np.cumsum(frequencies, out=indptr[1:])
        _save(folder / SegmentPostings.INDPTR, indptr)
        total = int(indptr[-1])
        self._cursor = indptr[:-1].copy()
        self._docs = _output(folder / SegmentPostings.DOCS, np.dtype(np.int32), total)
        self._counts = _output(folder / SegmentPostings.COUNTS, count_dtype, total)

    def add(
        self, terms: np.ndarray, runs: np.ndarray, docs: np.ndarray, counts: np.ndarray
    ) -> None:
        """``runs[i]`` postings of ``terms[i]``, one run after another in ``docs``/``counts``;
        a run may be empty (a term whose postings in this chunk are all dead)."""
        held = runs > 0
        terms, runs = terms[held], runs[held]  # distinct terms: += below adds once each
        if len(terms) == 0:
            return
        run_starts = np.cumsum(runs) - runs
        places = np.arange(len(docs)) + np.repeat(self._cursor[terms] - run_starts, runs)
        self._docs[places] = docs
        self._counts[places] = counts
        self._cursor[terms] += runs

    def close(self) -> None:
        for array in (self._docs, self._counts):
            if isinstance(array, np.memmap):
                array.flush()
        del self._docs, self._counts


def _count_dtype(largest: int) -> np.dtype:
    return np.dtype(np.uint16 if largest <= np.iinfo(np.uint16).max else np.int32)


def _chunks(docs: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, len(docs), _CHUNK):
        yield start, np.asarray(docs[start : start + _CHUNK])


def _write_vocabulary(folder: Path, vocabulary: Sequence[str]) -> None:
    encoded = [term.encode("utf-8", "surrogatepass") for term in vocabulary]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(term) for term in encoded], out=offsets[1:])
    (folder / SegmentPostings.TERMS).write_bytes(b"".join(encoded))
    _save(folder / SegmentPostings.TERM_OFFSETS, offsets)


def _output(path: Path, dtype: np.dtype, length: int) -> np.ndarray:
    """A new .npy file mapped for writing; a plain array where there is nothing to map."""
    if length == 0:
        empty = np.zeros(0, dtype=dtype)
        _save(path, empty)
        return empty
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(length,))


def _save(path: Path, array: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(array), allow_pickle=False)


def _load(path: Path, dtypes: tuple[type[np.generic], ...]) -> np.ndarray:
    try:
        array: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"{path}: not a readable array: {error}") from error
    if array.ndim != 1 or array.dtype not in [np.dtype(dtype) for dtype in dtypes]:
        wanted = " or ".join(np.dtype(dtype).name for dtype in dtypes)
        raise ValueError(f"{path}: expected a 1-D {wanted} array, found {array.dtype}{array.shape}")
    return np.asarray(array)  # a plain view of the map: no np.memmap overhead an access


def _map_bytes(path: Path) -> mmap.mmap | bytes:
    with path.open("rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            return b""  # an empty file cannot be mapped
        return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)


@contextmanager
def _new_folder(folder: Path) -> Iterator[Path]:
    """A hidden sibling to write into, renamed to ``folder`` once complete (its files synced),
    so no reader ever sees half a segment. ``folder`` may exist only as an empty folder."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(f"{folder} exists and is not empty: a segment is never rewritten")
    building = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    # mkdtemp makes it private (0700); an index is read by whoever serves it, as its other
    # folders are: the mode a plain mkdir gives under the current umask.
    umask = os.umask(0)
    os.umask(umask)
    building.chmod(0o777 & ~umask)
    try:
        yield building
        for path in building.iterdir():
            with path.open("rb") as file:
                os.fsync(file.fileno())
        if folder.exists():
            folder.rmdir()
        building.rename(folder)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
