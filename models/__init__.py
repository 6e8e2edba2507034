"""Embedding models: the one place that knows where weights live and how text becomes vectors."""

from models.embedder import DEFAULT_MODEL, KNOWN_MODELS, Embedder, ModelUnavailable, load_embedder

__all__ = ["DEFAULT_MODEL", "KNOWN_MODELS", "Embedder", "ModelUnavailable", "load_embedder"]
