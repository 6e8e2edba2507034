"""Benchmark: the service under concurrency, its memory and start-up, and the index types at scale.

Three parts, each a subcommand, each comparing with a baseline measured in the same run:

``serve --index DIR [--index DIR ...]``
    For each index, ``papersearch serve`` is started three times: the seconds from process
    start to the first ``/readyz`` 200 are the cold start (median of three). Then, on the last
    start, throughput at 1, 4 and 16 concurrent clients (each a thread with one keep-alive
    connection, ``--requests`` requests per level in all), and the server's memory after the
    load (the server as ``serve`` starts it: a worker per core): the largest process's RSS,
    and from ``/proc/PID/smaps_rollup`` its anonymous part (what the process needs for
    itself; the memory-mapped vectors are file pages, shared between workers), and the PSS
    of all its processes. Bytes per paper are the largest process's RSS difference between
    this index and the first one given (the seeds: the model and the runtime) divided by
    the difference in papers. The same
    throughput is then measured on a server with ``PAPERSEARCH_QUERY_BATCH_SIZE=1``: without
    dynamic batching, the baseline the batched server is compared with.

``ann --vectors FILE.npy --query-texts FILE [--synthetic N] [--types ...]``
    The dense index alone (no text needed): every index type built over the vectors, or over
    N synthetic vectors drawn around them (each a real vector plus Gaussian noise, then
    normalised), and searched the way the service searches: the ``CANDIDATES`` nearest
    proposed, rescored exactly, top 10 kept. Reported: recall@10 against exact search, query
    latency (median, p99), build seconds, and the memory the opened index adds to a fresh
    process after the queries (RSS, and its anonymous part). Each type is opened and queried
    in its own subprocess, so one type's pages do not count for the next.

Results go to ``benchmarks/results/scale-*.json``; the README's performance table is copied
from them. Usage (``make bench`` runs the seeds and SciFact):

    python benchmarks/scale.py serve --index data/index --index data/bench/scifact
    python benchmarks/scale.py ann --vectors INDEX/vectors.npy --query-texts queries.jsonl
    python benchmarks/scale.py ann --vectors V.npy --query-texts Q.txt --synthetic 1000000
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import cycle, islice
from pathlib import Path
from typing import TypeVar

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_and_query import QUERIES, free_port, machine_info, start_server, stop_server, wait_ready

from indexing.corpus import read_corpus
from indexing.index_types import DenseIndex, IndexType, build_ann, read_ann
from indexing.manifest import read_manifest
from models import load_embedder
from service.search import CANDIDATES
from service.settings import Settings

CLIENTS = (1, 4, 16)
T = TypeVar("T")
TOP_K = 10
RESULTS = Path("benchmarks/results")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def memory_of(pid: int) -> dict[str, int]:
    """RSS, PSS, anonymous, private and shared bytes of a process (``benchmarks/loadtest.py``
    reads the same figures for each worker)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) * 1024
    return {
        "rss_bytes": fields["Rss"],
        # What the process needs for itself; the rest of RSS is file pages (the mapped
        # vectors among them) that the page cache shares between workers and can drop.
        "anonymous_bytes": fields["Anonymous"],
        "private_bytes": fields["Private_Clean"] + fields["Private_Dirty"],
        # RSS with each page divided by the number of processes mapping it: summed over the
        # workers of one server, what the server really occupies (RSS counts shared pages in
        # every process).
        "pss_bytes": fields["Pss"],
        "shared_bytes": fields["Shared_Clean"] + fields["Shared_Dirty"],
    }


def server_processes(pid: int) -> list[tuple[int, str]]:
    """The server's process and its descendants, each with its role."""
    found: list[tuple[int, str]] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            command = Path(f"/proc/{current}/cmdline").read_bytes().replace(b"\0", b" ")
            children = [
                int(child)
                for task in Path(f"/proc/{current}/task").iterdir()
                for child in (task / "children").read_text().split()
            ]
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended meanwhile
        if current == pid:
            role = "server"
        elif b"multiprocessing.spawn" in command:
            role = "worker"
        elif b"resource_tracker" in command:
            role = "resource tracker"
        else:
            role = "other"
        found.append((current, role))
        stack += children
    return found


