"""Why a paper came up: the sentences of its abstract that share the most query terms.

A sentence scores the summed idf of the distinct query terms it contains, with the same
stemming as the BM25 ranking ("recommenders" matches "recommendation"), so rare, specific
words count more than common ones. This needs no model call: sentence offsets were found at
indexing time, and finding the query terms in ten abstracts costs well under a millisecond.
A paper found by meaning alone, sharing no term with the query, has no highlight. Each
highlight carries where its matched words are, so a client marks exactly the words that
made it count (the page does no matching of its own).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence

from indexing.lexical import TermLocator
from service.schemas import Highlight, TermSpan

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
    words: dict[int, list[TermSpan]] = {}
    for start, end, term in query.occurrences(abstract):
        index = bisect_right(starts, start) - 1
        if index >= 0 and start < sentences[index][1]:
            matched.setdefault(index, set()).add(term)
            first = sentences[index][0]
            words.setdefault(index, []).append(TermSpan(start=start - first, end=end - first))
    # Summed in one order: a set's order follows the process's string hashing, and float
    # sums in two orders can differ in the last bit, which would break ties between
    # sentences differently in two processes (a sharded service's router and a replica).
    scored = [(sum(idf(term) for term in sorted(terms)), index) for index, terms in matched.items()]
    top = sorted(scored, key=lambda pair: (-pair[0], pair[1]))[:MAX_HIGHLIGHTS]
    best = sorted(index for _, index in top)  # in the order they appear
    return [
        Highlight(
            text=abstract[sentences[index][0] : sentences[index][1]],
            start=sentences[index][0],
            end=sentences[index][1],
            terms=words[index],
        )
        for index in best
    ]
