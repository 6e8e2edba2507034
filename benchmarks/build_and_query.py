"""Benchmark: build the index (cold and cached) and query it over HTTP, against bare baselines.

What is measured, in one run on one machine:

1. Index build. ``papersearch index`` is run as a subprocess twice: first with an empty
   embedding cache (cold: every paper is embedded), then again (cached: nothing should be
   embedded). The wall clock covers the whole command: interpreter start, imports, model
   load, parsing, embedding, cache and index writes. The ``build s`` column is the build's own
   timer from its summary line (no interpreter start or imports, but model load included).
   The bare limit is ``Embedder.encode`` of the same texts in this process, with the model
   already loaded and warmed up (batch size 32, as the CLI uses).
2. Query latency. ``papersearch serve`` is started as a subprocess and sent sequential
   ``GET /search?q=…&k=10`` requests over one keep-alive connection. The bare limit is the
   same query sequence in this process: ``encode([q])``, the dense score of every paper and a
   top-k, without BM25, record look-ups, highlights, JSON or HTTP. A third series asks the
   server for ``mode=dense&highlight=false``, what a search did before hybrid ranking and
   highlights, so their cost is a ratio measured in the same run. The series alternate in
   ``--rounds`` blocks (the server sits idle while the bare block runs), so a burst of noise
   from elsewhere on the machine lands on all of them rather than on one.

Why ratios: absolute seconds depend on the machine, its load and its CPU frequency, and a
shared or virtual machine can drift by tens of percent between runs. The ratios compare the
service with its own bare limit measured minutes apart on the same machine, so they move
only when the overhead around the model changes. Read the absolute numbers as context, the
ratios as the result; p99 over a few hundred requests is itself noisy (a handful of samples).

Usage: ``python benchmarks/build_and_query.py [--corpus seeds] [--queries 200] [--rounds 4]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from itertools import cycle, islice
from pathlib import Path

import httpx
import numpy as np

from indexing.corpus import read_corpus
from indexing.reader import PaperIndex
from indexing.records import embedding_text
from models import Embedder, load_embedder
from service.settings import Settings

PAPERSEARCH = Path(sys.executable).with_name("papersearch")
BATCH_SIZE = 32
TOP_K = 10
READY_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0

QUERIES = (
    "multi-stage cascade ranking in large-scale recommender systems",
    "click-through rate prediction with feature interactions",
    "generative retrieval with semantic ids for recommendation",
    "scaling laws for sequential recommendation models",
    "large language models as recommenders",
    "live streaming recommendation with real-time user feedback",
    "gift prediction and creator incentives on live streaming platforms",
    "diffusion models for image generation",
    "text-to-video diffusion with temporal consistency",
    "code generation benchmarks for large language models",
    "repository-level code completion with retrieval",
    "reinforcement learning from human feedback for LLM alignment",
    "retrieval-augmented generation for question answering",
    "long-context efficiency in transformer inference",
    "mixture of experts for efficient model scaling",
    "user interest modeling from long behaviour sequences",
    "debiasing exposure and position bias in ranking",
    "multi-task learning for conversion rate estimation",
    "contrastive learning of sentence embeddings",
    "LLM agents using tools to solve multi-step tasks",
)

SUMMARY = re.compile(
    r"indexed (?P<papers>\d+) papers? from (?P<files>\d+) files? into .*: "
    r"(?P<embedded>\d+) embedded, (?P<reused>\d+) reused from cache, "
    r"(?P<skipped>\d+) skipped, (?P<merged>\d+) duplicates? merged, (?P<seconds>[\d.]+) s"
)
# What a rerun on an unchanged corpus prints: the index is kept, nothing is embedded.
CURRENT = re.compile(r"index .* is current \((?P<papers>\d+) papers?")


@dataclass
class BuildRun:
    """One ``papersearch index`` command: wall clock plus what its summary line reported."""

    label: str
    wall_seconds: float
    build_seconds: float
    papers: int
    embedded: int
    reused: int
    skipped: int


@dataclass
class Latency:
    """Summary of per-request latencies, in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ms = np.asarray(seconds, dtype=np.float64) * 1000.0
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(
            count=len(ms),
            mean_ms=float(ms.mean()),
            p50_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
            min_ms=float(ms.min()),
            max_ms=float(ms.max()),
        )


