"""Benchmark: papers like a paper, and like a set of examples, on sets someone judged.

Judged sets:
- SciFact: the papers that answer the same claim (qrels with two or more papers for one
  claim). "Like a paper": each such paper asks for papers like it; the claim's other papers
  are the relevant ones. "Like examples": claims with three or more papers give their first
  two as positives, the rest are relevant. Train and test splits are reported apart (a choice
  is made on train and checked on test).
- The seeds: a paper's category. "Like a paper": the share of its ten most similar papers in
  its own category. "Like examples": for each category with six or more papers, its first
  three (by id) as positives, its others relevant.

Compared: ranking by the vector alone (``dense``) against the vector fused with the
examples' key terms through BM25 (``hybrid``, as a search fuses); for examples, Qdrant's
average-vector strategy (what ``SearchEngine.recommend`` does) against best-score (each
candidate scored by its best similarity to any positive), both by the vector alone.

Latency (``--latency-index``, e.g. the 75k arXiv index): in-process medians of a default
search, papers like a 2,000-character text, like two examples and like one paper, each call
on other inputs (no cache helps), interleaved, as ratios to the search in the same run.

Usage: ``python benchmarks/similar_quality.py --scifact ../shared/data/scifact
--scifact-index data/eval/scifact-default --seed-index data/index
[--latency-index data/arxiv-index]``
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from service.evaluation import Qrels, read_qrels, score_run
from service.ranking import SearchMode, best_first
from service.schemas import RecommendRequest, SearchRequest, SimilarTextRequest
from service.search import SearchEngine
from service.settings import Settings

DEPTH = 100  # results per query, for Recall@100
RESULTS = Path("benchmarks/results/similar_quality.json")
WARM_UP_ROUNDS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scifact", type=Path, required=True, help="BEIR SciFact folder")
    parser.add_argument("--scifact-index", type=Path, required=True)
    parser.add_argument("--seed-index", type=Path, required=True)
    parser.add_argument("--latency-index", type=Path, help="an index to time the calls on")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()

    report: dict[str, object] = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
    engine = SearchEngine.load(Settings(index_dir=args.scifact_index))
    for split in ("train", "test"):
        claims = _claims(read_qrels(args.scifact / "qrels" / f"{split}.tsv"))
        report[f"scifact-{split}"] = _scifact(engine, claims)
    engine.close()
    engine = SearchEngine.load(Settings(index_dir=args.seed_index))
    report["seeds"] = _seeds(engine)
    engine.close()
    if args.latency_index:
        engine = SearchEngine.load(Settings(index_dir=args.latency_index)).warm_up()
        report["latency"] = _latency(engine, args.rounds)
        engine.close()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


def _claims(qrels: Qrels) -> dict[str, list[str]]:
    return {
        claim: sorted(docs)
        for claim, docs in qrels.items()
        if sum(1 for grade in docs.values() if grade > 0) >= 2
    }


def _with_mode(engine: SearchEngine, mode: SearchMode) -> SearchEngine:
    engine.settings = engine.settings.model_copy(update={"similar_mode": mode})
    return engine


def _scifact(engine: SearchEngine, claims: dict[str, list[str]]) -> dict[str, object]:
    like_paper: dict[str, object] = {"queries": sum(len(docs) for docs in claims.values())}
    for mode in (SearchMode.DENSE, SearchMode.HYBRID):
        run, qrels = {}, {}
        for claim, docs in claims.items():
            for doc in docs:
                found = _with_mode(engine, mode).similar_to_paper(doc, DEPTH)
                run[f"{claim}/{doc}"] = {hit.id: hit.score for hit in found.results}
                qrels[f"{claim}/{doc}"] = {other: 1 for other in docs if other != doc}
        like_paper[mode.value] = score_run(run, qrels, list(qrels))
    examples = {claim: docs for claim, docs in claims.items() if len(docs) >= 3}
    like_examples: dict[str, object] = {"queries": len(examples)}
    qrels = {claim: {doc: 1 for doc in docs[2:]} for claim, docs in examples.items()}
    for mode in (SearchMode.DENSE, SearchMode.HYBRID):
        run = {
            claim: _recommended(_with_mode(engine, mode), docs[:2])
            for claim, docs in examples.items()
        }
        like_examples[f"average-vector, {mode.value}"] = score_run(run, qrels, list(qrels))
    run = {claim: _best_score(engine, docs[:2]) for claim, docs in examples.items()}
    like_examples["best-score, dense"] = score_run(run, qrels, list(qrels))
    return {"like a paper": like_paper, "like examples": like_examples}


def _recommended(engine: SearchEngine, positive: list[str]) -> dict[str, float]:
    found = engine.recommend(RecommendRequest(positive=positive, k=DEPTH))
    return {hit.id: hit.score for hit in found.results}


def _best_score(engine: SearchEngine, positive: list[str]) -> dict[str, float]:
    """Every paper scored by its best cosine to any positive, the positives left out."""
    index = engine.index
    rows = [index.row_of(paper_id) for paper_id in positive]
    vectors = index.vectors_at(range(len(index)))
    scores = (vectors @ vectors[rows].T).max(axis=1)
    scores[rows] = -np.inf
    all_rows = np.arange(len(scores))
    top = best_first(all_rows, scores, DEPTH)
    papers = index.papers_at(top.tolist())
    return {paper.id: float(scores[row]) for paper, row in zip(papers, top, strict=True)}


def _seeds(engine: SearchEngine) -> dict[str, object]:
    index = engine.index
    papers = index.papers_at(list(range(len(index))))
    category = {paper.id: (paper.category or "").lower() for paper in papers}
    by_category: dict[str, list[str]] = defaultdict(list)
    for paper in papers:
        if paper.category:
            by_category[category[paper.id]].append(paper.id)
    report: dict[str, object] = {}
    for mode in (SearchMode.DENSE, SearchMode.HYBRID):
        shares = []
        for paper in papers:
            if not paper.category:
                continue
            found = _with_mode(engine, mode).similar_to_paper(paper.id, 10).results
            shares.append(sum(category[hit.id] == category[paper.id] for hit in found) / 10)
        report[f"like a paper, {mode.value}: same category in top 10"] = round(
            float(np.mean(shares)), 4
        )
    groups = {name: sorted(ids) for name, ids in by_category.items() if len(ids) >= 6}
    qrels = {name: {doc: 1 for doc in ids[3:]} for name, ids in groups.items()}
    for mode in (SearchMode.DENSE, SearchMode.HYBRID):
        run = {
            name: _recommended(_with_mode(engine, mode), ids[:3]) for name, ids in groups.items()
        }
        report[f"like examples, average-vector, {mode.value}"] = score_run(run, qrels, list(qrels))
    run = {name: _best_score(engine, ids[:3]) for name, ids in groups.items()}
    report["like examples, best-score, dense"] = score_run(run, qrels, list(qrels))
    report["categories"] = {name: len(ids) for name, ids in groups.items()}
    return report


def _latency(engine: SearchEngine, rounds: int) -> dict[str, object]:
    """Median milliseconds of each call over ``rounds`` interleaved rounds, and its ratio to
    the default search of the same rounds."""
    rng = random.Random(0)
    rounds += WARM_UP_ROUNDS
    papers = engine.index.papers_at(rng.sample(range(len(engine.index)), 4 * rounds))
    long_texts = [p.abstract for p in papers if len(p.abstract) >= 1200]
    times: dict[str, list[float]] = defaultdict(list)
    for turn in range(rounds):
        one, two, three, four = papers[4 * turn : 4 * turn + 4]
        text = " ".join(long_texts[turn % len(long_texts) :] + long_texts)[:2000]
        query = " ".join((one.title or one.abstract).split()[:8])
        calls: dict[str, tuple[Callable[[Any], object], object]] = {
            "search (hybrid, highlights)": (engine.search, SearchRequest(q=query)),
            "like a 2,000-character text": (
                engine.similar_to_text,
                SimilarTextRequest(text=text),
            ),
            "like 2 examples": (engine.recommend, RecommendRequest(positive=[two.id, three.id])),
            "like one paper": (engine.similar_to_paper, four.id),
        }
        for name, (call, argument) in calls.items():
            started = time.perf_counter()
            call(argument)
            if turn >= WARM_UP_ROUNDS:  # the first rounds fill caches the rest then share
                times[name].append((time.perf_counter() - started) * 1000)
    base = statistics.median(times["search (hybrid, highlights)"])
    return {
        "papers": len(engine.index),
        "rounds": rounds - WARM_UP_ROUNDS,
        **{
            name: {
                "median_ms": round(statistics.median(t), 2),
                "x_search": round(statistics.median(t) / base, 2),
            }
            for name, t in times.items()
        },
    }


if __name__ == "__main__":
    main()
