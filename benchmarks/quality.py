"""Benchmark: retrieval quality, from scratch, for every figure of the README's quality table.

Three judged sets go through the same ``evaluate()`` (``papersearch eval``'s code): BEIR
SciFact train and test, and a known-item set no ranking was tuned on (1,000 arXiv papers,
each one's first abstract sentence as its query, at 74,728 papers: ``known_item.py``).
Choices are made on SciFact train only; test and known-item check them.

1. Modes. The SciFact corpus and the arXiv file are indexed with the default model (cached
   embeddings: nothing is embedded again) and every query runs through
   ``SearchEngine.search``, the code the API serves: ``lexical`` (BM25), ``dense``, ``hybrid``
   with reciprocal-rank fusion, with the min-max blend at several dense weights (0.6 is the
   default), and with learned fusion (``fusion=learned``: the blend's top 100 reordered by
   the shipped LambdaMART model). The model was trained on SciFact train, so its train
   figure is in-sample; the cross-validated one (``benchmarks/results/ranker.json``) is
   printed beside it.
2. Passages. Long abstracts split into overlapping windows of what the model reads, a paper
   scoring its best window, against the default (the first 256 tokens); for dense ranking and
   inside the blend (weight tuned on train again). SciFact only: embedding the windows of
   75k papers would take most of an hour on two cores. The windows are embedded once into the
   embedding cache, with the default backend.
3. Pseudo-relevance feedback (``feedback.py``): Rocchio on the query vector, RM3 on BM25, and
   both, in the blend; chosen on train, on every set, with the added latency at 75k papers.
4. Quality preset. all-mpnet-base-v2 against all-MiniLM-L6-v2 on the full SciFact corpus
   (the default backend, onnx-int8; both models' vectors are in the cache): encode speed and
   query encode latency (interleaved), and dense and blend quality on train and test.
5. Latency: in-process search latency of the default request (hybrid, highlights) with
   ``fusion=blend`` (the default) and with ``fusion=learned``, and of a dense-only request
   without highlights, interleaved, on SciFact and at 75k papers, as ratios.

Usage: ``python benchmarks/quality.py --scifact ../shared/data/scifact``
(``--skip-arxiv``/``--skip-passages``/``--skip-quality-model`` leave out the known-item set,
section 2 and section 4; with all three the run takes a couple of minutes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feedback import feedback_section
from files import write_atomically
from known_item import write_known_item_set

from indexing.build import build_index
from indexing.corpus import read_corpus
from indexing.embedding_cache import EmbeddingCache, text_hash
from indexing.errors import PapersearchError
from indexing.lexical import analyse
from indexing.reader import PaperIndex
from indexing.records import Paper, embedding_text
from models import DEFAULT_MODEL, QUALITY_MODEL, Embedder, load_embedder, vector_space
from service.evaluation import Qrels, evaluate, read_qrels, read_queries, score_run
from service.query_encoder import QueryEncoder
from service.ranking import Fusion, FusionConfig, SearchMode, hybrid_scores
from service.schemas import MAX_K, SearchRequest
from service.search import SearchEngine, limit_blas_threads
from service.settings import SEED_CAPTURE_DATE, Settings

BLEND_WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
RRF_K = 60
LEARNED = "hybrid learned"
LATENCY_QUERIES = 100
WARM_UPS = 10
METRICS_HEADER = f"{'nDCG@10':>12}{'Recall@100':>12}{'MRR@10':>12}"

# A judged set: its queries, its judgments, and the index they are judged over.
JudgedSet = tuple[dict[str, str], Qrels, PaperIndex]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scifact", type=Path, required=True, help="BEIR SciFact folder")
    parser.add_argument(
        "--arxiv",
        type=Path,
        default=Path("../shared/data/arxiv/arxiv-75k.jsonl.gz"),
        help="the arXiv file the known-item set is drawn from and indexed",
    )
    parser.add_argument("--known-item-count", type=int, default=1000)
    parser.add_argument("--cache-dir", type=Path, default=Path("data/cache"))
    parser.add_argument("--work", type=Path, default=Path("data/bench"), help="indexes go here")
    parser.add_argument(
        "--ranker-report",
        type=Path,
        default=Path("benchmarks/results/ranker.json"),
        help="train_ranker.py's report: the learned fusion's cross-validated figure",
    )
    parser.add_argument("--skip-arxiv", action="store_true", help="leave out the known-item set")
    parser.add_argument("--skip-passages", action="store_true")
    parser.add_argument("--skip-quality-model", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quality.json"))
    args = parser.parse_args()
    needed = [args.scifact / name for name in ("corpus.jsonl", "queries.jsonl")]
    needed += [args.scifact / name for name in ("queries_train.jsonl", "qrels/train.tsv")]
    needed += [args.scifact / "qrels/test.tsv"] + ([] if args.skip_arxiv else [args.arxiv])
    for path in needed:
        if not path.is_file():
            parser.error(f"{path}: no such file")
    if args.known_item_count < 1:
        parser.error(f"--known-item-count must be at least 1, not {args.known_item_count}")
    try:
        run(args)
    except (PapersearchError, OSError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")


def run(args: argparse.Namespace) -> None:
    # Each configuration reruns every query: the encoder's cache embeds each one once.
    embedder = QueryEncoder(load_embedder(DEFAULT_MODEL), cache_size=100_000)
    index_dir = _index(args.scifact, args.work / "scifact-minilm", args.cache_dir, DEFAULT_MODEL)
    index = PaperIndex.open(index_dir, model=DEFAULT_MODEL)
    sets: dict[str, JudgedSet] = {
        "train": (
            read_queries(args.scifact / "queries_train.jsonl"),
            read_qrels(args.scifact / "qrels/train.tsv"),
            index,
        ),
        "test": (
            read_queries(args.scifact / "queries.jsonl"),
            read_qrels(args.scifact / "qrels/test.tsv"),
            index,
        ),
    }
    arxiv = None
    if not args.skip_arxiv:
        known = write_known_item_set(
            args.arxiv, args.work / "known-item", count=args.known_item_count, seed=0
        )
        arxiv_dir = _index(args.arxiv, args.work / "arxiv-75k-minilm", args.cache_dir,
                           DEFAULT_MODEL)  # fmt: skip
        arxiv = PaperIndex.open(arxiv_dir, model=DEFAULT_MODEL)
        sets["known-item"] = (read_queries(known.queries), read_qrels(known.qrels), arxiv)

    results: dict[str, object] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": DEFAULT_MODEL,
        "backend": embedder.embedder.backend,
        "sets": {
            name: {"queries": len([q for q in qrels if q in queries]), "papers": len(idx)}
            for name, (queries, qrels, idx) in sets.items()
        },
        "corpus": str(args.scifact),
        "papers": len(index),
    }
    if arxiv is not None:
        results["known_item"] = {
            "corpus": str(args.arxiv),
            "count": args.known_item_count,
            "seed": 0,
            "query": "each paper's first abstract sentence; that paper the one relevant",
        }
    results["modes"] = modes_section(sets, embedder, args.ranker_report)
    if args.skip_passages:
        print("\n2. passages: skipped (--skip-passages)")
    else:
        scifact_sets = {name: sets[name][:2] for name in ("train", "test")}
        results["passages"] = passages_section(
            index, embedder.embedder, scifact_sets, args.cache_dir
        )
    timing_queries = list(sets["test"][0].values())
    results["feedback"] = feedback_section(sets, embedder, timing_queries)
    if args.skip_quality_model:
        print("\n4. quality preset: skipped (--skip-quality-model)")
    else:
        results["quality_model"] = quality_model_section(args, index, sets, embedder.embedder)
    test_texts = list(sets["test"][0].values())
    latency: dict[str, object] = {
        "scifact": latency_section("SciFact test queries", index, embedder.embedder, test_texts)
    }
    if arxiv is not None:
        known_texts = list(sets["known-item"][0].values())
        latency["arxiv"] = latency_section(
            "known-item queries on the arXiv index", arxiv, embedder.embedder, known_texts
        )
    results["latency"] = latency
    index.close()
    if arxiv is not None:
        arxiv.close()
    write_atomically(args.out, (json.dumps(results, indent=2) + "\n").encode())
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


def cross_validated(report: Path) -> dict[str, object] | None:
    """The learned fusion's 5-fold cross-validated train nDCG@10 at the size it was trained
    with: its train figure here is in-sample, since it was fitted on all of train."""
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        chosen = data["chosen"]
        size = f"{chosen['leaves']} leaves, {chosen['trees']} trees"
        return {
            "size": size,
            "nDCG@10": data["cross_validated_ndcg10"][size],
            "report": str(report),
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None


def modes_section(sets: dict[str, JudgedSet], embedder: QueryEncoder, ranker_report: Path) -> dict:
    configs: dict[str, dict[str, object]] = {
        "lexical (BM25)": {"search_mode": SearchMode.LEXICAL},
        "dense": {"search_mode": SearchMode.DENSE},
        f"hybrid rrf k={RRF_K}": {"fusion": Fusion.RRF, "rrf_k": RRF_K},
    }
    for weight in BLEND_WEIGHTS:
        configs[f"hybrid blend w={weight}"] = {"fusion": Fusion.BLEND, "dense_weight": weight}
    configs[LEARNED] = {"fusion": Fusion.LEARNED}  # the shipped model (Settings.ranker unset)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for label, settings in configs.items():
        engines: dict[int, SearchEngine] = {}
        table[label] = {}
        for name, (queries, qrels, index) in sets.items():
            if id(index) not in engines:
                engines[id(index)] = _engine(index, embedder, **settings)
            table[label][name] = evaluate(engines[id(index)], queries, qrels).metrics
    # The learned fusion's train figure is in-sample: the hand-tuned fusions are chosen among.
    fused = [label for label in table if label.startswith("hybrid") and label != LEARNED]
    chosen = max(fused, key=lambda label: table[label]["train"]["nDCG@10"])
    default = Settings()
    shipped = {
        Fusion.LEARNED: LEARNED,
        Fusion.RRF: f"hybrid rrf k={default.rrf_k}",
        Fusion.BLEND: f"hybrid blend w={default.dense_weight}",
    }[default.fusion]
    validated = cross_validated(ranker_report)
    sizes = ", ".join(f"{name} {len(index)} papers" for name, (_, _, index) in sets.items())
    print(f"\n1. modes ({sizes})")
    for name in sets:
        print(f"  {name:<34}{METRICS_HEADER}")
        for label, by_set in table.items():
            suffix = (
                "  (in-sample: trained on train)" if name == "train" and label == LEARNED else ""
            )
            print(_row(label, by_set[name]) + suffix)
    if validated is None:
        print(f"  learned, train, cross-validated: not available ({ranker_report} unreadable)")
    else:
        print(
            f"  learned, train nDCG@10 cross-validated (5 folds, {validated['size']}): "
            f"{validated['nDCG@10']:.4f}; in-sample {table[LEARNED]['train']['nDCG@10']:.4f}"
        )
    print(f"  best hand-tuned fusion on train: {chosen}; shipped default: {shipped}")
    return {
        "table": table,
        "learned_train": {
            "in_sample": table[LEARNED]["train"],
            "cross_validated_ndcg10": validated,
        },
        "chosen_on_train": chosen,
        "shipped_default": shipped,
    }


# --- 2. passages -------------------------------------------------------------------------


# A text's tokens as (start, end) character offsets, without the model's special tokens.
Offsets = Callable[[str], list[tuple[int, int]]]


def window_tokenizer(embedder: Embedder) -> tuple[Offsets, int]:
    """How the model tokenizes a text, and how many of its tokens one window holds (the
    model's limit less its special tokens): the windows must fall where the model cuts."""
    model = getattr(embedder, "model", None)
    if model is not None:  # torch: the sentence-transformers model's own tokenizer
        tokenizer = model.tokenizer

        def offsets(text: str) -> list[tuple[int, int]]:
            encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            return list(encoded["offset_mapping"])

        return offsets, model.max_seq_length - 2
    # onnx-int8: the export's tokenizer, untruncated, as models.long_text reads long texts
    long_text = embedder._long_tokenizer  # type: ignore[attr-defined]
    plain = long_text._tokenizer

    def onnx_offsets(text: str) -> list[tuple[int, int]]:
        return list(plain.encode(text, add_special_tokens=False).offsets)

    return onnx_offsets, long_text.window_size


def max_tokens(embedder: Embedder) -> int:
    """The tokens the model reads of a text, its special tokens included."""
    model = getattr(embedder, "model", None)
    if model is not None:
        return int(model.max_seq_length)
    long_text = embedder._long_tokenizer  # type: ignore[attr-defined]
    return int(long_text.window_size + len(long_text.wrap([])))


def passages(paper: Paper, offsets_of: Offsets, window: int) -> list[str]:
    """The default text, then windows of the rest of the abstract, half a window apart."""
    head = f"{paper.title}\n" if paper.title else ""
    budget = window - len(offsets_of(head))
    offsets = offsets_of(paper.abstract)
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
    offsets_of, window = window_tokenizer(embedder)  # the model decides where windows fall
    windows = [passages(p, offsets_of, window) for p in papers]
    flat = [text for group in windows for text in group]
    cache = EmbeddingCache(cache_dir)
    space = vector_space(embedder.name, embedder.backend)  # the cache key the index uses
    hashes = [text_hash(text) for text in flat]
    found = cache.get_many(space, hashes)
    missing = [(h, t) for h, t in dict(zip(hashes, flat, strict=True)).items() if h not in found]
    started = time.perf_counter()
    for start in range(0, len(missing), 128):
        chunk = missing[start : start + 128]
        vectors = embedder.encode([text for _, text in chunk])
        cache.put_many(space, zip([h for h, _ in chunk], vectors, strict=True))
        found.update(zip([h for h, _ in chunk], vectors, strict=True))
    cache.close()
    print(f"\n2. passages ({embedder.name}, {embedder.backend}), SciFact only: embedding the "
          f"windows of 75k papers would take most of an hour on two cores\n"
          f"  {len(flat)} windows for {len(papers)} papers "
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
        print(f"  {split:<34}{METRICS_HEADER}")
        for label, by_split in table.items():
            print(_row(label, by_split[split]))
    print(f"  best passage blend on train: {chosen}")
    return {
        "backend": embedder.backend,
        "windows": len(flat),
        "embedded_now": len(missing),
        "papers_with_more_than_one_window": int(sum(len(g) > 1 for g in windows)),
        "not_measured": "known-item at 75k papers: embedding its windows takes most of an hour",
        "table": table,
        "chosen_on_train": chosen,
    }


# --- 4. quality preset -------------------------------------------------------------------


def quality_model_section(
    args: argparse.Namespace, minilm_index: PaperIndex, sets: dict, minilm: Embedder
) -> dict:
    """Both models on the full SciFact corpus; speed measured interleaved, so load on the
    machine lands on both alike."""
    sample = [embedding_text(p) for p in read_corpus([args.scifact], SEED_CAPTURE_DATE).papers[:64]]
    query_sample = list(sets["test"][0].values())[:50]
    mpnet = load_embedder(QUALITY_MODEL)
    models = (minilm, mpnet)
    seconds = dict.fromkeys((m.name for m in models), 0.0)
    query_ms: dict[str, list[float]] = {m.name: [] for m in models}
    for model in models:  # warm-up
        model.encode(sample[:8])
    for _ in range(3):
        for model in models:
            started = time.perf_counter()
            model.encode(sample)
            seconds[model.name] += time.perf_counter() - started
    for query in query_sample:
        for model in models:
            started = time.perf_counter()
            model.encode([query])
            query_ms[model.name].append((time.perf_counter() - started) * 1000)
    mpnet_dir = _index(args.scifact, args.work / "scifact-mpnet", args.cache_dir, QUALITY_MODEL)
    mpnet_index = PaperIndex.open(mpnet_dir, model=QUALITY_MODEL)
    configs = {
        "dense": {"search_mode": SearchMode.DENSE},
        "hybrid blend w=0.6": {"fusion": Fusion.BLEND, "dense_weight": 0.6},
    }
    out: dict[str, dict[str, object]] = {}
    for model, index in ((minilm, minilm_index), (mpnet, mpnet_index)):
        queries = QueryEncoder(model, cache_size=100_000)  # each query encoded once per model
        metrics: dict[str, dict[str, dict[str, float]]] = {}
        for label, settings in configs.items():
            engine = _engine(index, queries, model=model.name, **settings)
            metrics[label] = {
                name: evaluate(engine, sets[name][0], sets[name][1]).metrics
                for name in ("train", "test")
            }
        out[model.name] = {
            "backend": model.backend,
            "papers": len(index),
            "docs_per_s": round(3 * len(sample) / seconds[model.name], 2),
            "query_encode_ms_median": round(statistics.median(query_ms[model.name]), 2),
            "dimension": model.dimension,
            "max_seq_length": max_tokens(model),
            **metrics,
        }
    mpnet_index.close()
    print(f"\n4. quality preset on the full SciFact corpus ({len(minilm_index)} papers, "
          f"{minilm.backend}; speed interleaved, noisy: shared CPUs)")  # fmt: skip
    print(f"  {'model':<20}{'docs/s':>8}{'query ms':>10}  "
          f"{'dense train':>12}{'dense test':>11}{'blend train':>12}{'blend test':>11}"
          f"{'blend R@100':>12}")  # fmt: skip
    for name, row in out.items():
        dense, hybrid = row["dense"], row["hybrid blend w=0.6"]
        assert isinstance(dense, dict) and isinstance(hybrid, dict)
        print(
            f"  {name:<20}{row['docs_per_s']:>8.1f}{row['query_encode_ms_median']:>10.1f}  "
            f"{dense['train']['nDCG@10']:>12.4f}{dense['test']['nDCG@10']:>11.4f}"
            f"{hybrid['train']['nDCG@10']:>12.4f}{hybrid['test']['nDCG@10']:>11.4f}"
            f"{hybrid['test']['Recall@100']:>12.4f}"
        )
    not_measured = {
        "learned fusion": "not applicable: its model was trained on MiniLM's scores",
        "known-item": "skipped: embedding 75k papers with mpnet would take hours on two cores",
    }
    for what, why in not_measured.items():
        print(f"  {what}: {why}")
    return {"corpus": str(args.scifact), "models": out, "not_measured": not_measured}


# --- 5. latency of the default request ---------------------------------------------------


def latency_section(where: str, index: PaperIndex, embedder: Embedder, texts: list[str]) -> dict:
    """Medians of interleaved blocks, so noise from other work lands on every request.

    Each request has its own engine and an encoder that caches nothing: with a shared
    encoder, a request timed right after another with the same query would find its vector
    cached and skip the encode, the largest part of a search.
    """

    def engine(**settings: object) -> SearchEngine:
        return _engine(index, QueryEncoder(embedder, cache_size=0), **settings)

    dense, blend, learned = engine(), engine(fusion=Fusion.BLEND), engine(fusion=Fusion.LEARNED)
    texts = texts[:LATENCY_QUERIES]
    requests: dict[str, Callable[[str], object]] = {
        "dense, no highlights": lambda q: dense.search(
            SearchRequest(q=q, mode="dense", highlight=False)
        ),
        "hybrid blend + highlights": lambda q: blend.search(SearchRequest(q=q)),
        "hybrid learned + highlights": lambda q: learned.search(SearchRequest(q=q)),
    }
    timings: dict[str, list[float]] = {name: [] for name in requests}
    for search in requests.values():  # warm-up
        for text in texts[:WARM_UPS]:
            search(text)
    for block in range(0, len(texts), 20):
        for name, search in requests.items():
            for text in texts[block : block + 20]:
                started = time.perf_counter()
                search(text)
                timings[name].append((time.perf_counter() - started) * 1000)
    medians = {name: round(statistics.median(values), 3) for name, values in timings.items()}
    slowest = medians["hybrid learned + highlights"]
    ratios = {
        "learned_over_blend": round(slowest / medians["hybrid blend + highlights"], 3),
        "learned_over_dense_only": round(slowest / medians["dense, no highlights"], 3),
    }
    print(f"\n5. in-process latency, {where}: k=10, {len(texts)} queries, {len(index)} papers "
          f"(noisy: shared CPUs)")  # fmt: skip
    for name, value in medians.items():
        print(f"  {name:<40}{value:>8.2f} ms median")
    print(
        f"  learned / blend: {ratios['learned_over_blend']:.3f} (the bar: at most 1.2); "
        f"learned / dense-only: {ratios['learned_over_dense_only']:.3f}; the default "
        f"request is the {Settings().fusion.value} one"
    )
    return {
        "papers": len(index),
        "queries": len(texts),
        "default_fusion": Settings().fusion.value,
        "median_ms": medians,
        **ratios,
    }


if __name__ == "__main__":
    main()