def _count(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("seeds"), help="corpus to index")
    parser.add_argument(
        "--workdir", type=Path, help="where index and cache go (default: a fresh temporary dir)"
    )
    parser.add_argument("--queries", type=_count(1), default=200, help="timed queries")
    parser.add_argument("--warmup", type=_count(0), default=20, help="untimed queries first")
    parser.add_argument(
        "--rounds", type=_count(1), default=4, help="alternating HTTP / bare blocks of queries"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results/build_and_query.json"),
        help="JSON results file",
    )
    return parser.parse_args(argv)


@contextmanager
def working_dir(requested: Path | None) -> Iterator[Path]:
    """The given folder (its cache must be empty or absent), or a temporary one removed after."""
    if requested is None:
        with tempfile.TemporaryDirectory(prefix="papersearch-bench-") as tmp:
            yield Path(tmp)
        return
    cache = requested / "cache"
    if cache.exists() and any(cache.iterdir()):
        sys.exit(f"error: {cache} is not empty; the cold build needs an empty cache")
    requested.mkdir(parents=True, exist_ok=True)
    yield requested


# --- index build -------------------------------------------------------------------------


def parse_summary(stdout: str) -> re.Match[str]:
    for line in stdout.splitlines():
        match = SUMMARY.search(line)
        if match:
            return match
    raise RuntimeError(f"no summary line in `papersearch index` output:\n{stdout}")


