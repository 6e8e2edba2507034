"""Embedding models: the one place that knows where weights live and how text becomes vectors."""

from models.embedder import (
    DEFAULT_MODEL,
    KNOWN_MODELS,
    PRESETS,
    QUALITY_MODEL,
    Embedder,
    ModelUnavailable,
    load_embedder,
    resolve_model_name,
)

__all__ = [
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "PRESETS",
    "QUALITY_MODEL",
    "Embedder",
    "ModelUnavailable",
    "load_embedder",
    "resolve_model_name",
]
