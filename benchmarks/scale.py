"""Benchmark: the service under concurrency, its memory and start-up, and the index types at scale.

Without a subcommand, one index at scale, from a corpus and its vectors (the real 75k arXiv
papers, or a synthetic corpus of a million from ``benchmarks/synthetic_corpus.py``)::

    python benchmarks/scale.py --corpus DIR --index OUT_INDEX --papers-label 1m \\
        --out benchmarks/results/scale-1m.json
    python benchmarks/scale.py --corpus ../shared/data/arxiv/arxiv-75k.jsonl.gz \\
        --vectors data/arxiv-vectors.parquet --index data/bench/scale-75k --papers-label 75k \\
        --out benchmarks/results/scale-75k.json

It measures, each against a baseline of the same run where one makes sense (machines here
are shared and noisy; the ratios move only when the code does):

- the build from vectors (``papersearch index CORPUS --vectors FILE``, the process's wall clock);
- the dense recall@10 of the index as the service searches it (``nearest_many`` with the
  default search depth, and the best 10 of ``CANDIDATES``) against exact search, in-process;
- a server (``--workers 1``, loopback, a free port) on the seed index: the fixed cost. Then
  one on the index, after a warm-up: p50/p99 of ``GET /search`` (reworded titles of random
  papers and hand-written questions, sequential), with a rare category and with one year,
  ``/facets``, ``/map`` (bytes on the wire), ``/papers`` at a deep offset and ``/similar?title=``
  with a typo; its memory (RSS and anonymous, from ``/proc/PID/smaps_rollup``, summed over its
  processes), per paper beyond the seed-index server's; its search p50 over the seed index's;
- updates while it serves: ``papersearch add`` of the synthetic generator's next 100 papers
  with their vectors, then of the 100 after those embedded (against the bare cost of
  embedding them: loading the model and encoding, in this process), ``papersearch remove``
  of 100 papers and ``papersearch merge``; after each, the seconds until the server serves
  the change (``GET /papers/{id}`` 200 or 404, ``/readyz`` for a merge), polled every 50 ms.
  A step the CLI refuses is noted in the results and the next one runs.

Every server is stopped and every scratch file removed on the way out, whatever happens.

The subcommands, each comparing with a baseline measured in the same run:

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

``ann --vectors FILE.parquet --query-texts FILE [--synthetic N] [--types ...]`` (an
index's vectors from ``papersearch export-vectors``, or a bare ``.npy``)
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
    papersearch export-vectors --index INDEX --out V.parquet
    python benchmarks/scale.py ann --vectors V.parquet --query-texts queries.jsonl
    python benchmarks/scale.py ann --vectors V.parquet --query-texts Q.txt --synthetic 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import cycle, islice
from pathlib import Path
from typing import TypeVar

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic_corpus
from build_and_query import (
    PAPERSEARCH,
    QUERIES,
    free_port,
    machine_info,
    start_server,
    stop_server,
    wait_ready,
)

from indexing.corpus import read_corpus
from indexing.index_types import DenseIndex, IndexType, Neighbours, build_ann, read_ann
from indexing.manifest import read_manifest
from indexing.parsers.jsonl import open_bytes, paper_from_object
from indexing.records import Paper, embedding_text
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


def real_vectors(path: Path, model: str) -> np.ndarray:
    """The vectors to benchmark: a vector file (`papersearch export-vectors` of an index:
    its vectors, whichever backend made them) or a bare ``.npy`` array."""
    if path.suffix != ".parquet":
        return np.load(path).astype(np.float32)
    import pyarrow.parquet as pq

    from indexing.vector_files import BACKEND_KEY, MODEL_KEY, SuppliedVectors

    stored = pq.read_schema(path).metadata or {}
    made_by = {key: stored.get(key.encode(), b"").decode() for key in (MODEL_KEY, BACKEND_KEY)}
    vectors = SuppliedVectors.read(
        path, model=made_by[MODEL_KEY] or model, backend=made_by[BACKEND_KEY]
    ).vectors
    return np.asarray(vectors, dtype=np.float32)


def run_ann(args: argparse.Namespace) -> dict:
    import faiss

    faiss.omp_set_num_threads(1)  # the service searches one query per thread
    real = real_vectors(args.vectors, args.model)
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


# --- corpus: one index at scale, from a corpus and its vectors ----------------------------

SHARED = Path("../shared/data")
SEED_CORPUS = Path("seeds")
BUILD_TIMEOUT_S = 4 * 3600.0  # a million papers: BM25, records, ANN and map on two cores
COMMAND_TIMEOUT_S = 1800.0
SERVED_TIMEOUT_S = 120.0  # a change not served by then is reported as not served
SCALE_READY_TIMEOUT_S = 900.0
UPDATE_PAPERS = 100
KB = 1000  # the targets are in kB (10^3 bytes) and GB (10^9 bytes)
GB = 10**9
# The brief's targets: (what, limit, the scale it is set for).
TARGETS = {
    "add_rest_s": (3.0, "75k: add of 100 papers within their embedding + 3 s"),
    "remove_s": (1.0, "75k: remove of 100 papers"),
    "anonymous_kb_per_paper": (0.3, "75k and 1M: anonymous memory per paper"),
    "rss_gb": (2.0, "1M: server RSS"),
    "search_p50_ms": (30.0, "1M: default search p50"),
    "recall_at_10": (0.98, "1M: dense recall@10 against exact (at least)"),
}
# Words dropped when a title is reworded into a query: what a person leaves out typing one.
_STOP = frozenset(
    {"a", "an", "the", "of", "for", "and", "in", "on", "with", "via", "to", "from", "by",
     "towards", "toward", "using", "based", "is", "are", "we", "our", "its", "their", "as",
     "at", "into", "new"}
)  # fmt: skip
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9-]*")


@dataclass
class CorpusFiles:
    """What the benchmark indexes: the corpus, its vectors, and where a synthetic corpus's
    generator left off (the next papers it would write are the ones added)."""

    papers: Path
    vectors: Path | None
    synthetic_next: int  # index of the first synthetic paper not in the corpus


def corpus_files(corpus: Path, vectors: Path | None) -> CorpusFiles:
    """``corpus`` is a synthetic corpus folder (papers.jsonl, vectors.parquet, synthetic.json)
    or a corpus file (the arXiv .jsonl.gz) with ``--vectors``."""
    if corpus.is_dir():
        papers = corpus / synthetic_corpus.PAPERS_FILE
        info_file = corpus / synthetic_corpus.INFO_FILE
        info = json.loads(info_file.read_text()) if info_file.is_file() else {}
        start = int(info.get("start", 0)) + int(info.get("papers", 0))
        default_vectors = corpus / synthetic_corpus.VECTORS_FILE
        found = vectors or (default_vectors if default_vectors.is_file() else None)
        return CorpusFiles(papers, found, start)
    return CorpusFiles(corpus, vectors, 0)


class CommandFailed(RuntimeError):
    """A ``papersearch`` command that exited non-zero; its message ends with the CLI's."""


