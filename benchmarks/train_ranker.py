"""Train the learned fusion's ranking model (LambdaMART, LightGBM) on judged queries.

The shipped model was trained on SciFact train (the usage line below); a corpus with
judgments of its own (BEIR format, as `papersearch eval` reads) trains its own the same way,
and the service uses it with ``PAPERSEARCH_FUSION=learned PAPERSEARCH_RANKER=path``.

Every train query is searched through ``SearchEngine.learning_window``, the code that serves:
the blend's top ``RERANK_DEPTH`` papers and their ``FEATURES``, labelled from the train
judgments. The model's size (leaves, trees) is chosen by 5-fold cross-validation over the
train queries (folds by query, fixed seed; the smallest within ``CV_TIE`` of the best); the
model with that size is then fitted on all of train and written, with its feature names,
gzipped (atomically). SciFact's test queries are
never read here: ``benchmarks/quality.py`` reports them.

Usage (the shipped model)::

    python benchmarks/train_ranker.py --corpus ../shared/data/scifact \
        --queries ../shared/data/scifact/queries_train.jsonl \
        --qrels ../shared/data/scifact/qrels/train.tsv
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import lightgbm
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from files import write_atomically

from indexing.build import build_index
from indexing.reader import PaperIndex
from models import DEFAULT_MODEL, load_embedder
from service.evaluation import Qrels, read_qrels, read_queries, score_run
from service.learned_ranking import FEATURES, RANKER_FILE
from service.query_encoder import QueryEncoder
from service.ranking import DENSE_WEIGHT, Fusion
from service.search import SearchEngine, limit_blas_threads
from service.settings import SEED_CAPTURE_DATE, Settings

FOLDS = 5
SEED = 0
# The sizes cross-validation chooses among (leaves a tree, trees), at one learning rate.
SIZES = ((15, 300), (15, 600), (31, 300), (31, 600), (63, 300), (63, 600))
LEARNING_RATE = 0.05
# Cross-validated figures this close are one (a SciFact train mean's standard error is about
# 0.01): the smallest such model is chosen, which predicts faster and ships smaller.
CV_TIE = 0.002


def params(leaves: int) -> dict[str, object]:
    """LambdaMART, optimising nDCG@10's top; deterministic, so a retrain writes the same file."""
    return {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "lambdarank_truncation_level": 20,
        "num_leaves": leaves,
        "learning_rate": LEARNING_RATE,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "seed": SEED,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": os.cpu_count() or 1,
        "verbose": -1,
    }


class Sample:
    """Each judged query's window: candidate ids, features and labels, side by side."""

    def __init__(self, engine: SearchEngine, queries: dict[str, str], qrels: Qrels) -> None:
        self.query_ids = [query_id for query_id in qrels if query_id in queries]
        self.ids: list[list[str]] = []
        features, labels = [], []
        for query_id in self.query_ids:
            ids, window = engine.learning_window(queries[query_id])
            judged = qrels[query_id]
            self.ids.append(ids)
            features.append(window)
            labels.append(np.array([int(judged.get(i, 0) > 0) for i in ids], dtype=np.int32))
        self.sizes = [len(ids) for ids in self.ids]
        self.starts = np.cumsum([0, *self.sizes])
        self.features = np.concatenate(features)
        self.labels = np.concatenate(labels)
        self.qrels = qrels

    def rows(self, queries: np.ndarray) -> np.ndarray:
        return np.concatenate([np.arange(self.starts[q], self.starts[q + 1]) for q in queries])

    def fit(self, queries: np.ndarray, leaves: int, trees: int) -> lightgbm.Booster:
        rows = self.rows(queries)
        data = lightgbm.Dataset(
            self.features[rows],
            self.labels[rows],
            group=[self.sizes[q] for q in queries],
            feature_name=list(FEATURES),
        )
        return lightgbm.train(params(leaves), data, num_boost_round=trees)

    def ndcg(self, predictions: dict[int, np.ndarray]) -> float:
        """nDCG@10 of the windows reordered by ``predictions`` (query number -> scores)."""
        run = {}
        for q, scores in predictions.items():
            order = np.argsort(-scores, kind="stable")
            run[self.query_ids[q]] = {self.ids[q][i]: float(len(order) - r) for r, i in
                                      enumerate(order)}  # fmt: skip
        judged = [self.query_ids[q] for q in predictions]
        return score_run(run, self.qrels, judged)["nDCG@10"]


