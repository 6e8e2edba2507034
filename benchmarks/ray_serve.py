"""Benchmark: the service on Ray Serve (`papersearch serve --ray`), 1 replica against 2, and
the latency the shard router adds.

A Ray instance is started on this machine (``ray.init()``, what ``--ray local`` does) with
Serve's proxy on a free loopback port, and the service is deployed as ``serve --ray``
deploys it (``service_application``), one configuration after another:

1. ``replicas-1``: one replica of ``--replica-cpus`` CPUs;
2. ``replicas-2``: two such replicas;
3. ``shards-2``: one replica whose engine answers from the index cut in 2 shard
   deployments (``--shards 2``), against ``replicas-1``, the same replica over the whole
   index. Three deployments must fit the instance's CPUs: where they would not, each
   reserves a third of them (recorded in the results).

Each configuration gets the same work: a warm-up (every query once, then a burst at full
concurrency), then a latency phase, one client sending searches one after another (the
latency a request sees when nothing queues), then a load phase, ``--clients`` clients in a
closed loop (each sends its next search as its last answer arrives) for ``--seconds``. The
queries are ``--queries`` (a BEIR queries JSONL: its ``text`` fields, e.g. SciFact's train
queries) or the fixed seed-like list of ``benchmarks/build_and_query.py``, each client
starting at its own place in it. The query cache is off (a repeated query would skip the
model, which is what a search costs). An answer other than 200 is an error, and fails the
run.

The sharded answers are compared with the unsharded ones (ids and scores of the first page
for the first queries): a router that answered something else would measure nothing.

Usage: ``python benchmarks/ray_serve.py --index data/bench/scifact
[--queries ../shared/data/scifact/queries_train.jsonl] [--clients 8] [--seconds 20]
[--replica-cpus 1] [--out benchmarks/results/ray-serve.json]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_and_query import QUERIES, free_port

from service.ray_serving import (
    APP_NAME,
    ROUTE_PREFIX,
    replica_settings,
    serve_options,
    service_application,
)
from service.settings import Settings, usable_cores

RESULTS = Path(__file__).resolve().parent / "results" / "ray-serve.json"
REQUEST_TIMEOUT_S = 60.0
PAGE = 10  # results per search
COMPARED_QUERIES = 20  # compared between the sharded and the whole index


@dataclass
class Phase:
    """Latencies (seconds) of the answers a phase got, over its wall clock."""

    latencies: list[float]
    errors: int
    seconds: float

    def summary(self) -> dict[str, float | int]:
        values = np.asarray(self.latencies) * 1000
        return {
            "requests": len(self.latencies),
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "requests_per_s": round(len(self.latencies) / self.seconds, 2),
            "p50_ms": round(float(np.percentile(values, 50)), 2),
            "p99_ms": round(float(np.percentile(values, 99)), 2),
        }


def read_queries(path: Path | None) -> list[str]:
    if path is None:
        return list(QUERIES)
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def search(http: httpx.Client, base: str, query: str) -> httpx.Response:
    return http.get(f"{base}/search", params={"q": query, "k": PAGE})


def closed_loop(base: str, queries: list[str], clients: int, seconds: float) -> Phase:
    """``clients`` threads, each with one keep-alive connection, each sending its next
    search as soon as its last is answered, until ``seconds`` have passed."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop_at = time.perf_counter() + seconds

    def client(number: int) -> None:
        position = number * len(queries) // clients
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as http:
            while time.perf_counter() < stop_at:
                query = queries[position % len(queries)]
                position += 1
                started = time.perf_counter()
                try:
                    ok = search(http, base, query).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies[number].append(time.perf_counter() - started)
                else:
                    errors[number] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [latency for own in latencies for latency in own]
    return Phase(every, sum(errors), time.perf_counter() - started)


def first_pages(base: str, queries: list[str]) -> list[list[tuple[str, float]]]:
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as http:
        return [
            [(hit["id"], hit["score"]) for hit in search(http, base, query).json()["results"]]
            for query in queries
        ]


