"""Sentence boundaries of abstracts, found once at indexing time for the highlights.

syntok handles what a regex gets wrong in abstracts ("e.g.", "et al.", "Fig. 2", "p < 0.05")
and reports character offsets, which the API returns so a reader can find the sentence in
the abstract. It costs milliseconds an abstract: cheap at indexing time, too dear per query.
"""

from __future__ import annotations

from syntok import segmenter


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` character offsets of each sentence of ``text``, in order."""
    spans: list[tuple[int, int]] = []
    for paragraph in segmenter.analyze(text):
        for sentence in paragraph:
            if sentence:
                last = sentence[-1]
                spans.append((sentence[0].offset, last.offset + len(last.value)))
    return spans
