"""The same embedding model exported to ONNX, int8-quantised, and run with onnxruntime.

Why a second backend: on CPU cores it embeds abstracts and queries several times as fast as
torch, with vectors close to torch's and the same SciFact quality (the README's performance
section has the figures). torch stays the reference.

Why not sentence-transformers' ``backend="onnx"``: it runs through optimum, whose current
release needs transformers < 4.58, and sentence-transformers 6 needs transformers 5. So the
export is made here, once, from the packaged model: torch traces the transformer with mean
pooling and L2 normalisation inside the graph, onnxruntime fuses the attention layers and
quantises every weight matrix to int8 per output channel (one scale per tensor lost 0.06 in
cosine). The result is cached under ``~/.cache/papersearch/models``; serving needs neither
torch nor transformers, only onnxruntime and tokenizers.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np

from models.long_text import LongTextTokenizer, encode_long

ONNX_BACKEND: Final = "onnx-int8"
# Part of the cache folder's name: a change to the export recipe makes new exports.
EXPORT_RECIPE = 1
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
SETTINGS_FILE = "encoder.json"


class OnnxEmbedder:
    """Normalised float32 sentence vectors from an int8 ONNX export (see the module doc)."""

    backend = ONNX_BACKEND

    def __init__(self, name: str, export_dir: Path, *, threads: int | None = None) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        settings = json.loads((export_dir / SETTINGS_FILE).read_text(encoding="utf-8"))
        self.name = name
        self.dimension: int = settings["dimension"]
        self._tokenizer = Tokenizer.from_file(str(export_dir / TOKENIZER_FILE))
        self._tokenizer.enable_truncation(max_length=settings["max_seq_length"])
        self._tokenizer.no_padding()  # each text runs alone (see encode): nothing to pad
        self._long_tokenizer = LongTextTokenizer(self._tokenizer, settings["max_seq_length"])
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        # 0 is onnxruntime's default: one thread per core. (It ignores OMP_NUM_THREADS.)
        options.intra_op_num_threads = threads or 0
        self._session = onnxruntime.InferenceSession(
            str(export_dir / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray:
        """One vector per text, each text run through the model alone (``batch_size`` is
        accepted for the Embedder protocol and not used).

        Why alone: the int8 graph quantises its activations with one scale per input
        tensor, so a text batched with others got a vector that depended on its companions
        and their padding, and a query's results changed with the load on the server.
        Alone, a text's vector depends on the text only, and lies slightly closer to
        torch's. Abstracts even embed faster so, with no padding to compute; short queries
        lose some throughput, which the service does not miss (README, Backends and
        Performance).
        """
        encodings = self._tokenizer.encode_batch(list(texts))
        return self._encode_ids([encoding.ids for encoding in encodings])

    def encode_long(self, text: str) -> np.ndarray:
        """One vector for a text of any length, from overlapping windows of the model's
        length (``models.long_text``); a text that fits one window gives ``encode([text])[0]``.
        """
        return encode_long(self._long_tokenizer, self._encode_ids, text)

    def _encode_ids(self, texts: Sequence[list[int]]) -> np.ndarray:
        """One vector per text given as token ids with their special tokens, each run alone
        (see ``encode``)."""
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, ids in enumerate(texts):
            input_ids = np.array([ids], dtype=np.int64)
            attention = np.ones_like(input_ids)
            (vector,) = self._session.run(
                None, {"input_ids": input_ids, "attention_mask": attention}
            )
            vectors[row] = vector[0]
        return vectors


def export_dir_for(name: str, cache_root: Path) -> Path:
    return cache_root / f"{name}-{ONNX_BACKEND}-r{EXPORT_RECIPE}"


def ensure_export(name: str, model_dir: Path, cache_root: Path) -> Path:
    """The export folder for ``model_dir``, made on first use (seconds; needs torch then)."""
    target = export_dir_for(name, cache_root)
    if (target / SETTINGS_FILE).is_file():
        return target
    print(f"exporting {name} to ONNX int8 in {target} (once)", file=sys.stderr)
    cache_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_root, prefix=".export-") as scratch:
        folder = Path(scratch) / "export"
        folder.mkdir()
        _export(model_dir, folder)
        try:
            folder.rename(target)
        except OSError:
            if not (target / SETTINGS_FILE).is_file():  # not merely another process first
                raise
    return target


def _export(model_dir: Path, folder: Path) -> None:
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its "Loading weights" bar is noise here
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    if not pooling.get("pooling_mode_mean_tokens"):
        raise ValueError(f"{model_dir}: the ONNX backend supports mean-pooling models only")
    st_config = json.loads((model_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
    config = AutoConfig.from_pretrained(str(model_dir))
    # Eager attention traces to plain MatMul/Softmax nodes, which onnxruntime's optimiser
    # fuses into its Attention kernel (the SDPA trace it cannot).
    transformer = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class MeanPooledNormalised(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=-1)

    example = torch.ones((2, 8), dtype=torch.int64)
    traced = folder / "traced.onnx"
    optimised = folder / "optimised.onnx"
    with torch.no_grad(), _QuietStderr(), _RootLoggingKept(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            MeanPooledNormalised(),
            (example, example),
            str(traced),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
        optimize_model(
            str(traced),
            model_type="bert",
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
        ).save_model_to_file(str(optimised))
        quantize_dynamic(
            str(optimised),
            str(folder / MODEL_FILE),
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    traced.unlink()
    optimised.unlink()
    shutil.copyfile(model_dir / TOKENIZER_FILE, folder / TOKENIZER_FILE)
    (folder / SETTINGS_FILE).write_text(
        json.dumps(
            {
                "dimension": int(config.hidden_size),
                "max_seq_length": int(st_config["max_seq_length"]),
                "pad_token_id": int(config.pad_token_id or 0),
                "recipe": EXPORT_RECIPE,
            }
        ),
        encoding="utf-8",
    )


class _RootLoggingKept:
    """The optimiser configures the root logger (``basicConfig``), after which every
    library's debug lines (bm25s's among them) reach the terminal; put it back as it was."""

    def __enter__(self) -> None:
        self._handlers = list(logging.root.handlers)
        self._level = logging.root.level

    def __exit__(self, *exc: object) -> None:
        logging.root.handlers[:] = self._handlers
        logging.root.setLevel(self._level)


class _QuietStderr:
    """The exporter and quantiser print pages of tracer warnings; a user needs none of them."""

    def __enter__(self) -> None:
        sys.stderr.flush()
        self._saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc: object) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