def cli_supports(*words: str) -> bool:
    """Whether ``papersearch [words...] --help`` names the last word: the commands and
    options built beside this benchmark (merge, --vectors) may not exist yet."""
    *command, wanted = words
    done = subprocess.run(
        [str(PAPERSEARCH), *command, "--help"], capture_output=True, text=True, check=False
    )
    return done.returncode == 0 and wanted in done.stdout


def timed_command(command: Sequence[str], timeout: float = COMMAND_TIMEOUT_S) -> dict:
    """Run a ``papersearch`` command: its wall clock (interpreter start included), its peak
    RSS (``wait4``'s, the kernel's own count) and the last line it printed (its summary)."""
    argv = [str(PAPERSEARCH), *command]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=err)
        killer = threading.Timer(timeout, process.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        stdout, stderr = (f.read().decode(errors="replace") for f in (out, err))
    if wall >= timeout and process.returncode < 0:
        raise subprocess.TimeoutExpired(argv, timeout)
    if process.returncode != 0:
        raise CommandFailed(
            f"papersearch {' '.join(command)} failed ({process.returncode}):\n{stderr[-3000:]}"
        )
    lines = (stdout.strip() or stderr.strip()).splitlines()
    return {
        "seconds": wall,
        "max_rss_bytes": usage.ru_maxrss * 1024,  # Linux counts it in KiB
        "summary": lines[-1] if lines else "",
    }


def sample_lines(path: Path, count: int, seed: int) -> list[bytes]:
    """``count`` lines drawn uniformly (reservoir sampling, one pass, nothing parsed but the
    chosen lines): a 1.6 GB JSONL never sits in memory."""
    rng = random.Random(seed)
    chosen: list[bytes] = []
    with open_bytes(path) as stream:
        for number, line in enumerate(stream):
            if not line.strip():
                continue
            if len(chosen) < count:
                chosen.append(line)
            elif (slot := rng.randrange(number + 1)) < count:
                chosen[slot] = line
    return chosen


def sample_papers(path: Path, count: int, seed: int) -> list[Paper]:
    papers = [
        paper_from_object(json.loads(line), path.name) for line in sample_lines(path, count, seed)
    ]
    random.Random(seed).shuffle(papers)  # the reservoir keeps the file's order in its start
    return papers


def reworded(title: str) -> str:
    """A title as someone types it as a search: lower case, no punctuation, no filler words,
    and every third remaining word left out."""
    words = [w for w in _WORD.findall(title.lower()) if w not in _STOP]
    kept = [w for i, w in enumerate(words) if i % 3 != 2] if len(words) > 4 else words
    return " ".join(kept)


def misspelt(title: str) -> str:
    """The title with two inner letters of its longest word swapped (a typo)."""
    words = title.split()
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    word = words[longest]
    if len(word) >= 4:
        middle = len(word) // 2
        words[longest] = word[: middle - 1] + word[middle] + word[middle - 1] + word[middle + 1 :]
    return " ".join(words)


def search_queries(papers: Sequence[Paper], count: int) -> list[str]:
    """``count`` queries: reworded titles of random papers, one in ten a hand-written question
    (``build_and_query.QUERIES``); deterministic for a given sample."""
    titled = [reworded(p.title) for p in papers if p.title and len(p.title.split()) >= 3]
    queries: list[str] = []
    for i in range(count):
        queries.append(QUERIES[i // 10 % len(QUERIES)] if i % 10 == 9 else titled[i % len(titled)])
    return queries


def process_memory(pid: int) -> dict[str, int]:
    """RSS and anonymous memory summed over a server's processes (``--workers 1`` still has a
    supervisor beside its worker)."""
    processes = server_processes(pid)
    measured = [memory_of(process) for process, _ in processes]
    return {
        "processes": len(measured),
        "rss_bytes": sum(m["rss_bytes"] for m in measured),
        "anonymous_bytes": sum(m["anonymous_bytes"] for m in measured),
        "pss_bytes": sum(m["pss_bytes"] for m in measured),
    }


@contextmanager
def serving(
    index_dir: Path, work: Path, name: str, **env: str
) -> Iterator[tuple[httpx.Client, subprocess.Popen[bytes], float]]:
    """A ``papersearch serve --workers 1`` on a free loopback port, stopped on the way out
    whatever happens; yields a client, the process and the seconds it took to be ready."""
    port = free_port()
    log = work / f"serve-{name}.log"
    spawned = time.perf_counter()
    server = start_server(index_dir, port, log, PAPERSEARCH_WORKERS="1", **env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            ready = _wait_ready(http, server, spawned, log)
            yield http, server, ready
    finally:
        stop_server(server)


def _wait_ready(
    http: httpx.Client, server: subprocess.Popen[bytes], spawned: float, log: Path
) -> float:
    """``wait_ready`` with a deadline fit for a million-paper index."""
    while time.perf_counter() - spawned < SCALE_READY_TIMEOUT_S:
        if server.poll() is not None:
            raise RuntimeError(f"server exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if http.get("/readyz").status_code == 200:
                return time.perf_counter() - spawned
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {SCALE_READY_TIMEOUT_S:.0f} s")


def timed_requests(
    http: httpx.Client, requests: Sequence[tuple[str, dict]], ok: tuple[int, ...] = (200,)
) -> dict:
    """Sequential GETs, each of which must answer one of ``ok``: p50/p99 in ms, bytes on the
    wire (gzip where the server compresses) and in the body, and how many answered 200."""
    latencies: list[float] = []
    wire = body = found = 0
    totals: list[int] = []
    for path, params in requests:
        started = time.perf_counter()
        response = http.get(path, params=params)
        latencies.append(time.perf_counter() - started)
        if response.status_code not in ok:
            raise RuntimeError(f"GET {path} {params}: {response.status_code} {response.text[:300]}")
        wire += response.num_bytes_downloaded
        body += len(response.content)
        found += response.status_code == 200
        if path == "/search":
            totals.append(response.json()["total"])
    return {
        "requests": len(latencies),
        "answered_200": found,
        # How many papers a search could page through (the filters' selectivity), median.
        "median_total": int(statistics.median(totals)) if totals else None,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "mean_wire_bytes": wire / len(latencies),
        "mean_body_bytes": body / len(latencies),
    }


def searches(queries: Sequence[str], **filters: object) -> list[tuple[str, dict]]:
    return [("/search", {"q": q, "k": TOP_K, **filters}) for q in queries]


def selective_filters(facets: dict) -> dict[str, dict]:
    """A rare category (the one nearest 0.5 % of the papers, at least 10) and the emptiest
    year of the corpus's range that holds papers: filters that keep few candidates."""
    papers = facets["papers"]
    usable = [c for c in facets["categories"] if c["papers"] >= 10] or facets["categories"]
    rare = min(usable, key=lambda c: abs(c["papers"] - papers * 0.005))
    chosen = {"category": {"category": rare["name"], "share": rare["papers"] / papers}}
    if facets["year_min"] is not None:
        year = facets["year_min"]
        chosen["one_year"] = {"year_from": year, "year_to": year}
    return chosen


def wait_served(
    http: httpx.Client, check: Callable[[], bool], since: float, timeout: float = SERVED_TIMEOUT_S
) -> float | None:
    """Seconds from ``since`` until ``check()`` holds, polling every 50 ms; None at timeout."""
    while time.perf_counter() - since < timeout:
        if check():
            return time.perf_counter() - since
        time.sleep(0.05)
    return None


def paper_status(http: httpx.Client, paper_id: str) -> int:
    return http.get(f"/papers/{paper_id}").status_code


def embed_seconds(papers: Sequence[Paper], model: str, backend: str) -> dict[str, float]:
    """What embedding these papers costs a fresh process: loading the model, then encoding
    their texts in the CLI's batches (the first call pays the runtime's warm-up, as add's)."""
    started = time.perf_counter()
    embedder = load_embedder(model, backend)
    loaded = time.perf_counter()
    embedder.encode([embedding_text(p) for p in papers], batch_size=32)
    encoded = time.perf_counter()
    return {
        "model_load_s": loaded - started,
        "encode_s": encoded - loaded,
        "total_s": encoded - started,
    }


def dense_recall(index_dir: Path, queries: Sequence[str], depth: int) -> dict:
    """Recall@10 of the index's dense search (ANN and exact rescoring, as the service runs
    it) against exact inner-product search over the same vectors, in this process."""
    from indexing.reader import PaperIndex

    manifest = json.loads((index_dir / "manifest.json").read_text())
    index = PaperIndex.open(index_dir, model=manifest["model"])
    try:
        embedder = load_embedder(manifest["model"], manifest["backend"])
        vectors = np.ascontiguousarray(embedder.encode(list(queries)), dtype=np.float32)
        started = time.perf_counter()
        found = index.dense.nearest_many(vectors, TOP_K, depth)
        ann_seconds = time.perf_counter() - started
        truth = exact_top_chunked(index, vectors, TOP_K)
        # The service asks for CANDIDATES and keeps the best by exact score: its recall.
        pooled = index.dense.nearest_many(vectors, CANDIDATES, depth)
        return {
            "recall_at_10": _recall(found, truth),
            "recall_at_10_of_candidates": _recall(pooled, truth),
            "candidates": CANDIDATES,
            "queries": len(queries),
            "search_depth": depth,
            "index_type": manifest.get("index_type"),
            "ann_ms_per_query": ann_seconds / len(queries) * 1e3,
        }
    finally:
        index.close()


def _recall(found: Sequence[Neighbours], truth: np.ndarray) -> float:
    """Share of the exact top 10 among the best 10 (by exact score) of what was found."""
    hits = 0
    for neighbours, expected in zip(found, truth, strict=True):
        rows, scores = np.asarray(neighbours.rows), np.asarray(neighbours.scores)
        top = rows[np.argsort(-scores, kind="stable")[:TOP_K]]
        hits += len(set(top.tolist()) & set(expected.tolist()))
    return hits / (TOP_K * len(truth))


def exact_top_chunked(index: object, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k rows over every stored vector, read 200,000 rows at a time (a million
    vectors are 1.5 GB; the chunks' best are merged)."""
    import faiss

    total = len(index)  # type: ignore[arg-type]
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, total, 200_000):
        rows = np.arange(start, min(total, start + 200_000))
        block = np.ascontiguousarray(index.vectors_at(rows), dtype=np.float32)  # type: ignore[attr-defined]
        scores, found = faiss.knn(
            queries, block, min(k, len(block)), metric=faiss.METRIC_INNER_PRODUCT
        )
        best_scores = np.concatenate([best_scores, scores], axis=1)
        best_rows = np.concatenate([best_rows, found + start], axis=1)
        order = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(best_scores, order, axis=1)
        best_rows = np.take_along_axis(best_rows, order, axis=1)
    return best_rows


def new_papers(
    args: argparse.Namespace, files: CorpusFiles, work: Path
) -> tuple[Path, Path] | None:
    """The synthetic generator's next 2 x 100 papers (with their vectors), one folder each:
    the first batch is added with vectors, the second embedded."""
    if not (args.arxiv.is_file() and args.real_vectors.is_file()):
        return None
    pool = synthetic_corpus.load_pool(args.arxiv, args.real_vectors)
    folders = (work / "new-with-vectors", work / "new-embedded")
    for batch, folder in enumerate(folders):
        start = files.synthetic_next + batch * UPDATE_PAPERS
        synthetic_corpus.write_corpus(
            pool, folder, UPDATE_PAPERS, args.seed, start=start, progress=False
        )
    return folders


def read_papers(path: Path) -> list[Paper]:
    return [
        paper_from_object(json.loads(line), path.name)
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]


def measure_updates(
    args: argparse.Namespace,
    http: httpx.Client,
    files: CorpusFiles,
    removable: Sequence[str],
    work: Path,
    notes: list[str],
) -> dict:
    """add (with vectors, then embedded), remove and merge, each timed as a process and then
    polled until the running server serves its change. A step the CLI refuses (a command or
    option not built yet) is noted and the next one still runs."""
    result: dict = {"reload_interval_s": args.reload_interval}
    index = str(args.index)

    def step(name: str, command: list[str], done: Callable[[], bool]) -> dict | None:
        try:
            run = timed_command(command, timeout=BUILD_TIMEOUT_S)
        except (CommandFailed, subprocess.TimeoutExpired) as exc:
            notes.append(f"{name} not measured: {str(exc).strip().splitlines()[-1]}")
            return None
        served = wait_served(http, done, time.perf_counter())
        run["served_after_s"] = served
        run["served_within_interval"] = served is not None and served <= args.reload_interval
        result[name] = run
        return run

    def status_is(paper_id: str, status: int) -> Callable[[], bool]:
        return lambda: paper_status(http, paper_id) == status

    batches = new_papers(args, files, work)
    if batches is None:
        notes.append(f"add not measured: {args.arxiv} or {args.real_vectors} missing")
    else:
        with_vectors, embedded = (folder / synthetic_corpus.PAPERS_FILE for folder in batches)
        first = read_papers(with_vectors)[0].id
        vectors = str(batches[0] / synthetic_corpus.VECTORS_FILE)
        command = ["add", str(with_vectors), "--index", index, "--vectors", vectors, "--quiet"]
        step("add_with_vectors", command, status_is(first, 200))

        papers = read_papers(embedded)
        manifest = json.loads((args.index / "manifest.json").read_text())
        cost = embed_seconds(papers, manifest["model"], manifest["backend"])
        cache = str(work / "empty-cache")  # nothing cached: every paper is embedded
        command = ["add", str(embedded), "--index", index, "--cache-dir", cache, "--quiet"]
        if run := step("add_embedded", command, status_is(papers[0].id, 200)):
            run["embedding"] = cost
            run["rest_s"] = run["seconds"] - cost["total_s"]

    remove = ["remove", *removable[:UPDATE_PAPERS], "--index", index]
    present = paper_status(http, removable[0]) == 200
    if run := step("remove", remove, status_is(removable[0], 404)):
        run["was_served_before"] = present

    before = http.get("/readyz").json()
    if run := step(
        "merge", ["merge", "--index", index], lambda: http.get("/readyz").json() != before
    ):
        run["removed_stays_removed"] = paper_status(http, removable[0]) == 404
    return result


def build_from_vectors(args: argparse.Namespace, files: CorpusFiles, notes: list[str]) -> dict:
    """``papersearch index CORPUS --vectors FILE``, timed as a process; where the CLI has no
    --vectors yet, or with ``--reuse-index``, an index already at ``--index`` is measured as
    it is (the build time of an earlier run stands)."""
    if not args.reuse_index and files.vectors is not None and cli_supports("index", "--vectors"):
        build = timed_command(
            ["index", str(files.papers), "--vectors", str(files.vectors),
             "--out", str(args.index), "--force", "--quiet"],
            timeout=BUILD_TIMEOUT_S,
        )  # fmt: skip
        print(f"built {args.index} in {build['seconds']:.0f} s: {build['summary']}")
        return build
    if not (args.index / "manifest.json").is_file():
        raise SystemExit(f"error: cannot build {args.index} from vectors, and it does not exist")
    notes.append(
        "build skipped (--reuse-index, or `papersearch index` has no --vectors, or no vectors "
        f"given): {args.index} measured as it is"
    )
    return {}


def measure_reads(
    http: httpx.Client, papers: int, sample: Sequence[Paper], queries: Sequence[str]
) -> dict:
    """p50/p99 of every read endpoint after a warm-up: search plain and with selective
    filters, facets, the map (bytes on the wire), a deep page of the list, a typo'd title."""
    warmup = search_queries(sample[::-1], 20)
    shares = selective_filters(http.get("/facets").json())
    filters = {
        name: {key: value for key, value in chosen.items() if key != "share"}
        for name, chosen in shares.items()
    }
    timed_requests(http, searches(warmup))
    for params in filters.values():
        timed_requests(http, searches(warmup[:5], **params))
    latency = {"search": timed_requests(http, searches(queries))}
    for name, params in filters.items():
        measured = timed_requests(http, searches(queries, **params))
        latency[f"search_{name}"] = measured | {"filter": shares[name]}
    latency["facets"] = timed_requests(http, [("/facets", {})] * 20)
    latency["map"] = timed_requests(http, [("/map", {})] * 5)
    deep = max(0, papers - 1000)
    pages = [("/papers", {"limit": 20, "offset": deep - i}) for i in range(20)]
    latency["papers_deep_page"] = timed_requests(http, pages) | {"offset": deep}
    titles = [misspelt(p.title) for p in sample[:20] if p.title and len(p.title.split()) >= 3]
    lookups = [("/similar", {"title": title, "k": TOP_K}) for title in titles]
    # A typo'd title may match no paper well enough (404 with suggestions): timed all the same.
    latency["similar_title"] = timed_requests(http, lookups, ok=(200, 404))
    return latency


def run_corpus(args: argparse.Namespace) -> dict:
    files = corpus_files(args.corpus, args.vectors)
    if not files.papers.is_file():
        raise SystemExit(f"error: no corpus at {files.papers}")
    notes: list[str] = []
    result: dict = {
        "label": args.papers_label,
        "corpus": str(files.papers),
        "vectors": str(files.vectors) if files.vectors else None,
        "index": str(args.index),
        "notes": notes,
    }
    depth = Settings().search_depth
    with tempfile.TemporaryDirectory(prefix="papersearch-scale-") as scratch:
        work = Path(scratch)
        result["build"] = build_from_vectors(args, files, notes)
        papers = json.loads((args.index / "manifest.json").read_text())["paper_count"]
        result["papers"] = papers

        # Queries and ids from a sample of the corpus (deterministic), and the dense recall.
        sample = sample_papers(files.papers, max(args.queries, 2 * UPDATE_PAPERS), args.seed)
        queries = search_queries(sample, args.queries)
        result["recall"] = dense_recall(args.index, queries, depth)
        print(f"dense recall@10 {result['recall']['recall_at_10']:.4f} (depth {depth})")

        # The fixed cost: a server on the seed index, after the same load.
        seed_index = work / "seed-index"
        timed_command(["index", str(args.seed_corpus), "--out", str(seed_index), "--quiet"])
        with serving(seed_index, work, "seeds") as (http, server, _):
            timed_requests(http, searches(search_queries(sample[::-1], 20)))
            result["seed_search"] = timed_requests(http, searches(queries))
            timed_requests(http, [("/facets", {}), ("/map", {}), ("/papers", {"offset": 50})])
            result["seed_server_memory"] = process_memory(server.pid)

        # The index served: every read endpoint, the memory after them, then the updates.
        interval = str(args.reload_interval)
        with serving(args.index, work, "index", PAPERSEARCH_RELOAD_INTERVAL=interval) as (
            http,
            server,
            ready,
        ):
            result["ready_s"] = ready
            result["latency"] = measure_reads(http, papers, sample, queries)
            result["memory"] = process_memory(server.pid)
            removable = [p.id for p in sample[-UPDATE_PAPERS:]]
            result["updates"] = measure_updates(args, http, files, removable, work, notes)
            result["memory_after_updates"] = process_memory(server.pid)
        if "merge" in result["updates"]:
            result["recall_after_updates"] = dense_recall(args.index, queries, depth)
    result["derived"] = derived(result)
    print_corpus_table(result)
    return result


def derived(result: dict) -> dict:
    """The figures the targets are set on, each against its baseline of the same run."""
    papers = result["papers"]
    seed, memory = result["seed_server_memory"], result["memory"]
    values: dict = {
        "anonymous_kb_per_paper": (memory["anonymous_bytes"] - seed["anonymous_bytes"])
        / papers
        / KB,
        "rss_kb_per_paper": (memory["rss_bytes"] - seed["rss_bytes"]) / papers / KB,
        "rss_gb": memory["rss_bytes"] / GB,
        "search_p50_ms": result["latency"]["search"]["p50_ms"],
        # The same queries on the seed index in this run: what the size adds, machine aside.
        "search_p50_over_seed_index": result["latency"]["search"]["p50_ms"]
        / result["seed_search"]["p50_ms"],
        "recall_at_10": result["recall"]["recall_at_10"],
    }
    updates = result["updates"]
    if "add_embedded" in updates:
        values["add_rest_s"] = updates["add_embedded"]["rest_s"]
    if "remove" in updates:
        values["remove_s"] = updates["remove"]["seconds"]
    values["targets"] = {
        name: {
            "value": values[name],
            "limit": limit,
            "for": scope,
            "met": values[name] >= limit if name == "recall_at_10" else values[name] <= limit,
        }
        for name, (limit, scope) in TARGETS.items()
        if name in values
    }
    return values


def print_corpus_table(result: dict) -> None:
    label = result["label"] or f"{result['papers']} papers"
    print(f"\nscale benchmark, {label} ({result['papers']} papers)")
    for note in result["notes"]:
        print(f"  note: {note}")
    if result.get("build"):
        build = result["build"]
        print(
            f"  build from vectors          {build['seconds']:>9.1f} s  "
            f"(peak RSS {build.get('max_rss_bytes', 0) / 2**30:.1f} GiB)"
        )
    print(f"  server ready                {result['ready_s']:>9.1f} s")
    for name, measured in result["latency"].items():
        extra = (
            f"  ({measured['mean_wire_bytes'] / 2**20:.1f} MiB on the wire)"
            if name == "map"
            else ""
        )
        print(
            f"  {name:<26}  p50 {measured['p50_ms']:>7.1f} ms  "
            f"p99 {measured['p99_ms']:>7.1f} ms{extra}"
        )
    for name, run in result["updates"].items():
        if not isinstance(run, dict):
            continue
        served = run.get("served_after_s")
        seen = f"served after {served:.1f} s" if served is not None else "NOT served"
        extra = ""
        if "embedding" in run:
            extra = f" (embedding {run['embedding']['total_s']:.1f} s, rest {run['rest_s']:.1f} s)"
        print(f"  {name:<26}{run['seconds']:>9.1f} s{extra}, {seen}")
    memory, seed = result["memory"], result["seed_server_memory"]
    print(
        f"  server memory               RSS {memory['rss_bytes'] / 2**20:.0f} MiB, anonymous "
        f"{memory['anonymous_bytes'] / 2**20:.0f} MiB (seed index: {seed['rss_bytes'] / 2**20:.0f} "
        f"/ {seed['anonymous_bytes'] / 2**20:.0f} MiB)"
    )
    derived_values = result["derived"]
    print(
        "  per paper beyond the seeds  anonymous "
        f"{derived_values['anonymous_kb_per_paper']:.3f} kB, "
        f"RSS {derived_values['rss_kb_per_paper']:.3f} kB"
    )
    print(
        f"  search p50 / seed index     {derived_values['search_p50_over_seed_index']:.2f}x "
        f"(seed index p50 {result['seed_search']['p50_ms']:.1f} ms)"
    )
    print(f"  dense recall@10             {result['recall']['recall_at_10']:.4f}")
    print("  targets:")
    for name, target in derived_values["targets"].items():
        print(
            f"    {'met ' if target['met'] else 'MISS'} {name} = {target['value']:.3f} "
            f"(limit {target['limit']}; {target['for']})"
        )


def corpus_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="One index at scale: build from vectors, updates, memory, latency, recall "
        "(or a subcommand: serve, ann, titles; see the module docstring)"
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        required=True,
        help="a synthetic corpus folder (benchmarks/synthetic_corpus.py) or a corpus file",
    )
    parser.add_argument(
        "--vectors", type=Path, help="its vectors (default: vectors.parquet of a corpus folder)"
    )
    parser.add_argument(
        "--index", type=Path, required=True, help="index folder to build (replaced) and update"
    )
    parser.add_argument("--papers-label", help="how the results name the size (75k, 1m)")
    parser.add_argument("--out", type=Path, required=True, help="JSON results file")
    parser.add_argument(
        "--arxiv",
        type=Path,
        default=SHARED / "arxiv" / "arxiv-75k.jsonl.gz",
        help="real papers the added papers are generated from",
    )
    parser.add_argument(
        "--real-vectors",
        type=Path,
        default=Path("data/arxiv-vectors.parquet"),
        help="their vectors (papersearch export-vectors --index data/arxiv-index)",
    )
    parser.add_argument(
        "--seed-corpus", type=Path, default=SEED_CORPUS, help="the fixed-cost baseline's corpus"
    )
    parser.add_argument("--queries", type=int, default=200, help="timed searches per series")
    parser.add_argument(
        "--reuse-index",
        action="store_true",
        help="measure the index already at --index instead of building it (the build's time "
        "is then missing from the results)",
    )
    parser.add_argument("--reload-interval", type=float, default=2.0, help="the server's, s")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "probe":  # internal: one index in a fresh process
        folder, index_type, depth, truth = sys.argv[2:6]
        print(json.dumps(probe(Path(folder), index_type, int(depth), Path(truth))))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] not in ("serve", "ann", "titles", "-h", "--help"):
        args = corpus_parser().parse_args()
        results = {
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            **run_corpus(args),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nwritten to {args.out}")
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Without a subcommand, one index at scale: scale.py --corpus DIR --index DIR "
        "--out FILE (scale.py --corpus DIR --help for its options).",
    )
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
