"""The offline indexing job: parse a corpus, embed what is not cached, write the index."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from indexing.corpus import Corpus, read_corpus
from indexing.corpus_map import project
from indexing.embedding_cache import EmbeddingCache, text_hash
from indexing.errors import PapersearchError
from indexing.index_types import IndexType, build_ann, resolve_index_type
from indexing.manifest import FORMAT_VERSION, IndexUnusable, Manifest, Segment, checked_build
from indexing.plural import counted
from indexing.records import Paper, ParseIssue, embedding_text
from indexing.sentences import sentence_spans
from indexing.vector_files import SuppliedVectors, VectorFileError
from indexing.writer import check_writable, next_segment_name, segment_writer, write_index
from models import DEFAULT_BACKEND, ModelLoader, vector_space

if TYPE_CHECKING:  # imported when a job asks for Ray: Ray is an optional extra
    from indexing.ray_job import RayJob

# Texts handed to the model per call: small enough for a smooth progress bar and for a
# Ctrl-C to lose little work (each chunk is cached as soon as it is embedded).
ENCODE_CHUNK = 128

# What embeds the texts the cache lacks, given them cut into chunks: yields each chunk's
# vectors (one row per text) with the chunk's number, in whatever order they are done.
# ``local_encoder`` runs the model in this process, ``indexing.ray_job`` on a Ray cluster;
# the cache lookups, the cache writes, the order of the rows and the counts around it are
# ``embed_with_cache``'s alone, so both give the same vectors and the same report.
ChunkEncoder = Callable[[list[list[str]]], Iterator[tuple[int, np.ndarray]]]


class BuildError(PapersearchError, RuntimeError):
    """Nothing could be indexed; the previous index is left as it was."""

    status = 422  # what was given cannot be indexed
    code = "build_failed"


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
    unchanged: bool = False
    supplied: int = 0  # vectors taken from ``vectors_file``
    vectors_file: Path | None = None

    def summary(self) -> str:
        if self.unchanged:
            return (
                f"index {self.index_dir} is current ({counted(self.papers, 'paper')}, same "
                f"corpus and model): kept as it is"
            )
        from_file = f"{self.supplied} from {self.vectors_file}, " if self.vectors_file else ""
        return (
            f"indexed {counted(self.papers, 'paper')} from {counted(self.files, 'file')} into "
            f"{self.index_dir}: {from_file}{self.embedded} embedded, {self.reused} reused from "
            f"cache, {len(self.issues)} skipped, "
            f"{counted(self.merged_duplicates, 'duplicate')} merged, {self.seconds:.1f} s"
        )


@dataclass(frozen=True)
class EmbeddedPapers:
    """Papers' vectors, row for row, and where they came from."""

    vectors: np.ndarray  # (papers, dimension), float32, unit rows
    embedded: int  # texts the model embedded now
    reused: int  # texts found in the embedding cache
    supplied: int  # papers whose vector came from a vector file


