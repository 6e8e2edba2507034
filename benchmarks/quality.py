"""Benchmark: retrieval quality on BEIR SciFact, from scratch, for every figure in the README.

1. Modes. The SciFact corpus is indexed with the default model (cached embeddings make a
   rerun take seconds) and every train and test query is run through ``SearchEngine.search``,
   the code the API serves: ``lexical`` (BM25), ``dense``, and ``hybrid`` with reciprocal-rank
   fusion and with the min-max blend at several dense weights. The fusion and weight are
   chosen on train only; test is reported for all, so the choice can be checked.
2. Passages. Long abstracts split into overlapping windows of what the model reads (256
   tokens, half-window stride), a paper scoring its best window, against the default (the
   model reads the first 256 tokens). The windows are embedded once into the same embedding
   cache. Measured for dense ranking and inside the blend (weight tuned on train again).
3. Quality preset. all-mpnet-base-v2 against all-MiniLM-L6-v2: encode speed (docs/s on the
   same abstracts, same run), query encode latency, and quality on a SciFact subset (every
   paper judged for a test query plus random others, fixed seed), because embedding the whole
   corpus with mpnet takes most of an hour on two cores. Both models see the same subset.
4. Highlight and hybrid cost: in-process search latency of the default request (hybrid,
   highlights) against a dense-only request without highlights, interleaved, as a ratio.

Usage: ``python benchmarks/quality.py --scifact ../shared/data/scifact``
(``--skip-passages``/``--skip-quality-model`` leave out sections 2/3).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from indexing.build import build_index
from indexing.corpus import read_corpus
from indexing.embedding_cache import EmbeddingCache, text_hash
from indexing.lexical import analyse
from indexing.reader import PaperIndex
from indexing.records import Paper, embedding_text
from models import DEFAULT_MODEL, QUALITY_MODEL, Embedder, load_embedder
from service.evaluation import Qrels, evaluate, read_qrels, read_queries, score_run
from service.query_encoder import QueryEncoder
from service.ranking import Fusion, FusionConfig, SearchMode, hybrid_scores
from service.schemas import MAX_K, SearchRequest
from service.search import SearchEngine, limit_blas_threads
from service.settings import SEED_CAPTURE_DATE, Settings

BLEND_WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
RRF_K = 60
SUBSET_SEED = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scifact", type=Path, required=True, help="BEIR SciFact folder")
    parser.add_argument("--cache-dir", type=Path, default=Path("data/cache"))
    parser.add_argument("--work", type=Path, default=Path("data/bench"), help="indexes go here")
    parser.add_argument("--subset-size", type=int, default=1000)
    parser.add_argument("--skip-passages", action="store_true")
    parser.add_argument("--skip-quality-model", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quality.json"))
    args = parser.parse_args()

    splits = {
        "train": (read_queries(args.scifact / "queries_train.jsonl"), "qrels/train.tsv"),
        "test": (read_queries(args.scifact / "queries.jsonl"), "qrels/test.tsv"),
    }
    sets = {name: (q, read_qrels(args.scifact / rel)) for name, (q, rel) in splits.items()}
    # Each configuration reruns every query: the encoder's cache embeds each one once.
    embedder = QueryEncoder(load_embedder(DEFAULT_MODEL), cache_size=100_000)
    index_dir = _index(args.scifact, args.work / "scifact-minilm", args.cache_dir, DEFAULT_MODEL)
    index = PaperIndex.open(index_dir, model=DEFAULT_MODEL)

    results: dict[str, object] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "corpus": str(args.scifact),
        "papers": len(index),
    }
    results["modes"] = modes_section(index, embedder, sets)
    if not args.skip_passages:
        results["passages"] = passages_section(index, embedder.embedder, sets, args.cache_dir)
    if not args.skip_quality_model:
        results["quality_model"] = quality_model_section(
            args, sets["test"], load_embedder(DEFAULT_MODEL)
        )
    results["latency"] = latency_section(index, load_embedder(DEFAULT_MODEL), sets["test"][0])
    index.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {args.out}")


def _index(corpus: Path, index_dir: Path, cache_dir: Path, model: str) -> Path:
    report = build_index(
        [corpus],
        index_dir,
        cache_dir=cache_dir,
        model_name=model,
        load_model=load_embedder,
        capture_date=SEED_CAPTURE_DATE,
        skip_if_current=True,
    )
    print(report.summary())
    return index_dir


def _engine(
    index: PaperIndex, queries: QueryEncoder | Embedder, **settings: object
) -> SearchEngine:
    if not isinstance(queries, QueryEncoder):
        queries = QueryEncoder(queries)
    limit_blas_threads()  # as SearchEngine.load does for the service
    return SearchEngine(index, queries, Settings(index_dir=index.index_dir, **settings))


def _row(label: str, metrics: dict[str, float]) -> str:
    return f"  {label:<34}" + "".join(f"{value:>12.4f}" for value in metrics.values())


# --- 1. modes ----------------------------------------------------------------------------


def modes_section(index: PaperIndex, embedder: QueryEncoder, sets: dict) -> dict:
    configs: dict[str, dict[str, object]] = {
        "lexical (BM25)": {"search_mode": SearchMode.LEXICAL},
        "dense": {"search_mode": SearchMode.DENSE},
        f"hybrid rrf k={RRF_K}": {"fusion": Fusion.RRF, "rrf_k": RRF_K},
    }
    for weight in BLEND_WEIGHTS:
        configs[f"hybrid blend w={weight}"] = {"fusion": Fusion.BLEND, "dense_weight": weight}
    table: dict[str, dict[str, dict[str, float]]] = {}
    for label, settings in configs.items():
        engine = _engine(index, embedder, **settings)
        table[label] = {
            split: evaluate(engine, queries, qrels).metrics
            for split, (queries, qrels) in sets.items()
        }
    fused = [label for label in table if label.startswith("hybrid")]
    chosen = max(fused, key=lambda label: table[label]["train"]["nDCG@10"])
    default = Settings()
    shipped = (
        f"hybrid rrf k={default.rrf_k}"
        if default.fusion is Fusion.RRF
        else f"hybrid blend w={default.dense_weight}"
    )
    print(f"\n1. modes on SciFact ({len(index)} papers)")
    for split in ("train", "test"):
        print(f"  {split:<34}{'nDCG@10':>12}{'Recall@100':>12}{'MRR@10':>12}")
        for label, by_split in table.items():
            print(_row(label, by_split[split]))
    print(f"  best fusion on train: {chosen}; shipped default: {shipped}")
    return {"table": table, "chosen_on_train": chosen, "shipped_default": shipped}


# --- 2. passages -------------------------------------------------------------------------


def passages(paper: Paper, tokenizer: Callable, max_tokens: int) -> list[str]:
    """The default text, then windows of the rest of the abstract, half a window apart."""
    head = f"{paper.title}\n" if paper.title else ""
    budget = max_tokens - 2 - len(tokenizer(head, add_special_tokens=False)["input_ids"])
    offsets = tokenizer(paper.abstract, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    texts = [embedding_text(paper)]
    if len(offsets) <= budget:
        return texts
    stride, start = budget // 2, budget // 2
    while True:
        end = min(start + budget, len(offsets))
        texts.append(head + paper.abstract[offsets[start][0] : offsets[end - 1][1]])
        if end >= len(offsets):
            return texts
        start += stride


def passages_section(index: PaperIndex, embedder: Embedder, sets: dict, cache_dir: Path) -> dict:
    papers = index.papers_at(list(range(len(index))))
    model = embedder.model  # its tokenizer decides where windows fall
    windows = [passages(p, model.tokenizer, model.max_seq_length) for p in papers]
    flat = [text for group in windows for text in group]
    cache = EmbeddingCache(cache_dir)
    hashes = [text_hash(text) for text in flat]
    found = cache.get_many(embedder.name, hashes)
    missing = [(h, t) for h, t in dict(zip(hashes, flat, strict=True)).items() if h not in found]
    started = time.perf_counter()
    for start in range(0, len(missing), 128):
        chunk = missing[start : start + 128]
        vectors = embedder.encode([text for _, text in chunk])
        cache.put_many(embedder.name, zip([h for h, _ in chunk], vectors, strict=True))
        found.update(zip([h for h, _ in chunk], vectors, strict=True))
    cache.close()
    print(f"\n2. passages: {len(flat)} windows for {len(papers)} papers "
          f"({len(missing)} embedded in {time.perf_counter() - started:.0f} s)")  # fmt: skip
    matrix = np.stack([found[h] for h in hashes])
    starts = np.cumsum([0] + [len(group) for group in windows])[:-1]
    ids = [p.id for p in papers]

    def run_of(scores_of: Callable[[str], np.ndarray], queries: dict, qrels: Qrels) -> dict:
        judged = [q for q in qrels if q in queries]
        run = {}
        for query_id in judged:
            scores = scores_of(queries[query_id])
            top = np.argsort(-scores, kind="stable")[:MAX_K]
            run[query_id] = {ids[row]: float(MAX_K - rank) for rank, row in enumerate(top)}
        return score_run(run, qrels, judged)

    query_vectors: dict[str, np.ndarray] = {}

    def best_window(query: str) -> np.ndarray:
        if query not in query_vectors:
            query_vectors[query] = embedder.encode([query])[0]
        return np.maximum.reduceat(matrix @ query_vectors[query], starts)

    table: dict[str, dict[str, dict[str, float]]] = {}
    table["dense, best window"] = {s: run_of(best_window, *sets[s]) for s in sets}
    for weight in BLEND_WEIGHTS:
        config = FusionConfig(Fusion.BLEND, dense_weight=weight)

        def blended(query: str, config: FusionConfig = config) -> np.ndarray:
            dense, lexical = best_window(query), index.lexical.scores(analyse(query))
            return hybrid_scores(
                dense,
                lexical,
                config,
                dense_range=(float(dense.min()), float(dense.max())),
                lexical_max=float(lexical.max()),
            )

        table[f"hybrid blend w={weight}, best window"] = {
            s: run_of(blended, *sets[s]) for s in sets
        }
    fused = [label for label in table if label.startswith("hybrid")]
    chosen = max(fused, key=lambda label: table[label]["train"]["nDCG@10"])
    for split in ("train", "test"):
        print(f"  {split:<34}{'nDCG@10':>12}{'Recall@100':>12}{'MRR@10':>12}")
        for label, by_split in table.items():
            print(_row(label, by_split[split]))
    print(f"  best passage blend on train: {chosen}")
    return {
        "windows": len(flat),
        "papers_with_more_than_one_window": int(sum(len(g) > 1 for g in windows)),
        "table": table,
        "chosen_on_train": chosen,
    }


# --- 3. quality preset -------------------------------------------------------------------


def write_subset(scifact: Path, qrels: Qrels, size: int, folder: Path) -> Path:
    """Every paper judged for a test query, plus random others up to ``size`` (fixed seed)."""
    lines = (scifact / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    judged = {doc for docs in qrels.values() for doc in docs}
    keep = [line for line in lines if json.loads(line)["_id"] in judged]
    others = [line for line in lines if json.loads(line)["_id"] not in judged]
    keep += random.Random(SUBSET_SEED).sample(others, max(0, size - len(keep)))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("\n".join(keep) + "\n", encoding="utf-8")
    return folder


def quality_model_section(args: argparse.Namespace, test: tuple, minilm: Embedder) -> dict:
    queries, qrels = test
    subset = write_subset(args.scifact, qrels, args.subset_size, args.work / "scifact-subset")
    sample = [embedding_text(p) for p in read_corpus([subset], SEED_CAPTURE_DATE).papers[:64]]
    query_sample = list(queries.values())[:50]
    mpnet = load_embedder(QUALITY_MODEL)
    out: dict[str, dict[str, object]] = {}
    for embedder in (minilm, mpnet):
        embedder.encode(sample[:8])  # warm-up
        started = time.perf_counter()
        embedder.encode(sample)
        docs_per_s = len(sample) / (time.perf_counter() - started)
        query_ms = []
        for query in query_sample:
            started = time.perf_counter()
            embedder.encode([query])
            query_ms.append((time.perf_counter() - started) * 1000)
        index_dir = _index(subset, args.work / f"subset-{embedder.name}", args.cache_dir,
                           embedder.name)  # fmt: skip
        index = PaperIndex.open(index_dir, model=embedder.name)
        metrics = {}
        for mode in (SearchMode.DENSE, SearchMode.HYBRID):
            engine = _engine(index, embedder, model=embedder.name, search_mode=mode)
            metrics[mode.value] = evaluate(engine, queries, qrels).metrics
        index.close()
        out[embedder.name] = {
            "docs_per_s": round(docs_per_s, 2),
            "query_encode_ms_median": round(statistics.median(query_ms), 2),
            "dimension": embedder.dimension,
            "max_seq_length": embedder.model.max_seq_length,
            **metrics,
        }
    print(f"\n3. quality preset on a {args.subset_size}-paper SciFact subset (test queries)")
    print(f"  {'model':<22}{'docs/s':>8}{'query ms':>10}{'dense nDCG':>12}{'hybrid nDCG':>13}"
          f"{'hybrid R@100':>14}")  # fmt: skip
    for name, row in out.items():
        print(
            f"  {name:<22}{row['docs_per_s']:>8.1f}{row['query_encode_ms_median']:>10.1f}"
            f"{row['dense']['nDCG@10']:>12.4f}{row['hybrid']['nDCG@10']:>13.4f}"
            f"{row['hybrid']['Recall@100']:>14.4f}"
        )
    return {"subset_size": args.subset_size, "subset_seed": SUBSET_SEED, "models": out}


# --- 4. latency of the default request ---------------------------------------------------


def latency_section(index: PaperIndex, embedder: Embedder, queries: dict[str, str]) -> dict:
    engine = _engine(index, embedder)
    texts = list(queries.values())[:100]
    requests = {
        "dense, no highlights": lambda q: SearchRequest(q=q, mode="dense", highlight=False),
        "hybrid + highlights (default)": lambda q: SearchRequest(q=q),
    }
    timings: dict[str, list[float]] = {name: [] for name in requests}
    for make in requests.values():  # warm-up
        for text in texts[:10]:
            engine.search(make(text))
    for block in range(0, len(texts), 20):  # interleaved blocks: noise lands on both
        for name, make in requests.items():
            for text in texts[block : block + 20]:
                started = time.perf_counter()
                engine.search(make(text))
                timings[name].append((time.perf_counter() - started) * 1000)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    ratio = medians["hybrid + highlights (default)"] / medians["dense, no highlights"]
    print(f"\n4. in-process latency, k=10, {len(texts)} SciFact queries, {len(index)} papers")
    for name, value in medians.items():
        print(f"  {name:<34}{value:>8.2f} ms median")
    print(f"  ratio default / dense-only: {ratio:.3f}")
    return {"median_ms": medians, "ratio_default_over_dense_only": round(ratio, 3)}


if __name__ == "__main__":
    main()
