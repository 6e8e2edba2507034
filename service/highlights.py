"""Why a paper came up: the sentences of its abstract that share the most query terms.

A sentence scores the summed idf of the distinct query terms it contains, with the same
stemming as the BM25 ranking ("recommenders" matches "recommendation"), so rare, specific
words count more than common ones. This needs no model call: sentence offsets were found at
indexing time, and finding the query terms in ten abstracts costs well under a millisecond.
A paper found by meaning alone, sharing no term with the query, has no highlight.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence

from indexing.lexical import TermLocator
from service.schemas import Highlight

MAX_HIGHLIGHTS = 2


def highlight(
    abstract: str,
    sentences: Sequence[tuple[int, int]],
    query: TermLocator,
    idf: Callable[[str], float],
) -> list[Highlight]:
    """Up to two best-matching sentences, in the order they appear in the abstract."""
    if not sentences:
        return []
    starts = [start for start, _ in sentences]
    matched: dict[int, set[str]] = {}
    for offset, term in query.occurrences(abstract):
        index = bisect_right(starts, offset) - 1
        if index >= 0 and offset < sentences[index][1]:
            matched.setdefault(index, set()).add(term)
    scored = [(sum(idf(term) for term in terms), index) for index, terms in matched.items()]
    best = sorted(scored, key=lambda pair: (-pair[0], pair[1]))[:MAX_HIGHLIGHTS]
    return [
        Highlight(text=abstract[start:end], start=start, end=end)
        for start, end in (sentences[index] for index in sorted(index for _, index in best))
    ]