def build_index(
    paths: Sequence[Path],
    index_dir: Path,
    *,
    cache_dir: Path,
    model_name: str,
    load_model: ModelLoader,
    capture_date: date,
    batch_size: int = 32,
    progress: bool = True,
    skip_if_current: bool = False,
    backend: str = DEFAULT_BACKEND,
    index_type: IndexType = IndexType.AUTO,
    vectors: Path | None = None,
    vectors_model: str | None = None,
    vectors_backend: str | None = None,
    ray: RayJob | None = None,
) -> BuildReport:
    """Build an index from ``paths`` into ``index_dir``; the model is loaded only if needed.

    ``load_model(model_name, backend)`` is called only if some paper is neither in
    ``vectors`` (a vector file, ``indexing.vector_files``) nor in the cache, where vectors are
    looked up by model and backend. ``vectors_model`` and ``vectors_backend`` say what made
    a vector file that does not say it itself.

    With ``skip_if_current``, an index already built from the same papers with the same
    model and format is kept as it is (what evaluation reruns want: seconds, not minutes);
    never when ``vectors`` are given, which may differ from the ones the index holds.

    With ``ray``, the texts the cache lacks are embedded by actors of a Ray cluster
    (``indexing.ray_job``); everything else runs here as without it, the index is written
    by this process alone, and it is the same index.
    """
    started = time.perf_counter()
    check_writable(index_dir)  # before minutes of embedding, not after
    encoder, chunk_size = None, ENCODE_CHUNK
    if ray is not None:  # Ray missing or its address unreachable: refused before any work
        from indexing.ray_job import ray_encoder

        encoder = ray_encoder(ray, model_name, backend, load_model, batch_size)
        chunk_size = ray.chunk_size
    corpus = read_papers(paths, capture_date)
    # Read and checked before anything is embedded: a bad file fails in seconds.
    supplied = (
        SuppliedVectors.read(
            vectors,
            model=model_name,
            backend=backend,
            declared_model=vectors_model,
            declared_backend=vectors_backend,
        )
        if vectors is not None
        else None
    )
    index_type = resolve_index_type(index_type, len(corpus.papers))
    if (
        skip_if_current
        and supplied is None
        and _is_current(index_dir, corpus.checksum(), model_name, backend, index_type)
    ):
        return BuildReport(
            index_dir=index_dir,
            files=len(corpus.files),
            papers=len(corpus.papers),
            embedded=0,
            reused=len(corpus.papers),
            merged_duplicates=corpus.merged_duplicates,
            seconds=time.perf_counter() - started,
            issues=corpus.issues,
            unchanged=True,
        )

    embedding = embed_papers(
        corpus.papers,
        supplied=supplied,
        cache_dir=cache_dir,
        model_name=model_name,
        backend=backend,
        load_model=load_model,
        batch_size=batch_size,
        progress=progress,
        encoder=encoder,
        chunk_size=chunk_size,
    )
    paper_vectors = embedding.vectors
    sentences = abstract_sentences(corpus.papers, progress)
    map_points = _corpus_map(paper_vectors, progress)
    ann = None if index_type is IndexType.FLAT else build_ann(index_type, paper_vectors)
    seconds = time.perf_counter() - started
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        model=model_name,
        backend=backend,
        index_type=index_type,
        dimension=int(paper_vectors.shape[1]),
        paper_count=len(corpus.papers),
        corpus_checksum=corpus.checksum(),
        built_at=datetime.now(UTC),
        build_seconds=round(seconds, 3),
        sources=[path.name for path in corpus.files],
        capture_date=capture_date.isoformat(),
        segments=[
            Segment(name=next_segment_name(None), rows=len(corpus.papers), ann=ann is not None)
        ],
    )
    segment = segment_writer(corpus.papers, paper_vectors, sentences, map_points, ann=ann)
    write_index(index_dir, manifest, segment)
    return BuildReport(
        index_dir=index_dir,
        files=len(corpus.files),
        papers=len(corpus.papers),
        embedded=embedding.embedded,
        reused=embedding.reused,
        merged_duplicates=corpus.merged_duplicates,
        seconds=time.perf_counter() - started,
        issues=corpus.issues,
        supplied=embedding.supplied,
        vectors_file=vectors,
    )


def read_papers(paths: Sequence[Path], capture_date: date) -> Corpus:
    """``read_corpus``, refused when not one paper could be read: indexing nothing would
    replace an index with an empty one, so the index is left as it is and the first reasons
    are listed."""
    corpus = read_corpus(paths, capture_date)
    if not corpus.papers:
        reasons = "".join(f"\n  {issue}" for issue in corpus.issues[:5])
        raise BuildError(
            f"no papers could be read from {', '.join(map(str, paths))}; index unchanged{reasons}"
        )
    return corpus


def embed_papers(
    papers: Sequence[Paper],
    *,
    supplied: SuppliedVectors | None,
    cache_dir: Path,
    model_name: str,
    backend: str,
    load_model: ModelLoader,
    batch_size: int,
    progress: bool,
    encoder: ChunkEncoder | None = None,
    chunk_size: int = ENCODE_CHUNK,
) -> EmbeddedPapers:
    """Every paper's vector, in paper order: from ``supplied`` where it holds the paper's id,
    else from the embedding cache, else from the model (loaded only then). What a full build
    and an incremental add both run.

    Supplied vectors are not put in the cache: it holds what this machine's model computed,
    and a text's cached vector must not depend on which file was once brought in.
    """

    def embedded_now(texts: Sequence[str]) -> tuple[np.ndarray, int, int]:
        return embed_with_cache(
            texts,
            cache_dir=cache_dir,
            model_name=model_name,
            backend=backend,
            load_model=load_model,
            batch_size=batch_size,
            progress=progress,
            encoder=encoder,
            chunk_size=chunk_size,
        )

    if supplied is None:
        return EmbeddedPapers(*embedded_now([embedding_text(paper) for paper in papers]), 0)
    rows = supplied.rows_for([paper.id for paper in papers])
    from_file = np.flatnonzero(rows >= 0)
    to_embed = np.flatnonzero(rows < 0)
    embedded = reused = 0
    computed: np.ndarray | None = None
    if len(to_embed):
        computed, embedded, reused = embedded_now(
            [embedding_text(papers[int(i)]) for i in to_embed]
        )
    if computed is not None and computed.shape[1] != supplied.dimension:
        raise VectorFileError(
            f"{supplied.path} holds {supplied.dimension}-dimensional vectors, but {model_name} "
            f"({backend}) makes {computed.shape[1]}-dimensional ones: they were not made by it"
        )
    vectors = np.empty((len(papers), supplied.dimension), dtype=np.float32)
    with tqdm(
        total=len(from_file),
        desc="supplied",
        unit="paper",
        disable=not progress,
        file=sys.stderr,
    ) as bar:
        vectors[from_file] = supplied.vectors[rows[from_file]]
        bar.update(len(from_file))
    if computed is not None:
        vectors[to_embed] = computed
    return EmbeddedPapers(vectors, embedded, reused, len(from_file))