def cross_validate(sample: Sample, leaves: int, trees: int) -> float:
    order = np.random.default_rng(SEED).permutation(len(sample.query_ids))
    predictions: dict[int, np.ndarray] = {}
    for held_out in np.array_split(order, FOLDS):
        model = sample.fit(np.setdiff1d(order, held_out), leaves, trees)
        for q in held_out:
            rows = np.arange(sample.starts[q], sample.starts[q + 1])
            predictions[int(q)] = np.asarray(model.predict(sample.features[rows]))
    return sample.ndcg(predictions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="BEIR folder or corpus file")
    parser.add_argument("--queries", type=Path, required=True, help="queries JSONL (_id, text)")
    parser.add_argument("--qrels", type=Path, required=True, help="the judgments to train on")
    parser.add_argument("--cache-dir", type=Path, default=Path("data/cache"))
    parser.add_argument("--index", type=Path, default=Path("data/bench/scifact-default"))
    parser.add_argument("--out", type=Path, default=RANKER_FILE)
    parser.add_argument("--report", type=Path, default=Path("benchmarks/results/ranker.json"))
    args = parser.parse_args()

    index_dir = args.index
    report = build_index(
        [args.corpus],
        index_dir,
        cache_dir=args.cache_dir,
        model_name=DEFAULT_MODEL,
        load_model=load_embedder,
        capture_date=SEED_CAPTURE_DATE,
        skip_if_current=True,
    )
    print(report.summary())
    limit_blas_threads()
    index = PaperIndex.open(index_dir, model=DEFAULT_MODEL)
    # The blend the model reorders in service, whatever PAPERSEARCH_* the shell holds.
    settings = Settings(index_dir=index_dir, fusion=Fusion.BLEND, dense_weight=DENSE_WEIGHT)
    engine = SearchEngine(index, QueryEncoder(load_embedder(DEFAULT_MODEL)), settings)
    started = time.perf_counter()
    sample = Sample(engine, read_queries(args.queries), read_qrels(args.qrels))
    seconds = time.perf_counter() - started
    print(
        f"{len(sample.query_ids)} train queries, {len(sample.labels)} candidates, "
        f"{int(sample.labels.sum())} relevant, in {seconds:.0f} s"
    )
    blend = sample.ndcg({q: -np.arange(size, dtype=float) for q, size in enumerate(sample.sizes)})
    print(f"  blend (the window's own order)   nDCG@10 {blend:.4f}")
    cv = {}
    for leaves, trees in SIZES:
        cv[f"{leaves} leaves, {trees} trees"] = value = cross_validate(sample, leaves, trees)
        print(f"  {leaves:>2} leaves, {trees} trees  cross-validated nDCG@10 {value:.4f}")
    top = max(cv.values())
    tied = [(size, value) for size, value in zip(SIZES, cv.values(), strict=True)
            if value >= top - CV_TIE]  # fmt: skip
    (leaves, trees), best = min(tied, key=lambda pair: pair[0][0] * pair[0][1])
    model = sample.fit(np.arange(len(sample.query_ids)), leaves, trees)
    write_atomically(args.out, gzip.compress(model.model_to_string().encode(), mtime=0))
    gains = model.feature_importance("gain")
    shares = gains / gains.sum()
    importance = {name: round(float(v), 4) for name, v in zip(FEATURES, shares, strict=True)}
    size = args.out.stat().st_size
    print(
        f"chose {leaves} leaves, {trees} trees (cross-validated {best:.4f} against the "
        f"blend's {blend:.4f}); written to {args.out} ({size} bytes)"
    )
    print("  share of the gain: " + ", ".join(f"{k} {v:.2f}" for k, v in importance.items()))
    results = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "corpus": str(args.corpus),
        "qrels": str(args.qrels),
        "train_queries": len(sample.query_ids),
        "candidates": len(sample.labels),
        "blend_window_ndcg10": blend,
        "cross_validated_ndcg10": cv,
        "chosen": {"leaves": leaves, "trees": trees, "learning_rate": LEARNING_RATE},
        "chosen_as": f"the smallest within {CV_TIE} of the best cross-validated figure",
        "blend_dense_weight": DENSE_WEIGHT,
        "model_bytes": size,
        "gain_share": importance,
    }
    write_atomically(args.report, (json.dumps(results, indent=2) + "\n").encode())
    index.close()


if __name__ == "__main__":
    main()
