"""A synthetic corpus of any size, recombined from real arXiv papers and their real vectors.

Papersearch must hold a million papers on one machine, and no million-paper corpus with
vectors ships with it; embedding one here would take days on two cores. This generator makes
one in minutes that looks real to the two parts of search that care about the distribution:

- **Text, for BM25.** Each synthetic paper has a *parent*, a real paper drawn uniformly. Its
  abstract is the parent's sentences in order, each one kept with probability ``KEEP`` and
  otherwise replaced by a random sentence of one of ``DONORS`` real papers of the parent's
  primary category (the first sentence is always the parent's). Its title is the parent's
  title with each longer word swapped, with probability ``TITLE_SWAP``, for a word of a
  donor's title. Term frequencies, document lengths and the vocabulary are therefore those
  of real abstracts, with topics kept together, while no two papers are copies.
- **Vectors, for the ANN.** Each vector is the parent's real embedding plus Gaussian noise,
  renormalised: ``normalise(p + sigma * z)`` with ``z ~ N(0, I)``. For unit ``p`` in ``d``
  dimensions the noise has length about ``sigma * sqrt(d)`` and is nearly orthogonal to
  ``p``, so the cosine to the parent is about ``1 / sqrt(1 + d * sigma**2)``; ``sigma`` is
  solved from ``TARGET_COSINE`` = 0.875 (``sigma`` = 0.0282 at 384 dimensions). Why 0.875:
  in the real 75k arXiv index the median cosine of a paper to its nearest neighbour is 0.75
  (10th-90th percentile 0.66-0.82), and two children of one parent end up at about
  0.875**2 = 0.77 from each other, so every synthetic paper has close neighbours as real
  papers do, but not copies that would make the nearest-neighbour search trivially easy.
- **Metadata.** Ids ``syn:0000001`` upwards (unique, never an arXiv id); the parent's
  categories (so category sizes follow the real ones); as many authors as the parent,
  each name drawn from every real author occurrence (frequent names stay frequent);
  a date drawn from the real papers' dates (the same spread).

Deterministic: paper ``i`` depends only on ``--seed``, ``i`` and the inputs, never on how many
papers are asked for, so ``--start N --papers 100`` gives the 100 papers a larger run would
have written after the first N (what ``benchmarks/scale.py`` adds to an index). Papers are
generated in chunks of ``CHUNK`` and streamed: memory holds the real pool (about 0.5 GB) and
one chunk, whatever the size; the vectors go through a memory-mapped scratch file into
``indexing.vector_files.write_vectors``, which reads them a row group at a time.

Written into ``--out``: ``papers.jsonl`` (the plain JSONL papersearch reads), ``vectors.parquet``
(with the model and backend of the real vectors' file) and ``synthetic.json`` (how it was made).

    python benchmarks/synthetic_corpus.py --arxiv ../shared/data/arxiv/arxiv-75k.jsonl.gz \\
        --real-vectors data/arxiv-vectors.parquet --papers 1000000 --out data/synthetic-1m
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from indexing.parsers.jsonl import parse_jsonl
from indexing.records import Paper, PaperAtLine
from indexing.vector_files import (
    BACKEND_KEY,
    MODEL_KEY,
    SuppliedVectors,
    VectorFileError,
    write_vectors,
)

TARGET_COSINE = 0.875
KEEP = 0.6  # probability that a sentence of the parent stays
DONORS = 3  # same-category papers lending sentences and title words
TITLE_SWAP = 0.25  # probability that a title word of 4+ letters is swapped
MAX_AUTHORS = 30  # arXiv collaborations list hundreds; a few dozen is enough for the filters
CHUNK = 1000  # papers per random stream; paper i is in chunk i // CHUNK
PAPERS_FILE = "papers.jsonl"
VECTORS_FILE = "vectors.parquet"
INFO_FILE = "synthetic.json"

# Sentence ends: punctuation, space, then a capital or digit. Cruder than the service's
# syntok (indexing/sentences.py), which costs milliseconds an abstract; a few "e.g. X" splits
# change nothing the benchmark measures, since the words and their counts stay real.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")
_TITLE_WORD = re.compile(r"^[A-Za-z][A-Za-z-]{3,}$")


class InputError(ValueError):
    """Inputs the generator cannot draw from; reported as one line, not a traceback."""


def noise_sigma(dimension: int, cosine: float = TARGET_COSINE) -> float:
    """Per-dimension noise whose renormalised sum with a unit vector has ``cosine`` to it."""
    return math.sqrt((1 / cosine**2 - 1) / dimension)


@dataclass
class Pool:
    """The real papers that have a real vector: what every synthetic paper is drawn from."""

    ids: list[str]
    sentences: list[list[str]]
    title_words: list[list[str]]
    author_counts: list[int]
    categories: list[list[str]]
    by_category: list[list[int]]  # for each paper, the pool rows sharing its primary category
    author_names: list[str]  # every author occurrence (frequent names repeat)
    dates: list[str]  # every known date, ISO
    vectors: np.ndarray  # (len(ids), dimension) float32, unit rows
    model: str
    backend: str

    def __len__(self) -> int:
        return len(self.ids)


def load_pool(arxiv: Path, real_vectors: Path) -> Pool:
    """Papers of ``arxiv`` read as papersearch reads them (so ids are the index's own), kept
    where ``real_vectors`` holds their vector."""
    try:
        metadata = pq.ParquetFile(real_vectors).schema_arrow.metadata or {}
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{real_vectors} is not a readable Parquet file: {exc}") from None
    if MODEL_KEY.encode() not in metadata or BACKEND_KEY.encode() not in metadata:
        raise InputError(f"{real_vectors} does not say which model made its vectors")
    model, backend = metadata[MODEL_KEY.encode()].decode(), metadata[BACKEND_KEY.encode()].decode()
    supplied = SuppliedVectors.read(real_vectors, model=model, backend=backend)
    row_of = {paper_id: row for row, paper_id in enumerate(supplied.ids)}

    papers: list[Paper] = []
    seen: set[str] = set()
    for item in parse_jsonl(arxiv, arxiv.name):
        if isinstance(item, PaperAtLine) and item.paper.id in row_of and item.paper.id not in seen:
            seen.add(item.paper.id)
            papers.append(item.paper)
    if len(papers) < 2:
        raise InputError(f"fewer than 2 papers of {arxiv} have a vector in {real_vectors}")

    members: dict[str, list[int]] = {}
    for row, paper in enumerate(papers):
        members.setdefault(paper.category or "", []).append(row)
    pool = Pool(
        ids=[p.id for p in papers],
        sentences=[_SENTENCE_END.split(p.abstract) for p in papers],
        title_words=[(p.title or "").split() for p in papers],
        author_counts=[min(len(p.authors), MAX_AUTHORS) for p in papers],
        categories=[p.categories or ([p.category] if p.category else []) for p in papers],
        by_category=[members[p.category or ""] for p in papers],
        author_names=[name for p in papers for name in p.authors],
        dates=[p.published.isoformat() for p in papers if p.published],
        vectors=supplied.vectors[[row_of[p.id] for p in papers]],
        model=model,
        backend=backend,
    )
    del supplied
    return pool


@dataclass
class Chunk:
    """Consecutive synthetic papers: their JSONL records, vectors and parents' pool rows."""

    records: list[dict[str, object]]
    vectors: np.ndarray
    parents: np.ndarray


def paper_id(index: int) -> str:
    """The id of the ``index``-th synthetic paper (0-based): ``syn:0000001`` for the first."""
    return f"syn:{index + 1:07d}"


def generate(pool: Pool, start: int, count: int, seed: int) -> Iterator[Chunk]:
    """Papers ``start`` to ``start + count - 1``, in order, a chunk at a time."""
    sigma = noise_sigma(pool.vectors.shape[1])
    stop = start + count
    for chunk in range(start // CHUNK, (stop + CHUNK - 1) // CHUNK):
        first = chunk * CHUNK
        rng = np.random.default_rng([seed, chunk])
        parents = rng.integers(0, len(pool), CHUNK)
        noise = rng.standard_normal((CHUNK, pool.vectors.shape[1]), dtype=np.float32)
        date_rows = rng.integers(0, max(1, len(pool.dates)), CHUNK)
        text_rng = random.Random(int(rng.integers(0, 2**63)))
        records = [
            _record(pool, first + j, int(parents[j]), int(date_rows[j]), text_rng)
            for j in range(CHUNK)
        ]
        vectors = pool.vectors[parents] + np.float32(sigma) * noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        keep = slice(max(start, first) - first, min(stop, first + CHUNK) - first)
        yield Chunk(records[keep], vectors[keep], parents[keep])


def _record(
    pool: Pool, index: int, parent: int, date_row: int, rng: random.Random
) -> dict[str, object]:
    relatives = pool.by_category[parent]
    donors = [relatives[rng.randrange(len(relatives))] for _ in range(DONORS)]
    own = pool.sentences[parent]

    def lent() -> str:
        sentences = pool.sentences[donors[rng.randrange(DONORS)]]
        return sentences[rng.randrange(len(sentences))]

    sentences = [own[0]] + [s if rng.random() < KEEP else lent() for s in own[1:]]
    if sentences == own:  # never a copy of the parent's abstract
        sentences.append(lent())
    donor_words = [
        w for d in donors for w in pool.title_words[d] if _TITLE_WORD.match(w)
    ] or pool.title_words[parent]
    title = [
        donor_words[rng.randrange(len(donor_words))]
        if _TITLE_WORD.match(word) and rng.random() < TITLE_SWAP
        else word
        for word in pool.title_words[parent]
    ]
    names = pool.author_names
    authors = list(
        dict.fromkeys(names[rng.randrange(len(names))] for _ in range(pool.author_counts[parent]))
    )
    categories = pool.categories[parent]
    record: dict[str, object] = {
        "id": paper_id(index),
        "title": " ".join(title) or None,
        "abstract": " ".join(sentences),
        "authors": authors,
        "published": pool.dates[date_row] if pool.dates else None,
        "category": categories[0] if categories else None,
        # Read by papersearch's arXiv flavour; the plain flavour takes `category` (the primary).
        "categories": categories,
    }
    return record


def write_corpus(
    pool: Pool, out: Path, papers: int, seed: int, *, start: int = 0, progress: bool = True
) -> dict[str, object]:
    """Write papers ``start`` .. ``start + papers - 1`` into ``out``; returns the summary
    also written to ``out/synthetic.json``. Each file appears whole or not at all."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    dimension = pool.vectors.shape[1]
    ids: list[str] = []
    cosine_sum = 0.0
    descriptor, papers_tmp = tempfile.mkstemp(prefix=f".{PAPERS_FILE}.", suffix=".tmp", dir=out)
    try:
        # The vectors wait in a scratch file (1.5 GB at a million), not in memory: appended
        # chunk by chunk, then mapped read-only for write_vectors (clean pages, which the
        # kernel can drop, where a writable map would hold dirty ones).
        with tempfile.NamedTemporaryFile(prefix=".vectors.", suffix=".f32", dir=out) as scratch:
            bar = tqdm(total=papers, unit="paper", file=sys.stderr, disable=not progress)
            with os.fdopen(descriptor, "w", encoding="utf-8") as jsonl:
                for chunk in generate(pool, start, papers, seed):
                    jsonl.writelines(
                        json.dumps(r, ensure_ascii=False) + "\n" for r in chunk.records
                    )
                    scratch.write(np.ascontiguousarray(chunk.vectors, dtype=np.float32).data)
                    cosine_sum += float(
                        np.einsum("ij,ij->", chunk.vectors, pool.vectors[chunk.parents])
                    )
                    ids.extend(str(r["id"]) for r in chunk.records)
                    bar.update(len(chunk.records))
                jsonl.flush()
                os.fsync(jsonl.fileno())
            bar.close()
            scratch.flush()
            vectors = np.memmap(scratch, dtype=np.float32, mode="r", shape=(papers, dimension))
            write_vectors(out / VECTORS_FILE, ids, vectors, model=pool.model, backend=pool.backend)
            del vectors
        os.chmod(papers_tmp, 0o644)  # mkstemp's 0600 would hide the corpus from other users
        os.replace(papers_tmp, out / PAPERS_FILE)
    except BaseException:
        Path(papers_tmp).unlink(missing_ok=True)
        raise
    info: dict[str, object] = {
        "papers": papers,
        "start": start,
        "seed": seed,
        "pool_papers": len(pool),
        "model": pool.model,
        "backend": pool.backend,
        "target_cosine": TARGET_COSINE,
        "noise_sigma": noise_sigma(dimension),
        "mean_cosine_to_parent": cosine_sum / papers,
        "seconds": time.perf_counter() - started,
    }
    (out / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _at_least_zero(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arxiv", type=Path, required=True, help="arXiv JSONL (.gz) to draw from")
    parser.add_argument(
        "--real-vectors",
        type=Path,
        required=True,
        help="the arXiv papers' vectors (papersearch export-vectors of their index)",
    )
    parser.add_argument("--papers", type=_positive, required=True, help="how many to write")
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--seed", type=_at_least_zero, default=0)
    parser.add_argument(
        "--start", type=_at_least_zero, default=0, help="index of the first paper (0-based)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    for path in (args.arxiv, args.real_vectors):
        if not path.is_file():
            parser.error(f"{path} does not exist or is not a file")

    started = time.perf_counter()
    try:
        pool = load_pool(args.arxiv, args.real_vectors)
    except (InputError, VectorFileError) as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    print(f"pool: {len(pool)} real papers with vectors ({time.perf_counter() - started:.1f} s)")
    info = write_corpus(
        pool, args.out, args.papers, args.seed, start=args.start, progress=not args.quiet
    )
    size = (args.out / PAPERS_FILE).stat().st_size
    print(
        f"wrote {args.papers} papers ({paper_id(args.start)} to "
        f"{paper_id(args.start + args.papers - 1)}, {size / 2**20:.0f} MiB of JSONL) and their "
        f"vectors to {args.out}: mean cosine to parent {info['mean_cosine_to_parent']:.3f}, "
        f"{time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