def server_memory(pid: int) -> dict[str, int]:
    """Memory of a server's processes after a load: the largest one's RSS and anonymous
    part (one worker: what one process needs), and RSS and PSS summed over all of them."""
    processes = [memory_of(process) for process, _ in server_processes(pid)]
    largest = max(processes, key=lambda p: p["rss_bytes"])
    return {
        "processes": len(processes),
        "largest_rss_bytes": largest["rss_bytes"],
        "largest_anonymous_bytes": largest["anonymous_bytes"],
        "total_rss_bytes": sum(p["rss_bytes"] for p in processes),
        "total_pss_bytes": sum(p["pss_bytes"] for p in processes),
    }


# --- serve --------------------------------------------------------------------------------


def run_clients(client: Callable[[list[T]], None], shares: Sequence[list[T]]) -> float:
    """``client(share)`` for every share at once, each in a thread: the seconds they took."""
    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def load_test(base: str, clients: int, requests: int) -> dict[str, float]:
    """``requests`` searches spread over ``clients`` threads, each with its own connection."""
    queries = list(islice(cycle(QUERIES), requests))
    per_client = [queries[i::clients] for i in range(clients)]
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client_loop(mine: list[str]) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            for query in mine:
                started = time.perf_counter()
                response = http.get("/search", params={"q": query, "k": TOP_K})
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text[:200]}")

    wall = run_clients(client_loop, per_client)
    if failures:
        raise RuntimeError(f"{len(failures)} failed requests, e.g. {failures[0]}")
    return {
        "clients": clients,
        "requests": requests,
        "requests_per_s": requests / wall,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
    }


def throughput(base: str, requests: int) -> list[dict[str, float]]:
    load_test(base, 4, 40)  # warm-up: model, caches, connections
    return [load_test(base, clients, requests) for clients in CLIENTS]


def serve_section(index_dir: Path, requests: int, work: Path) -> dict:
    papers = read_manifest(index_dir).paper_count
    starts: list[float] = []
    result: dict = {"index": str(index_dir), "papers": papers}
    for attempt in range(3):
        port = free_port()
        log = work / f"serve-{index_dir.name}-{attempt}.log"
        spawned = time.perf_counter()
        server = start_server(index_dir, port, log)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                starts.append(wait_ready(http, server, spawned, log))
            if attempt == 2:
                result["batched"] = throughput(f"http://127.0.0.1:{port}", requests)
                result["memory_after_load"] = server_memory(server.pid)
        finally:
            stop_server(server)
    result["cold_start_s"] = {"median": statistics.median(starts), "runs": starts}

    port = free_port()
    log = work / f"serve-{index_dir.name}-unbatched.log"
    server = start_server(index_dir, port, log, PAPERSEARCH_QUERY_BATCH_SIZE="1")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            wait_ready(http, server, time.perf_counter(), log)
        result["unbatched"] = throughput(f"http://127.0.0.1:{port}", requests)
    finally:
        stop_server(server)
    single = result["batched"][0]["requests_per_s"]
    result["ratios"] = {
        f"{level['clients']} clients / 1 client (batched)": level["requests_per_s"] / single
        for level in result["batched"]
    } | {
        f"{b['clients']} clients: batched / unbatched": b["requests_per_s"] / u["requests_per_s"]
        for b, u in zip(result["batched"], result["unbatched"], strict=True)
    }
    return result


