"""The packaged embedding model, loaded offline."""

from __future__ import annotations

import numpy as np
import pytest

from models import DEFAULT_MODEL, ModelUnavailable, load_embedder


def test_packaged_model_gives_normalised_vectors():
    embedder = load_embedder(DEFAULT_MODEL)
    vectors = embedder.encode(["live-streaming recommendation", "protein folding"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)
    close, far = embedder.encode(["live streaming recommender", "quantum field theory"])
    assert float(vectors[0] @ close) > float(vectors[0] @ far)


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ModelUnavailable, match="known models: all-MiniLM-L6-v2"):
        load_embedder("bert-large")
