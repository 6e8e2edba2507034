"""Benchmark: the indexing job against a bare encode, and the torch and ONNX int8 backends.

For each backend, in this one process, on the same SciFact abstracts (``--docs``, default 1000):

1. Bare limit: ``encode`` of the texts the indexer embeds, model loaded and warmed up.
2. The indexing job: ``build_index`` of those papers with an empty embedding cache and the
   same loaded model (so both sides exclude the model load): parse, hash, embed, cache,
   BM25, sentence offsets, the index write. Target: at least 0.95x the bare docs/s.
3. A rerun of the job on the unchanged corpus: what `papersearch index` costs when nothing
   changed, as a fraction of the cold build. Target: at most 5%.
4. Query latency: median and p95 of embedding one query, over the SciFact test queries.

Then retrieval quality of each backend on the full SciFact test split (nDCG@10, Recall@100),
through the same evaluation as ``papersearch eval`` (indexes kept in ``--work``). The ONNX
target is at least 2x the torch docs/s with at most 0.005 lower nDCG@10.

Usage: ``python benchmarks/encoders.py --scifact ../shared/data/scifact``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_and_query import machine_info

from indexing.build import build_index
from indexing.corpus import read_corpus
from indexing.records import embedding_text
from models import BACKENDS, DEFAULT_MODEL, load_embedder
from service.evaluation import evaluate, read_qrels, read_queries
from service.search import SearchEngine
from service.settings import SEED_CAPTURE_DATE, Settings


def subset_corpus(scifact: Path, count: int, target: Path) -> Path:
    lines = (scifact / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:count]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def backend_section(backend: str, corpus: Path, queries: list[str], work: Path) -> dict:
    embedder = load_embedder(DEFAULT_MODEL, backend)
    texts = [embedding_text(p) for p in read_corpus([corpus], SEED_CAPTURE_DATE).papers]
    embedder.encode(texts[:32])  # warm-up
    started = time.perf_counter()
    embedder.encode(texts, batch_size=32)
    bare = time.perf_counter() - started

    def build(cache: Path, index: Path) -> float:
        started = time.perf_counter()
        build_index(
            [corpus],
            index,
            cache_dir=cache,
            model_name=DEFAULT_MODEL,
            load_model=lambda *_: embedder,
            capture_date=SEED_CAPTURE_DATE,
            progress=False,
            skip_if_current=True,
            backend=backend,
        )
        return time.perf_counter() - started

    cold = build(work / f"cache-{backend}", work / f"index-{backend}")
    rerun = build(work / f"cache-{backend}", work / f"index-{backend}")

    latencies = []
    for query in queries:
        started = time.perf_counter()
        embedder.encode([query])
        latencies.append((time.perf_counter() - started) * 1e3)
    return {
        "docs": len(texts),
        "bare_docs_per_s": len(texts) / bare,
        "job_docs_per_s": len(texts) / cold,
        "job_over_bare": bare / cold,
        "rerun_seconds": rerun,
        "rerun_over_cold": rerun / cold,
        "query_ms_median": statistics.median(latencies),
        "query_ms_p95": float(np.percentile(latencies, 95)),
    }


def quality_section(backend: str, scifact: Path, cache_dir: Path, work: Path) -> dict:
    index_dir = work / f"scifact-{backend}"
    build_index(
        [scifact],
        index_dir,
        cache_dir=cache_dir,
        model_name=DEFAULT_MODEL,
        load_model=load_embedder,
        capture_date=SEED_CAPTURE_DATE,
        skip_if_current=True,
        backend=backend,
        progress=False,
    )
    engine = SearchEngine.load(
        Settings(index_dir=index_dir, backend=backend, query_cache_size=0, cache_dir=cache_dir)
    )
    try:
        queries = read_queries(scifact / "queries.jsonl")
        qrels = read_qrels(scifact / "qrels" / "test.tsv")
        report = evaluate(engine, queries, qrels, {})
        dense = evaluate(engine, queries, qrels, {"mode": "dense"})
    finally:
        engine.close()
    return {"hybrid": report.metrics, "dense": dense.metrics}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scifact", type=Path, required=True)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--cache-dir", type=Path, default=Path("data/cache"))
    parser.add_argument("--work", type=Path, default=Path("data/bench"))
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/encoders.json"))
    args = parser.parse_args()

    queries = list(read_queries(args.scifact / "queries.jsonl").values())[:200]
    results: dict = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "model": DEFAULT_MODEL,
    }
    with tempfile.TemporaryDirectory(prefix="papersearch-encoders-") as scratch:
        corpus = subset_corpus(args.scifact, args.docs, Path(scratch) / "corpus.jsonl")
        results["speed"] = {b: backend_section(b, corpus, queries, Path(scratch)) for b in BACKENDS}
    if not args.skip_quality:
        results["scifact_test"] = {
            b: quality_section(b, args.scifact, args.cache_dir, args.work) for b in BACKENDS
        }

    torch, onnx = (results["speed"][b] for b in BACKENDS)
    results["ratios"] = {
        "onnx docs/s over torch (bare encode)": onnx["bare_docs_per_s"] / torch["bare_docs_per_s"],
        "onnx docs/s over torch (indexing job)": onnx["job_docs_per_s"] / torch["job_docs_per_s"],
        "onnx query median over torch": onnx["query_ms_median"] / torch["query_ms_median"],
    }
    print(f"{'backend':<11}{'bare docs/s':>12}{'job docs/s':>12}{'job/bare':>10}"
          f"{'rerun/cold':>12}{'query ms':>10}")  # fmt: skip
    for backend, row in results["speed"].items():
        print(
            f"{backend:<11}{row['bare_docs_per_s']:>12.1f}{row['job_docs_per_s']:>12.1f}"
            f"{row['job_over_bare']:>10.3f}{row['rerun_over_cold']:>12.4f}"
            f"{row['query_ms_median']:>10.1f}"
        )
    for backend, quality in results.get("scifact_test", {}).items():
        hybrid, dense = quality["hybrid"], quality["dense"]
        print(
            f"{backend:<11} SciFact test hybrid nDCG@10 {hybrid['nDCG@10']:.4f} "
            f"Recall@100 {hybrid['Recall@100']:.4f}; dense nDCG@10 {dense['nDCG@10']:.4f}"
        )
    for name, value in results["ratios"].items():
        print(f"{name}: {value:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
