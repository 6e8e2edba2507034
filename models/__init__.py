"""Embedding models: the one place that knows where weights live and how text becomes vectors."""

from models.embedder import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_MODEL,
    KNOWN_MODELS,
    PRESETS,
    QUALITY_MODEL,
    Embedder,
    ModelLoader,
    ModelUnavailable,
    load_embedder,
    on_device,
    prepare_model,
    resolve_model_name,
    vector_space,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "PRESETS",
    "QUALITY_MODEL",
    "Embedder",
    "ModelLoader",
    "ModelUnavailable",
    "load_embedder",
    "on_device",
    "prepare_model",
    "resolve_model_name",
    "vector_space",
]