def run_serve(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="papersearch-bench-") as scratch:
        sections = [serve_section(index, args.requests, Path(scratch)) for index in args.index]
    base = sections[0]
    for section in sections[1:]:
        extra_papers = section["papers"] - base["papers"]
        extra_rss = (
            section["memory_after_load"]["largest_rss_bytes"]
            - base["memory_after_load"]["largest_rss_bytes"]
        )
        section["rss_bytes_per_paper_over_first"] = extra_rss / extra_papers
    for section in sections:
        print(f"\n{section['index']} ({section['papers']} papers)")
        print(f"  cold start to /readyz: {section['cold_start_s']['median']:.2f} s (median of 3)")
        memory = section["memory_after_load"]
        print(
            f"  {memory['processes']} processes; largest RSS after load "
            f"{memory['largest_rss_bytes'] / 2**20:.0f} MiB, anonymous "
            f"{memory['largest_anonymous_bytes'] / 2**20:.0f} MiB, PSS of all "
            f"{memory['total_pss_bytes'] / 2**20:.0f} MiB"
            + (
                f", {section['rss_bytes_per_paper_over_first']:.0f} B/paper over the first index"
                if "rss_bytes_per_paper_over_first" in section
                else ""
            )
        )
        print(f"  {'clients':>8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}   unbatched req/s")
        for b, u in zip(section["batched"], section["unbatched"], strict=True):
            print(
                f"  {b['clients']:>8}{b['requests_per_s']:>10.1f}{b['p50_ms']:>10.1f}"
                f"{b['p99_ms']:>10.1f}   {u['requests_per_s']:.1f}"
            )
        for name, value in section["ratios"].items():
            print(f"  {name}: {value:.2f}x")
    return {"sections": sections}


# --- ann ----------------------------------------------------------------------------------


