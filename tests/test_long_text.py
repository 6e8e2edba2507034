"""Texts longer than the model reads: one vector from overlapping windows (models/long_text.py),
and arXiv ids typed where a title is expected (service/titles.py)."""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Iterator

import numpy as np
import pytest

from indexing.corpus import read_corpus
from models import DEFAULT_MODEL, Embedder, load_embedder
from models.long_text import combine_windows, new_tokens, token_windows, window_overlap
from service.settings import SEED_CAPTURE_DATE
from service.titles import typed_arxiv_id
from tests.conftest import SEEDS, shared_data

MAX_CHARS = 20_000  # the longest text POST /similar takes


@pytest.fixture(scope="module")
def onnx() -> Embedder:
    return load_embedder(DEFAULT_MODEL, "onnx-int8")


@pytest.fixture(scope="module")
def seed_abstracts() -> list[str]:
    return [paper.abstract for paper in read_corpus([SEEDS], SEED_CAPTURE_DATE).papers]


def long_text(abstracts: list[str]) -> str:
    """Abstracts one after another, as a draft's introduction runs on, up to MAX_CHARS."""
    text = ""
    for abstract in abstracts:
        if len(text) + len(abstract) + 2 > MAX_CHARS:
            break
        text = f"{text}\n\n{abstract}" if text else abstract
    return text


def first_window(embedder: Embedder, text: str) -> np.ndarray:
    """What ``encode`` reads of a text: its first window, the rest cut off."""
    vector: np.ndarray = embedder.encode([text])[0]
    return vector


@pytest.mark.parametrize(
    ("length", "size", "overlap"),
    [(0, 8, 2), (5, 8, 2), (8, 8, 2), (9, 8, 2), (23, 8, 2), (30, 8, 0)],
)
def test_windows_cover_every_token_in_order_with_the_overlap(length, size, overlap):
    ids = list(range(length))
    windows = token_windows(ids, size, overlap)
    assert windows[0] == ids[:size] and all(len(w) <= size for w in windows)
    assert windows[-1][-1:] == ids[-1:]  # the last window ends at the last token
    for before, after in itertools.pairwise(windows):
        assert len(before) == size and after[:overlap] == before[size - overlap :]
    weights = new_tokens(windows, overlap)
    assert sum(weights) == length and all(w > 0 for w in weights[1:])  # each token counted once


def test_window_weights_count_what_each_window_adds():
    vectors = np.eye(3, dtype=np.float32)
    combined = combine_windows(vectors, [6, 3, 0])
    assert combined.dtype == np.float32 and combined.shape == (3,)
    assert np.allclose(combined, np.array([2, 1, 0]) / np.sqrt(5))


def test_a_20000_character_text_is_read_to_its_end(onnx, seed_abstracts):
    text = long_text(seed_abstracts)
    assert len(text) > MAX_CHARS - 2_000
    vector = onnx.encode_long(text)
    assert vector.shape == (onnx.dimension,) and vector.dtype == np.float32
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    # Not the truncation: the windows past the first change the vector...
    assert float(vector @ first_window(onnx, text)) < 0.95
    # ...and so does a change to the text's last paragraph, far past the first window.
    ending = text.rfind("\n\n")
    changed = onnx.encode_long(text[:ending] + "\n\n" + "Protein folding in cold dark matter.")
    assert float(vector @ changed) < 0.9999


def test_texts_within_one_window_equal_encode_onnx(onnx, seed_abstracts):
    fitting = [a for a in seed_abstracts if 600 < len(a) < 900][:3]
    assert fitting
    for text in ["", "live-streaming recommendation", *fitting]:
        assert np.array_equal(onnx.encode_long(text), first_window(onnx, text))


def test_a_text_within_one_window_equals_encode_torch():
    torch = load_embedder(DEFAULT_MODEL, "torch")
    text = "Contrastive pre-training of sentence encoders for scientific abstracts."
    assert np.array_equal(torch.encode_long(text), first_window(torch, text))


def arxiv_abstracts() -> Iterator[str]:
    path = shared_data("arxiv/arxiv-75k.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            yield str(json.loads(line)["abstract"])


def test_real_arxiv_abstracts_long_and_short(onnx):
    """Abstracts over the model's limit are read whole; those within it are left as they are."""
    tokenizer = onnx._long_tokenizer  # the same tokenizer the windows are cut with
    size = tokenizer.window_size
    long, short, seen = [], [], []
    for abstract in arxiv_abstracts():
        n = len(tokenizer.token_ids(abstract))
        if n <= size:
            short.append(abstract)
        elif n > size + window_overlap(size):  # a second window with tokens of its own
            long.append(abstract)
        seen.append(abstract)
        if len(long) >= 3 and len(short) >= 2 and len(seen) >= 120:
            break
    for abstract in long[:3]:
        vector = onnx.encode_long(abstract)
        assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
        assert not np.array_equal(vector, first_window(onnx, abstract))
    for abstract in short[:2]:
        assert np.array_equal(onnx.encode_long(abstract), first_window(onnx, abstract))
    text = long_text(seen)
    assert len(text) > MAX_CHARS - 2_000
    assert float(onnx.encode_long(text) @ first_window(onnx, text)) < 0.95


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("2502.09375", "2502.09375"),
        ("2502.09375v2", "2502.09375"),
        ("arXiv:2502.09375", "2502.09375"),
        ("ARXIV: 0704.0001", "0704.0001"),
        ("https://arxiv.org/abs/2502.09375v2", "2502.09375"),
        ("http://arxiv.org/pdf/2502.09375v1.pdf", "2502.09375"),
        ("arxiv.org/abs/2502.09375?context=cs", "2502.09375"),
        ("https://arxiv.org/html/2502.09375v2#S3", "2502.09375"),
        ("  1706.03762v7 ", "1706.03762"),
        ("hep-th/9901001", "hep-th/9901001"),
        ("cond-mat/0001001v2", "cond-mat/0001001"),
        ("https://arxiv.org/abs/cs/0112017", "cs/0112017"),
        ("math.GT/0309136", "math/0309136"),
        ("Attention is all you need", None),
        ("2502.09375 attention", None),
        ("https://example.org/abs/2502.09375", None),
        ("2513.12345", None),  # no month 13
        ("2502.0937", None),  # five digits since 2015
        ("1403.12345", None),  # four before
        ("abs/2502.09375", None),
        ("", None),
    ],
)
def test_typed_arxiv_ids_are_recognised(typed, expected):
    assert typed_arxiv_id(typed) == expected
