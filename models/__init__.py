"""Embedding models: the one place that knows where weights live and how text becomes vectors."""

from models.embedder import (
    BACKENDS,
    DEFAULT_MODEL,
    KNOWN_MODELS,
    PRESETS,
    QUALITY_MODEL,
    Embedder,
    ModelUnavailable,
    load_embedder,
    resolve_model_name,
    vector_space,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "PRESETS",
    "QUALITY_MODEL",
    "Embedder",
    "ModelUnavailable",
    "load_embedder",
    "resolve_model_name",
    "vector_space",
]
