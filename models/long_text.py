"""One vector for a text longer than the model reads: overlapping token windows, combined.

The model reads at most ``max_seq_length`` tokens and both backends cut a longer text there,
so a pasted introduction would be judged by its first paragraph or two. ``encode_long``
instead cuts the text's token ids (from the model's own tokenizer, so a window is exactly
what the model would see for a text of that length) into overlapping windows, embeds each
window as ``encode`` embeds a text (the same special tokens, pooling and normalisation), and
combines the window vectors into one (``combine_windows`` says how and why). It is written
once for both backends: a backend gives its tokenizer, its window length and a function
that embeds windows of token ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported for real when a backend is loaded, as the backends do
    from tokenizers import Tokenizer

# Embeds windows of token ids, each already wrapped in the model's special tokens, as the
# backend's ``encode`` embeds a text of those tokens: one L2-normalised row per window.
WindowEncoder = Callable[[Sequence[list[int]]], np.ndarray]


def window_overlap(size: int) -> int:
    """Tokens shared by neighbouring windows: a quarter window, so a sentence cut at one
    window's edge is read with its context in the next, at a third more windows to run (half
    a window matched whole-text vectors hardly better, at twice the windows)."""
    return size // 4


def token_windows(ids: Sequence[int], size: int, overlap: int) -> list[list[int]]:
    """``ids`` cut into windows of at most ``size`` ids, each starting ``size - overlap`` after
    the previous one; the last window ends at the last id. A text of at most ``size`` ids,
    the empty text included, is one window: itself."""
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"need 0 <= overlap < size, got size={size}, overlap={overlap}")
    ids = list(ids)
    stride = size - overlap
    windows = [ids[:size]]
    start = stride
    while start + overlap < len(ids):  # what is left is more than the previous window covered
        windows.append(ids[start : start + size])
        start += stride
    return windows


def new_tokens(windows: Sequence[Sequence[int]], overlap: int) -> list[int]:
    """How many tokens each window adds to those before it: all of the first window's, the
    rest of each later one's past the ``overlap`` it shares with its predecessor."""
    return [len(window) - (overlap if i else 0) for i, window in enumerate(windows)]


def combine_windows(vectors: np.ndarray, weights: Sequence[int]) -> np.ndarray:
    """The window vectors' mean weighted by the tokens each adds (``new_tokens``),
    L2-normalised.

    Why these weights: the model mean-pools over tokens, so its vector of a whole text is
    close to a token-weighted mean, and weighting by the tokens a window adds counts every
    token once, overlap or not. On real abstracts this matched the model's own vector of the
    whole text better than weighting by each window's full length, than the plain mean (a
    short tail window of a few closing words counted as much as a full one) and than the
    first window alone (the truncation ``encode`` does).
    """
    weight = np.asarray(weights, dtype=np.float64)
    mean = (weight[:, None] * vectors.astype(np.float64)).sum(axis=0) / weight.sum()
    return np.ascontiguousarray(mean / np.linalg.norm(mean), dtype=np.float32)


class LongTextTokenizer:
    """A model's tokenizer for windowing: whole texts in, with no truncation or padding.

    A copy, so the backend's own tokenizer (truncating at the model's limit) is untouched.
    The special tokens a single text gets (``[CLS]`` and ``[SEP]`` for BERT models) are read
    off the tokenizer itself and put around every window, as ``encode`` puts them around a
    text.
    """

    def __init__(self, tokenizer: Tokenizer, max_seq_length: int) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        wrapped = self._tokenizer.encode("a").ids
        plain = self._tokenizer.encode("a", add_special_tokens=False).ids
        start = _find(wrapped, plain)
        self._prefix = wrapped[:start]
        self._suffix = wrapped[start + len(plain) :]
        self.window_size = max_seq_length - len(self._prefix) - len(self._suffix)

    def token_ids(self, text: str) -> list[int]:
        ids: list[int] = self._tokenizer.encode(text, add_special_tokens=False).ids
        return ids

    def wrap(self, window: Sequence[int]) -> list[int]:
        return [*self._prefix, *window, *self._suffix]


def encode_long(
    tokenizer: LongTextTokenizer, encode_windows: WindowEncoder, text: str
) -> np.ndarray:
    """One L2-normalised float32 vector for ``text`` of any length (see the module doc).

    A text that fits one window gives exactly the backend's ``encode([text])[0]``.
    """
    size = tokenizer.window_size
    overlap = window_overlap(size)
    windows = token_windows(tokenizer.token_ids(text), size, overlap)
    vectors = encode_windows([tokenizer.wrap(window) for window in windows])
    if len(windows) == 1:  # exactly what ``encode`` gives: no arithmetic on the vector
        return np.ascontiguousarray(vectors[0], dtype=np.float32)
    return combine_windows(vectors, new_tokens(windows, overlap))


def _find(haystack: list[int], needle: list[int]) -> int:
    for start in range(len(haystack) - len(needle) + 1):
        if haystack[start : start + len(needle)] == needle:
            return start
    raise ValueError("the tokenizer's special tokens do not surround the text's own tokens")
