"""The offline indexing job: parse a corpus, embed what is not cached, write the index."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from indexing.corpus import read_corpus
from indexing.embedding_cache import EmbeddingCache, text_hash
from indexing.records import ParseIssue, embedding_text
from indexing.store import FORMAT_VERSION, Manifest, check_writable, write_index
from models import Embedder

# Texts handed to the model per call: small enough for a smooth progress bar and for a
# Ctrl-C to lose little work (each chunk is cached as soon as it is embedded).
ENCODE_CHUNK = 128


class BuildError(RuntimeError):
    """Nothing could be indexed; the previous index is left as it was."""


@dataclass
class BuildReport:
    index_dir: Path
    files: int
    papers: int
    embedded: int
    reused: int
    merged_duplicates: int
    seconds: float
    issues: list[ParseIssue] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"indexed {self.papers} papers from {self.files} files into {self.index_dir}: "
            f"{self.embedded} embedded, {self.reused} reused from cache, "
            f"{len(self.issues)} skipped, {self.merged_duplicates} duplicates merged, "
            f"{self.seconds:.1f} s"
        )


def build_index(
    paths: Sequence[Path],
    index_dir: Path,
    *,
    cache_dir: Path,
    model_name: str,
    load_model: Callable[[str], Embedder],
    capture_date: date,
    batch_size: int = 32,
    progress: bool = True,
) -> BuildReport:
    """Build an index from ``paths`` into ``index_dir``; the model is loaded only if needed."""
    started = time.perf_counter()
    check_writable(index_dir)  # before minutes of embedding, not after
    corpus = read_corpus(paths, capture_date)
    if not corpus.papers:
        reasons = "".join(f"\n  {issue}" for issue in corpus.issues[:5])
        raise BuildError(
            f"no papers could be read from {', '.join(map(str, paths))}; index unchanged{reasons}"
        )

    texts = [embedding_text(paper) for paper in corpus.papers]
    hashes = [text_hash(text) for text in texts]
    cache = EmbeddingCache(cache_dir)
    try:
        cached = cache.get_many(model_name, hashes)
        reused = sum(1 for h in hashes if h in cached)
        missing = list(dict.fromkeys(h for h in hashes if h not in cached))
        if missing:
            text_of = dict(zip(hashes, texts, strict=True))
            cached.update(
                _embed(
                    load_model(model_name),
                    [text_of[h] for h in missing],
                    missing,
                    cache,
                    batch_size,
                    progress,
                )
            )
    finally:
        cache.close()

    vectors = np.stack([cached[h] for h in hashes]).astype(np.float32)
    seconds = time.perf_counter() - started
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        model=model_name,
        dimension=int(vectors.shape[1]),
        paper_count=len(corpus.papers),
        corpus_checksum=corpus.checksum(),
        built_at=datetime.now(UTC),
        build_seconds=round(seconds, 3),
        sources=[path.name for path in corpus.files],
        capture_date=capture_date.isoformat(),
    )
    write_index(index_dir, corpus.papers, vectors, manifest)
    return BuildReport(
        index_dir=index_dir,
        files=len(corpus.files),
        papers=len(corpus.papers),
        embedded=len(missing),
        reused=reused,
        merged_duplicates=corpus.merged_duplicates,
        seconds=time.perf_counter() - started,
        issues=corpus.issues,
    )


def _embed(
    model: Embedder,
    texts: list[str],
    hashes: list[str],
    cache: EmbeddingCache,
    batch_size: int,
    progress: bool,
) -> dict[str, np.ndarray]:
    embedded: dict[str, np.ndarray] = {}
    with tqdm(
        total=len(texts), desc="embedding", unit="paper", disable=not progress, file=sys.stderr
    ) as bar:
        for start in range(0, len(texts), ENCODE_CHUNK):
            chunk_hashes = hashes[start : start + ENCODE_CHUNK]
            vectors = model.encode(texts[start : start + ENCODE_CHUNK], batch_size=batch_size)
            cache.put_many(model.name, zip(chunk_hashes, vectors, strict=True))
            embedded.update(zip(chunk_hashes, vectors, strict=True))
            bar.update(len(chunk_hashes))
    return embedded
