"""Keyword relevance (BM25) over titles and abstracts, beside the dense vectors.

bm25s with an English Snowball stemmer was chosen over SQLite FTS5 by measurement on SciFact
train (the same quality, two orders of magnitude faster a query), and it scores every paper
at once, which filters and score fusion need. ``k1``/``b`` are the
Lucene defaults; nothing else tried on train did better.

The same ``analyse`` turns documents, queries and highlight sentences into terms, so a word
that matched in the ranking is the word that is highlighted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

K1 = 1.5
B = 0.75

_WORD = re.compile(r"(?u)\b\w\w+\b")
_WORD_CHAR = re.compile(r"\w")
_WORD_CHARS = re.compile(r"\w*")
_STOPWORDS = frozenset(STOPWORDS_EN)
_STEMMER = Stemmer.Stemmer("english")


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


class LexicalIndex:
    """BM25 scores for every paper, by row (the same rows as the vectors and the records)."""

    def __init__(self, bm25: bm25s.BM25) -> None:
        self._bm25 = bm25
        self.size = int(bm25.scores["num_docs"])

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        bm25 = bm25s.BM25(k1=K1, b=B)
        # An empty term keeps a paper whose text has no indexable word from breaking bm25s.
        bm25.index([analyse(text) or [""] for text in texts], show_progress=False)
        return cls(bm25)

    def save(self, folder: Path) -> None:
        self._bm25.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        return cls(bm25s.BM25.load(str(folder), show_progress=False))

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """BM25 of every paper for the query terms (zeros where a paper has none of them)."""
        scores = np.zeros(self.size, dtype=np.float32)
        rows, matched = self.matches(terms)
        scores[rows] = matched
        return scores

    def matches(self, terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, scores)`` of the papers holding at least one query term, rows ascending.

        Only the postings of the query's terms are read, so the cost follows how many papers
        use those words, not the size of the corpus.
        """
        index = self._bm25.scores
        ids = self._bm25.get_tokens_ids(list(terms))
        spans = [(index["indptr"][i], index["indptr"][i + 1]) for i in ids]
        if not spans:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        rows = np.concatenate([index["indices"][start:end] for start, end in spans])
        weights = np.concatenate([index["data"][start:end] for start, end in spans])
        unique, position = np.unique(rows, return_inverse=True)
        summed = np.bincount(position, weights=weights, minlength=len(unique))
        return unique.astype(np.int64), summed.astype(np.float32)

    def idf(self, term: str) -> float:
        """Lucene's idf, the weight a matching term gets when choosing highlight sentences;
        0 for a term no paper holds. Computed per call (a few are asked per search) rather
        than for the whole vocabulary at start-up."""
        term_id = self._bm25.vocab_dict.get(term)
        indptr = self._bm25.scores["indptr"]
        if term_id is None or term_id + 1 >= len(indptr):  # bm25s adds a column-less "" term
            return 0.0
        # The index is a column per term: its length is the term's document frequency.
        df = int(indptr[term_id + 1] - indptr[term_id])
        return math.log(1 + (self.size - df + 0.5) / (df + 0.5))