def synthetic_vectors(real: np.ndarray, count: int, noise: float, seed: int = 0) -> np.ndarray:
    """``count`` unit vectors, each a random real vector plus Gaussian noise (per dimension)."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, real.shape[1]), dtype=np.float32)
    for start in range(0, count, 100_000):
        stop = min(count, start + 100_000)
        chunk = real[rng.integers(0, len(real), stop - start)]
        chunk = chunk + rng.normal(0, noise, chunk.shape).astype(np.float32)
        out[start:stop] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    import faiss

    _, rows = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    return rows


def probe(folder: Path, index_type: str, depth: int, truth_file: Path) -> dict:
    """Run in a fresh process: open one index the way the service does, search, measure."""
    before = memory_of_self()
    vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    ann = read_ann(folder / "ann.faiss") if index_type != "flat" else None
    dense = DenseIndex(vectors, ann)
    opened = memory_of_self()
    queries = np.load(folder / "queries.npy")
    truth = np.load(truth_file)
    latencies, hits = [], 0
    for query, expected in zip(queries, truth, strict=True):
        started = time.perf_counter()
        rows, scores = dense.nearest(query, CANDIDATES, depth)  # scores: exact
        top = rows[np.argsort(-scores, kind="stable")[:TOP_K]]
        latencies.append(time.perf_counter() - started)
        hits += len(set(top.tolist()) & set(expected.tolist()))
    after = memory_of_self()
    return {
        "recall_at_10": hits / (TOP_K * len(queries)),
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "rss_added_bytes_opened": opened["rss_bytes"] - before["rss_bytes"],
        "rss_added_bytes_after_queries": after["rss_bytes"] - before["rss_bytes"],
        "anonymous_added_bytes_after_queries": after["anonymous_bytes"] - before["anonymous_bytes"],
    }


def query_texts(path: Path) -> list[str]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix == ".jsonl":
        return [json.loads(line)["text"] for line in lines]
    return lines


def memory_of_self() -> dict[str, int]:
    import os

    return memory_of(os.getpid())


def run_ann(args: argparse.Namespace) -> dict:
    import faiss

    faiss.omp_set_num_threads(1)  # the service searches one query per thread
    real = np.load(args.vectors).astype(np.float32)
    queries = load_embedder(args.model).encode(query_texts(args.query_texts)[: args.query_count])
    if args.synthetic:
        vectors = synthetic_vectors(real, args.synthetic, args.noise)
        # Queries near the synthetic points too: a real query vector plus the same noise.
        queries = synthetic_vectors(queries, len(queries), args.noise, seed=1)
    else:
        vectors = real
    papers = len(vectors)
    result: dict = {
        "papers": papers,
        "synthetic": bool(args.synthetic),
        "noise": args.noise if args.synthetic else None,
        "queries": len(queries),
        "candidates": CANDIDATES,
        "search_depth": args.depth,
        "types": {},
    }
    work = Path(args.work) / f"ann-{papers}"
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "vectors.npy", vectors)
    np.save(work / "queries.npy", queries)
    truth_file = work / "truth.npy"
    np.save(truth_file, exact_top(vectors, queries, TOP_K))
    print(f"{papers} vectors ({'synthetic' if args.synthetic else 'real'}), {len(queries)} queries")
    print(f"  {'type':<9}{'build s':>9}{'recall@10':>11}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'RSS MiB':>9}{'anon MiB':>9}{'B/paper':>9}")  # fmt: skip
    for index_type in args.types:
        folder = work / index_type
        folder.mkdir(exist_ok=True)
        for name in ("vectors.npy", "queries.npy"):
            target = folder / name
            if not target.exists():
                target.symlink_to((work / name).resolve())
        started = time.perf_counter()
        if index_type != "flat":
            faiss.omp_set_num_threads(2)  # building may use both cores
            faiss.write_index(build_ann(IndexType(index_type), vectors), str(folder / "ann.faiss"))
            faiss.omp_set_num_threads(1)
        build_seconds = time.perf_counter() - started
        command = [sys.executable, __file__, "probe", str(folder), index_type, str(args.depth)]
        probe_run = subprocess.run(
            [*command, str(truth_file)], check=True, capture_output=True, text=True
        )
        measured = json.loads(probe_run.stdout)
        measured["build_seconds"] = build_seconds
        measured["bytes_per_paper"] = measured["rss_added_bytes_after_queries"] / papers
        result["types"][index_type] = measured
        print(
            f"  {index_type:<9}{build_seconds:>9.1f}{measured['recall_at_10']:>11.4f}"
            f"{measured['p50_ms']:>9.2f}{measured['p99_ms']:>9.2f}"
            f"{measured['rss_added_bytes_after_queries'] / 2**20:>9.0f}"
            f"{measured['anonymous_added_bytes_after_queries'] / 2**20:>9.0f}"
            f"{measured['bytes_per_paper']:>9.0f}"
        )
    flat = result["types"].get("flat")
    if flat:
        result["latency_ratio_to_flat"] = {
            name: t["p50_ms"] / flat["p50_ms"] for name, t in result["types"].items()
        }
    return result


def sample_titles(corpus: Path, count: int, out: Path, seed: int = 0) -> None:
    """Random titles of a corpus, one a line: queries in the corpus's own subjects."""
    titles = [p.title for p in read_corpus([corpus], Settings().capture_date).papers if p.title]
    random.Random(seed).shuffle(titles)
    out.write_text("".join(" ".join(t.split()) + "\n" for t in titles[:count]), encoding="utf-8")
    print(f"{min(count, len(titles))} titles written to {out}")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "probe":  # internal: one index in a fresh process
        folder, index_type, depth, truth = sys.argv[2:6]
        print(json.dumps(probe(Path(folder), index_type, int(depth), Path(truth))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="cold start, throughput and memory over HTTP")
    serve.add_argument("--index", type=Path, action="append", required=True)
    serve.add_argument("--requests", type=int, default=240, help="requests per client level")
    serve.add_argument("--out", type=Path, default=RESULTS / "scale-serve.json")
    ann = commands.add_parser("ann", help="recall, latency and memory of each index type")
    ann.add_argument("--vectors", type=Path, required=True, help="real vectors (.npy)")
    ann.add_argument(
        "--query-texts",
        type=Path,
        required=True,
        help="queries: BEIR queries JSONL (text) or one query per line",
    )
    ann.add_argument("--model", default=Settings().model, help="model that embeds the queries")
    ann.add_argument("--query-count", type=int, default=300)
    ann.add_argument("--synthetic", type=int, help="draw this many vectors around the real ones")
    ann.add_argument("--noise", type=float, default=0.02, help="noise per dimension (synthetic)")
    ann.add_argument(
        "--types", nargs="+", default=[t.value for t in IndexType if t is not IndexType.AUTO]
    )
    ann.add_argument("--depth", type=int, default=Settings().search_depth)
    ann.add_argument("--work", type=Path, default=Path("data/bench"))
    ann.add_argument("--out", type=Path)
    titles = commands.add_parser("titles", help="sample query titles from a corpus")
    titles.add_argument("corpus", type=Path)
    titles.add_argument("--count", type=int, default=300)
    titles.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    if args.command == "titles":
        sample_titles(args.corpus, args.count, args.out)
        return 0
    results = run_serve(args) if args.command == "serve" else run_ann(args)
    results = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        **results,
    }
    out = args.out or RESULTS / f"scale-ann-{results['papers']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
