"""Benchmark: the indexing job on Ray (`papersearch index --ray local`) against the local job.

The same corpus is built twice in this process, each time from an empty embedding cache
with the same model and backend: first by the local job (``build_index``), then by the Ray
job on a Ray instance started on this machine for the run (``RayJob("local")``, what
``--ray local`` does). Both wall clocks cover the whole build: parsing, model load(s),
embedding, the corpus map and the index write; the Ray one also covers starting and
stopping the Ray instance and its actors, which is part of what ``--ray local`` costs. That
start alone (``ray.init`` and ``ray.shutdown`` with nothing run) is timed once more on its
own, so the fixed cost can be told apart from the per-paper one.

Actors: by default one (one per node, as the job picks), whose model uses every core, as
the local job's does, so the ratio is Ray's overhead on the same cores. ``--workers N``
runs N actors, each model given its share of the cores (``load_embedder(threads=...)``).

The two indexes are then compared (ids in row order, largest vector difference): a
benchmark of a job that built something else would measure nothing.

Usage: ``python benchmarks/ray_job.py --corpus ../shared/data/scifact
[--workers N] [--out benchmarks/results/ray-job.json]``
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from indexing.build import BuildReport, build_index
from indexing.ray_job import LOCAL, RayJob, import_ray
from indexing.reader import PaperIndex
from models import DEFAULT_BACKEND, DEFAULT_MODEL, ModelLoader, load_embedder
from service.settings import Settings, usable_cores

RESULTS = Path(__file__).resolve().parent / "results" / "ray-job.json"


def timed_build(
    corpus: Path, folder: Path, load_model: ModelLoader, ray: RayJob | None
) -> tuple[BuildReport, float]:
    started = time.perf_counter()
    report = build_index(
        [corpus],
        folder / "index",
        cache_dir=folder / "cache",  # empty: every paper is embedded
        model_name=DEFAULT_MODEL,
        backend=DEFAULT_BACKEND,
        load_model=load_model,
        capture_date=Settings().capture_date,
        progress=sys.stderr.isatty(),
        ray=ray,
    )
    return report, time.perf_counter() - started


def ray_start_seconds() -> float:
    """Starting and stopping a Ray instance on this machine, with nothing run on it."""
    ray = import_ray()
    started = time.perf_counter()
    ray.init(address=LOCAL, include_dashboard=False, logging_level="WARNING")
    ray.shutdown()
    return time.perf_counter() - started


def compare(ours: Path, theirs: Path) -> tuple[bool, float]:
    """(same ids in the same rows, largest absolute vector difference)."""
    a, b = PaperIndex.open(ours), PaperIndex.open(theirs)
    try:
        same = a.paper_ids() == b.paper_ids()
        rows = range(len(b))
        gap = float(np.abs(a.vectors_at(rows) - b.vectors_at(rows)).max()) if same else -1.0
        return same, gap
    finally:
        a.close()
        b.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="files or folder to index")
    parser.add_argument(
        "--workers", type=int, help="embedding actors (default: one per node, i.e. one here)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON file ({RESULTS})")
    args = parser.parse_args()
    cores = usable_cores()
    actor_loader: ModelLoader = load_embedder
    if args.workers:
        actor_loader = functools.partial(load_embedder, threads=max(1, cores // args.workers))

    with tempfile.TemporaryDirectory(prefix="ray-job-bench-") as scratch:
        local, local_s = timed_build(args.corpus, Path(scratch) / "local", load_embedder, None)
        print(f"local: {local.summary()}", flush=True)
        job = RayJob(LOCAL, embed_workers=args.workers)
        on_ray, ray_s = timed_build(args.corpus, Path(scratch) / "ray", actor_loader, job)
        print(f"ray:   {on_ray.summary()}", flush=True)
        same_ids, max_gap = compare(on_ray.index_dir, local.index_dir)
    start_s = ray_start_seconds()

    papers = local.papers
    result = {
        "benchmark": "ray-job",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "corpus": str(args.corpus),
        "papers": papers,
        "model": DEFAULT_MODEL,
        "backend": DEFAULT_BACKEND,
        "machine": {"cores": cores, "python": platform.python_version(), "os": platform.system()},
        "local": {
            "seconds": round(local_s, 2),
            "papers_per_s": round(papers / local_s, 2),
            "embedded": local.embedded,
        },
        "ray": {
            "address": LOCAL,
            "workers": args.workers or 1,
            "threads_per_actor": cores // args.workers if args.workers else cores,
            "seconds": round(ray_s, 2),
            "papers_per_s": round(papers / ray_s, 2),
            "embedded": on_ray.embedded,
            "ray_start_stop_seconds": round(start_s, 2),
        },
        "ratio_ray_to_local": round(ray_s / local_s, 3),
        "same_ids": same_ids,
        "max_abs_vector_difference": max_gap,
    }
    print(
        f"local {local_s:.1f} s ({papers / local_s:.1f} papers/s), ray {ray_s:.1f} s "
        f"({papers / ray_s:.1f} papers/s): ratio {ray_s / local_s:.2f}; Ray start+stop "
        f"alone {start_s:.1f} s; same ids {same_ids}, largest vector difference {max_gap:.2e}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    if not same_ids or max_gap > 1e-5:
        sys.exit("the Ray job's index differs from the local job's")


if __name__ == "__main__":
    main()
