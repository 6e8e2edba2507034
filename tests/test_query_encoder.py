"""Concurrent queries share forward passes; repeated queries skip the model."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from indexing.index_types import DenseIndex
from models import DEFAULT_MODEL, load_embedder
from service.query_encoder import NearestSearch, QueryEncoder

QUERIES = [f"graph neural networks for recommendation, variant {n}" for n in range(32)]


@pytest.fixture(scope="module")
def embedder():
    return load_embedder(DEFAULT_MODEL)


def test_concurrent_queries_are_embedded_in_shared_batches(embedder):
    encoder = QueryEncoder(embedder, cache_size=0)
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            vectors = list(pool.map(encoder.encode, QUERIES))
        assert encoder.batches < len(QUERIES)  # some queries rode along with others
        alone = embedder.encode(QUERIES)
        assert np.allclose(np.stack(vectors), alone, atol=1e-5)  # same vectors as one by one
    finally:
        encoder.close()


def test_a_repeated_query_is_answered_from_the_cache(embedder):
    encoder = QueryEncoder(embedder, cache_size=2)
    try:
        first = encoder.encode("protein folding")
        assert encoder.encode("protein folding") is first
        assert encoder.batches == 1
        encoder.encode("dark matter")
        encoder.encode("gravitational waves")  # the oldest entry is evicted
        encoder.encode("protein folding")
        assert encoder.batches == 4
    finally:
        encoder.close()


def test_a_failing_model_fails_each_request_not_the_encoder(embedder):
    class Broken:
        name, backend, dimension = "broken", "torch", 384

        def encode(self, texts, *, batch_size=32, show_progress=False):
            raise ValueError("model failed")

    encoder = QueryEncoder(Broken(), cache_size=0)
    try:
        with pytest.raises(ValueError, match="model failed"):
            encoder.encode("anything")
        with pytest.raises(ValueError, match="model failed"):  # the thread is still serving
            encoder.encode("anything else")
    finally:
        encoder.close()
    with pytest.raises(RuntimeError, match="closed"):
        encoder.encode("after close")


def test_concurrent_searches_share_one_pass_and_find_what_one_by_one_finds(embedder):
    papers = DenseIndex(embedder.encode([f"{q} in the wild" for q in QUERIES]), ann=None)
    encoder = QueryEncoder(embedder, cache_size=0)
    try:
        search = NearestSearch(papers, n=5, depth=1)
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda q: encoder.encode_and_search(q, search), QUERIES))
        assert encoder.batches < len(QUERIES)
        for vector, found in answers:
            alone = papers.nearest(vector, 5, search_depth=1)
            assert found.rows.tolist() == alone.rows.tolist()
            assert np.allclose(found.scores, alone.scores, atol=1e-6)
    finally:
        encoder.close()
