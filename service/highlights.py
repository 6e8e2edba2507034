"""Why a paper came up: the sentences of its abstract that share the most query terms.

A sentence scores the summed idf of the distinct query terms it contains, with the same
stemming as the BM25 ranking ("recommenders" matches "recommendation"), so rare, specific
words count more than common ones. This needs no model call: sentence offsets were found at
indexing time, and scoring ten abstracts costs well under a millisecond. A paper found by
meaning alone, sharing no term with the query, has no highlight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from indexing.lexical import analyse
from service.schemas import Highlight

MAX_HIGHLIGHTS = 2


def highlight(
    abstract: str,
    sentences: Sequence[tuple[int, int]],
    query_terms: frozenset[str],
    idf: Callable[[str], float],
) -> list[Highlight]:
    """Up to two best-matching sentences, in the order they appear in the abstract."""
    if not query_terms or not sentences:
        return []
    scored: list[tuple[float, int]] = []
    for index, (start, end) in enumerate(sentences):
        matched = query_terms.intersection(analyse(abstract[start:end]))
        if matched:
            scored.append((sum(idf(term) for term in matched), index))
    best = sorted(scored, key=lambda pair: (-pair[0], pair[1]))[:MAX_HIGHLIGHTS]
    return [
        Highlight(text=abstract[start:end], start=start, end=end)
        for start, end in (sentences[index] for index in sorted(index for _, index in best))
    ]