def measure(
    name: str,
    settings: Settings,
    base: str,
    queries: list[str],
    args: argparse.Namespace,
    *,
    sharded: bool = False,
) -> tuple[dict[str, Any], list[list[tuple[str, float]]]]:
    """Deploy one configuration, warm it up, time it, and delete it."""
    from ray import serve

    started = time.perf_counter()
    if sharded:
        from service.shards import shard_applications

        app = service_application(settings, shards=shard_applications(settings))
    else:
        app = service_application(settings)
    serve.run(app, name=APP_NAME, route_prefix=ROUTE_PREFIX)
    deploy_s = time.perf_counter() - started
    try:
        first_pages(base, queries)  # every query once
        closed_loop(base, queries, args.clients, min(5.0, args.seconds))  # the burst
        latency = closed_loop(base, queries, 1, args.seconds / 2)
        load = closed_loop(base, queries, args.clients, args.seconds)
        pages = first_pages(base, queries[:COMPARED_QUERIES])
    finally:
        serve.delete(APP_NAME)
    result = {
        "replicas": settings.replicas,
        "shards": settings.shards,
        "replica_cpus": settings.replica_cpus,
        "model_threads": replica_settings(settings).model_threads,
        "deploy_seconds": round(deploy_s, 2),
        "latency_one_client": latency.summary(),
        f"load_{args.clients}_clients": load.summary(),
    }
    print(
        f"{name:<11} {settings.replicas:>8} {settings.shards:>6} {settings.replica_cpus:>5.3g}"
        f" {latency.summary()['p50_ms']:>9} {load.summary()['requests_per_s']:>8}"
        f" {load.summary()['p50_ms']:>9} {load.summary()['p99_ms']:>9}"
        f" {latency.errors + load.errors:>6}",
        flush=True,
    )
    return result, pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True, help="index folder to serve")
    parser.add_argument("--queries", type=Path, help="BEIR queries JSONL (default: fixed list)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--seconds", type=float, default=20.0, help="load phase length (20)")
    parser.add_argument("--replica-cpus", type=float, default=1.0, help="CPUs per replica (1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON file ({RESULTS})")
    args = parser.parse_args()

    import logging

    import ray
    from ray import serve

    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # the table, not Serve's steps

    queries = read_queries(args.queries)
    port = free_port()
    base = Settings(
        index_dir=args.index.absolute(),
        port=port,
        replica_cpus=args.replica_cpus,
        query_cache_size=0,
        reload_interval=0,
    )
    ray.init(logging_level="WARNING", log_to_driver=False, include_dashboard=False)
    url = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {}
    try:
        serve.start(**serve_options(base))
        cpus = ray.cluster_resources().get("CPU", 1.0)
        print(
            f"{'deployment':<11} {'replicas':>8} {'shards':>6} {'cpus':>5} {'1c p50 ms':>9}"
            f" {'req/s':>8} {'p50 ms':>9} {'p99 ms':>9} {'errors':>6}"
        )
        one, whole = measure(
            "replicas-1", base.model_copy(update={"replicas": 1}), url, queries, args
        )
        two, _ = measure("replicas-2", base.model_copy(update={"replicas": 2}), url, queries, args)
        results = {"replicas-1": one, "replicas-2": two}
        # A replica and 2 shards, each reserving its CPUs, must fit the instance.
        shard_cpus = min(args.replica_cpus, cpus / 3)
        sharded = base.model_copy(update={"shards": 2, "replica_cpus": shard_cpus})
        if shard_cpus != args.replica_cpus:  # the unsharded baseline on the same share
            one_same, whole = measure(
                "shards-1", sharded.model_copy(update={"shards": 1}), url, queries, args
            )
            results["shards-1"] = one_same
        else:
            one_same = one
        two_shards, parted = measure("shards-2", sharded, url, queries, args, sharded=True)
        results["shards-2"] = two_shards
        same = parted == whole
        added = (
            two_shards["latency_one_client"]["p50_ms"] - one_same["latency_one_client"]["p50_ms"]
        )
        results["shard_router"] = {
            "p50_added_ms": round(added, 2),
            "same_first_pages": same,
            "compared_queries": min(COMPARED_QUERIES, len(queries)),
        }
        print(f"shard router: p50 +{added:.2f} ms; same first pages: {same}")
    finally:
        serve.shutdown()
        ray.shutdown()
    two_to_one = (
        results["replicas-2"][f"load_{args.clients}_clients"]["requests_per_s"]
        / results["replicas-1"][f"load_{args.clients}_clients"]["requests_per_s"]
    )
    print(f"2 replicas / 1 replica throughput: {two_to_one:.2f}x")
    out = {
        "benchmark": "ray-serve",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "index": str(args.index),
        "queries": str(args.queries) if args.queries else "build_and_query.QUERIES",
        "query_count": len(queries),
        "clients": args.clients,
        "seconds": args.seconds,
        "machine": {
            "cores": usable_cores(),
            "ray_cpus": cpus,
            "python": platform.python_version(),
            "os": platform.system(),
        },
        "deployments": results,
        "throughput_2_to_1_replicas": round(two_to_one, 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    errors = sum(
        phase["errors"]
        for result in results.values()
        for key, phase in result.items()
        if isinstance(phase, dict) and "errors" in phase
    )
    if errors:
        sys.exit(f"{errors} requests failed")
    if not results["shard_router"]["same_first_pages"]:
        sys.exit("the sharded service answered differently from the whole index")


if __name__ == "__main__":
    main()