def run_index(label: str, corpus: Path, workdir: Path) -> BuildRun:
    command = [
        str(PAPERSEARCH), "index", str(corpus),
        "--out", str(workdir / "index"), "--cache-dir", str(workdir / "cache"), "--quiet",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    current = CURRENT.search(done.stdout)
    if current:
        papers = int(current["papers"])
        return BuildRun(label, wall, wall, papers, embedded=0, reused=papers, skipped=0)
    summary = parse_summary(done.stdout)
    return BuildRun(
        label=label,
        wall_seconds=wall,
        build_seconds=float(summary["seconds"]),
        papers=int(summary["papers"]),
        embedded=int(summary["embedded"]),
        reused=int(summary["reused"]),
        skipped=int(summary["skipped"]),
    )


def corpus_texts(corpus: Path) -> list[str]:
    """The texts the indexer embeds, read the same way (same capture date)."""
    papers = read_corpus([corpus], Settings().capture_date).papers
    return [embedding_text(paper) for paper in papers]


def time_bare_encode(embedder: Embedder, texts: list[str]) -> float:
    embedder.encode(texts[:BATCH_SIZE], batch_size=BATCH_SIZE)  # warm-up, not timed
    started = time.perf_counter()
    embedder.encode(texts, batch_size=BATCH_SIZE)
    return time.perf_counter() - started


# --- queries -----------------------------------------------------------------------------


def query_sequence(count: int) -> list[str]:
    return list(islice(cycle(QUERIES), count))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(index_dir: Path, port: int, log_path: Path, **env: str) -> subprocess.Popen[bytes]:
    """``papersearch serve``; ``env`` sets PAPERSEARCH_* variables. The query cache is off
    unless asked for: the benchmarks repeat queries, and cached ones would skip the model."""
    command = [
        str(PAPERSEARCH), "serve", "--index", str(index_dir),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    environment = {**os.environ, "PAPERSEARCH_QUERY_CACHE_SIZE": "0", **env}
    # A file, not a pipe: uvicorn logs every request and an unread pipe would fill and block.
    with log_path.open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def wait_ready(
    client: httpx.Client, server: subprocess.Popen[bytes], spawned: float, log_path: Path
) -> float:
    """Poll /readyz until 200; return seconds from spawn to that first 200."""
    while time.perf_counter() - spawned < READY_TIMEOUT_S:
        if server.poll() is not None:
            raise RuntimeError(f"server exited ({server.returncode}):\n{_tail(log_path)}")
        try:
            if client.get("/readyz").status_code == 200:
                return time.perf_counter() - spawned
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server not ready after {READY_TIMEOUT_S:.0f} s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# The service's default (hybrid ranking, highlights) and the request that does what every
# search did before hybrid search and highlights existed (dense ranking only).
DEFAULT_REQUEST: dict[str, str] = {}
DENSE_ONLY_REQUEST = {"mode": "dense", "highlight": "false"}


def time_http_queries(
    client: httpx.Client, queries: list[str], extra: dict[str, str] = DEFAULT_REQUEST
) -> list[float]:
    """Latency of each request; every answer must be a 200 with hits."""
    timings: list[float] = []
    for query in queries:
        started = time.perf_counter()
        response = client.get("/search", params={"q": query, "k": TOP_K, **extra})
        timings.append(time.perf_counter() - started)
        response.raise_for_status()
        if not response.json()["results"]:
            raise RuntimeError(f"no results for {query!r}")
    return timings


def time_bare_queries(embedder: Embedder, index: PaperIndex, queries: Sequence[str]) -> list[float]:
    """Each query embedded and its nearest papers found, as the service's search depth has it."""
    depth = Settings().search_depth  # read once: building Settings is not part of a search
    timings: list[float] = []
    for query in queries:
        started = time.perf_counter()
        index.nearest(embedder.encode([query])[0], TOP_K, depth)
        timings.append(time.perf_counter() - started)
    return timings


def measure_queries(
    index_dir: Path, workdir: Path, embedder: Embedder, args: argparse.Namespace
) -> dict:
    """HTTP and bare latencies in alternating blocks, after an untimed warm-up of each."""
    port, log_path = free_port(), workdir / "serve.log"
    spawned = time.perf_counter()
    server = start_server(index_dir, port, log_path)
    index = PaperIndex.open(index_dir, model=embedder.name)
    http: list[float] = []
    http_dense: list[float] = []
    bare: list[float] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as client:
            cold_start = wait_ready(client, server, spawned, log_path)
            warmup = query_sequence(args.warmup)
            time_http_queries(client, warmup)  # untimed: first requests pay one-off costs
            time_http_queries(client, warmup, DENSE_ONLY_REQUEST)
            time_bare_queries(embedder, index, warmup)
            per_round = max(1, args.queries // args.rounds)
            queries = query_sequence(per_round * args.rounds)
            for start in range(0, len(queries), per_round):
                block = queries[start : start + per_round]
                http.extend(time_http_queries(client, block))
                http_dense.extend(time_http_queries(client, block, DENSE_ONLY_REQUEST))
                bare.extend(time_bare_queries(embedder, index, block))
    finally:
        stop_server(server)
        index.close()
    return {
        "cold_start_seconds": cold_start,
        "latency": Latency.of(http),
        "dense_only_latency": Latency.of(http_dense),
        "bare_latency": Latency.of(bare),
    }


# --- report ------------------------------------------------------------------------------


def machine_info() -> dict:
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def build_results(args: argparse.Namespace, m: dict) -> dict:
    cold, cached = m["cold"], m["cached"]
    http, bare = m["queries"]["latency"], m["queries"]["bare_latency"]
    http_dense = m["queries"]["dense_only_latency"]
    n_texts, encode_s = m["texts"], m["bare_encode_seconds"]
    # cold - cached build time leaves model load + embedding + cache writes; minus the model
    # load measured here, an estimate of the embedding part (cached run embeds nothing).
    embed_estimate = cold.build_seconds - cached.build_seconds - m["model_load_seconds"]
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "corpus": str(args.corpus),
        "corpus_resolved": str(args.corpus.resolve()),
        "papers": cold.papers,
        "model": m["model"],
        "index_build": {
            "cold": asdict(cold),
            "cached": asdict(cached),
            "cached_embedded_nothing": cached.embedded == 0,
        },
        "encode": {
            "batch_size": BATCH_SIZE,
            "texts": n_texts,
            "model_load_seconds_in_process": m["model_load_seconds"],
            "bare_encode_seconds": encode_s,
            "bare_encode_docs_per_s": n_texts / encode_s,
            "cold_command_docs_per_s_end_to_end": cold.embedded / cold.wall_seconds,
            "cold_build_docs_per_s_from_summary": cold.embedded / cold.build_seconds,
            "embedding_part_seconds_estimate": embed_estimate,
            "embedding_part_docs_per_s_estimate": (
                cold.embedded / embed_estimate if embed_estimate > 0 else None
            ),
        },
        "query": {
            "k": TOP_K,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "server_cold_start_seconds": m["queries"]["cold_start_seconds"],
            "http": asdict(http),
            "http_dense_only": asdict(http_dense),
            "bare_encode_plus_search": asdict(bare),
        },
        "ratios": {
            "bare_encode_seconds / cold_total_wall_seconds": encode_s / cold.wall_seconds,
            "http_p50 / bare_p50": http.p50_ms / bare.p50_ms,
            "http_p99 / bare_p99": http.p99_ms / bare.p99_ms,
            "http_p50 / http_dense_only_p50": http.p50_ms / http_dense.p50_ms,
            "http_p99 / http_dense_only_p99": http.p99_ms / http_dense.p99_ms,
        },
    }


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_table(r: dict) -> None:
    build, enc, q, ratios = r["index_build"], r["encode"], r["query"], r["ratios"]
    machine = r["machine"]
    print(
        f"\npapersearch build & query  |  {machine['cpu_count']} CPUs, {machine['platform']}  |  "
        f"corpus {r['corpus']}: {r['papers']} papers  |  {r['timestamp']}\n"
    )
    print(f"{'index build':<36}{'wall s':>9}{'build s':>9}{'embedded':>10}{'reused':>8}")
    for run in (build["cold"], build["cached"]):
        print(
            f"  {run['label']:<34}{run['wall_seconds']:>9.2f}{run['build_seconds']:>9.2f}"
            f"{run['embedded']:>10}{run['reused']:>8}"
        )
    print(f"\n{'encode throughput (batch 32)':<46}{'docs/s':>9}{'seconds':>9}")
    rows = [
        ("bare Embedder.encode (model loaded, warm)", enc["bare_encode_docs_per_s"],
         enc["bare_encode_seconds"]),
        ("cold command, end to end (wall)", enc["cold_command_docs_per_s_end_to_end"],
         build["cold"]["wall_seconds"]),
        ("cold build_index (summary, incl. load)", enc["cold_build_docs_per_s_from_summary"],
         build["cold"]["build_seconds"]),
        ("embedding part (estimate)", enc["embedding_part_docs_per_s_estimate"],
         enc["embedding_part_seconds_estimate"]),
    ]  # fmt: skip
    for name, rate, seconds in rows:
        print(f"  {name:<44}{_fmt(rate, '>9.1f')}{seconds:>9.2f}")
    print(f"  (model load in this process: {enc['model_load_seconds_in_process']:.2f} s)")
    print(f"\n{'query latency, ms':<40}{'n':>6}{'mean':>8}{'p50':>8}{'p90':>8}{'p99':>8}")
    latencies = {
        "HTTP /search (hybrid, highlights)": q["http"],
        "HTTP /search (dense, no highlights)": q["http_dense_only"],
        "bare encode+score+top-k": q["bare_encode_plus_search"],
    }
    for name, lat in latencies.items():
        print(
            f"  {name:<38}{lat['count']:>6}{lat['mean_ms']:>8.2f}{lat['p50_ms']:>8.2f}"
            f"{lat['p90_ms']:>8.2f}{lat['p99_ms']:>8.2f}"
        )
    cold_start = q["server_cold_start_seconds"]
    print(f"  server cold start (spawn -> first 200 on /readyz): {cold_start:.2f} s")
    print("\nratios (the comparable numbers)")
    for name, value in ratios.items():
        print(f"  {name:<46}{value:>8.3f}")


def write_results(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


# --- main --------------------------------------------------------------------------------


def run_benchmark(args: argparse.Namespace, workdir: Path) -> dict:
    model = Settings().model
    index_dir = workdir / "index"
    m: dict = {"model": model}
    m["cold"] = run_index("cold (empty cache)", args.corpus, workdir)
    m["cached"] = run_index("cached", args.corpus, workdir)
    if m["cold"].reused or m["cached"].embedded:
        print("warning: cold build reused, or cached build embedded, papers", file=sys.stderr)

    texts = corpus_texts(args.corpus)
    started = time.perf_counter()
    embedder = load_embedder(model)
    m["model_load_seconds"] = time.perf_counter() - started
    m["texts"], m["bare_encode_seconds"] = len(texts), time_bare_encode(embedder, texts)
    m["queries"] = measure_queries(index_dir, workdir, embedder, args)
    return m


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with working_dir(args.workdir) as workdir:
        measurements = run_benchmark(args, workdir)
    results = build_results(args, measurements)
    print_table(results)
    write_results(results, args.out)
    print(f"\nresults written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