def embed_with_cache(
    texts: Sequence[str],
    *,
    cache_dir: Path,
    model_name: str,
    backend: str,
    load_model: ModelLoader,
    batch_size: int,
    progress: bool,
    encoder: ChunkEncoder | None = None,
    chunk_size: int = ENCODE_CHUNK,
) -> tuple[np.ndarray, int, int]:
    """``(vectors, texts embedded, texts found in the cache)``: the model is loaded only when
    some text is not cached, and each embedded chunk is cached at once. A text that occurs
    twice is embedded once and counts once.

    ``encoder`` embeds the missing texts (default: ``local_encoder``, the model in this
    process), handed them in chunks of ``chunk_size``."""
    space = vector_space(model_name, backend)
    hashes = [text_hash(text) for text in texts]
    cache = EmbeddingCache(cache_dir)
    try:
        cached = cache.get_many(space, hashes)
        reused = sum(1 for h in hashes if h in cached)
        missing = list(dict.fromkeys(h for h in hashes if h not in cached))
        if missing:
            text_of = dict(zip(hashes, texts, strict=True))
            cached.update(
                _embed(
                    encoder or local_encoder(model_name, backend, load_model, batch_size),
                    [text_of[h] for h in missing],
                    missing,
                    cache,
                    space,
                    chunk_size,
                    progress,
                )
            )
    finally:
        cache.close()
    return np.stack([cached[h] for h in hashes]).astype(np.float32), len(missing), reused


def abstract_sentences(papers: Sequence[Paper], progress: bool) -> list[list[tuple[int, int]]]:
    return [
        sentence_spans(paper.abstract)
        for paper in tqdm(
            papers, desc="sentences", unit="paper", disable=not progress, file=sys.stderr
        )
    ]


def _corpus_map(vectors: np.ndarray, progress: bool) -> np.ndarray:
    """``project(vectors)`` under a progress bar of its own: its seconds at scale would
    otherwise look like a build stuck after its last bar."""
    with tqdm(
        total=len(vectors), desc="map", unit="paper", disable=not progress, file=sys.stderr
    ) as bar:
        points = project(vectors)
        bar.update(len(vectors))
    return points


def _is_current(
    index_dir: Path, corpus_checksum: str, model_name: str, backend: str, index_type: IndexType
) -> bool:
    """Is the index already built from this corpus this way, and intact? A damaged index is
    not current: the refusal's advice (`papersearch index --out ...`) must rebuild it."""
    try:
        manifest = checked_build(index_dir, model=model_name, backend=backend).manifest
    except IndexUnusable:
        return False
    return manifest.index_type == index_type and manifest.corpus_checksum == corpus_checksum


def local_encoder(
    model_name: str, backend: str, load_model: ModelLoader, batch_size: int
) -> ChunkEncoder:
    """The model in this process, loaded when the first chunk is asked for, the chunks in
    order."""

    def encode(chunks: list[list[str]]) -> Iterator[tuple[int, np.ndarray]]:
        model = load_model(model_name, backend)
        for number, texts in enumerate(chunks):
            yield number, model.encode(texts, batch_size=batch_size)

    return encode


def _embed(
    encoder: ChunkEncoder,
    texts: list[str],
    hashes: list[str],
    cache: EmbeddingCache,
    space: str,
    chunk_size: int,
    progress: bool,
) -> dict[str, np.ndarray]:
    """Each chunk is cached as it comes back, whatever embedded it: a job stopped midway
    (Ctrl-C, a killed driver) has lost only the chunks in flight."""
    starts = range(0, len(texts), chunk_size)
    chunk_hashes = [hashes[start : start + chunk_size] for start in starts]
    embedded: dict[str, np.ndarray] = {}
    with tqdm(
        total=len(texts), desc="embedding", unit="paper", disable=not progress, file=sys.stderr
    ) as bar:
        for number, vectors in encoder([texts[start : start + chunk_size] for start in starts]):
            keys = chunk_hashes[number]
            cache.put_many(space, zip(keys, vectors, strict=True))
            embedded.update(zip(keys, vectors, strict=True))
            bar.update(len(keys))
    if len(embedded) != len(hashes):  # an encoder that dropped a chunk: never write a hole
        raise BuildError(
            f"{len(hashes) - len(embedded)} of {len(hashes)} texts came back without a "
            "vector; index unchanged"
        )
    return embedded
