"""Profile: where the time of a default ``/search`` goes, sampled on a real server.

``papersearch serve`` (one process) is started over the given index and sent the default
search (hybrid, highlights, citations, ``k=10``) for queries it has not seen, one at a time
over a keep-alive connection, while py-spy samples every thread of the server. Each sample
is charged to the innermost frame of the request path it falls in (the model, the dense
search, BM25, the filter, fusion and ranking, highlights, record loads, serialisation); what
falls in none of them is the HTTP server and framework (uvicorn, Starlette, FastAPI, the
service's middleware and logs). Idle threads are not sampled, so the figures are the time a
request keeps a thread of the server busy, per request. The client's latency and the bare
cost (the query embedded and searched in this process) and the floor under any search (an
empty route through the same HTTP stack, same client) are measured in the same run.

Usage (``make bench`` runs it on the SciFact index)::

    python benchmarks/profile_search.py --index data/bench/scifact \\
        --queries ../shared/data/scifact/queries_train.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
from fastapi import FastAPI, Response

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_and_query import free_port, stop_server
from peer import bare

from service.evaluation import read_queries

PAPERSEARCH = Path(sys.executable).with_name("papersearch")
PY_SPY = Path(sys.executable).with_name("py-spy")
SAMPLES_PER_S = 1000
WARMUP = 30

# Where a sample is charged: the innermost frame whose function matches, searched from the
# leaf of the stack outwards. The names are the service's own functions (and the model's
# runtime), so a library call is charged to the step of ours that made it.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("encode the query (model)", ("OnnxEmbedder.encode", "TorchEmbedder.encode")),
    ("hand the query to the encoder", ("QueryEncoder.",)),
    ("dense search", ("DenseIndex.", "dense_scores_at", "dense_range")),
    ("BM25", ("LexicalIndex.", "analyse (")),
    ("filter", ("SearchFilters.mask",)),
    ("highlights", ("highlight (", "TermLocator.")),
    ("record loads", ("papers_at", "sentences_at")),
    ("serialisation", ("model_dump_json", "SearchHit", "SearchResponse", "_hits")),
    ("fusion and ranking", ("hybrid_scores", "best_first", "newest_first", "SearchEngine.")),
)
HTTP = "HTTP server, framework, middleware, logs"


# The floor under any search: an empty FastAPI route answering bytes of the size of a
# search's answer, through the same uvicorn, with the same client (run as
# ``uvicorn profile_search:empty_app`` from this folder).
EMPTY_ANSWER = b'{"results": "' + b"x" * 20_000 + b'"}'
empty_app = FastAPI()


@empty_app.get("/search")
async def _empty_search(q: str) -> Response:
    return Response(EMPTY_ANSWER, media_type="application/json")


def classify(stack: list[str]) -> str:
    for frame in reversed(stack):
        for category, patterns in CATEGORIES:
            if any(pattern in frame for pattern in patterns):
                return category
    return HTTP


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True, help="index folder to serve")
    parser.add_argument(
        "--queries", type=Path, required=True, help="BEIR queries JSONL (unseen by the server)"
    )
    parser.add_argument("--requests", type=int, default=600, help="profiled requests")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/profile.json"))
    args = parser.parse_args(argv)
    if shutil.which(str(PY_SPY)) is None:
        parser.error(f"{PY_SPY} is missing: pip install -e '.[bench]' (make bench does)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    queries = list(read_queries(args.queries).values())
    needed = WARMUP + args.requests
    if len(queries) < needed:
        sys.exit(f"error: {args.queries} has {len(queries)} queries, {needed} needed")
    warmup, profiled = queries[:WARMUP], queries[WARMUP : WARMUP + args.requests]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="papersearch-profile-") as work:
        log, samples = Path(work) / "serve.log", Path(work) / "samples.txt"
        with log.open("wb") as output:
            command = [str(PAPERSEARCH), "serve", "--index", str(args.index)]
            command += ["--port", str(port), "--workers", "1"]
            server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                _wait(client, server, log)
                for query in warmup:
                    client.get("/search", params={"q": query}).raise_for_status()
                spy = subprocess.Popen(
                    [str(PY_SPY), "record", "--pid", str(server.pid), "--rate",
                     str(SAMPLES_PER_S), "--format", "raw", "--output", str(samples),
                     "--threads", "--nonblocking"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
                time.sleep(1.0)  # py-spy attaches
                latencies = []
                for query in profiled:
                    began = time.perf_counter()
                    client.get("/search", params={"q": query}).raise_for_status()
                    latencies.append(time.perf_counter() - began)
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
        finally:
            stop_server(server)
        charged: Counter[str] = Counter()
        for line in samples.read_text(encoding="utf-8").splitlines():
            stack, _, count = line.rpartition(" ")
            charged[classify(stack.split(";"))] += int(count)
    baseline = bare(args.index, profiled)
    floor = http_floor(profiled)
    per_request = {
        category: round(count / SAMPLES_PER_S / len(profiled) * 1000, 3)
        for category, count in charged.most_common()
    }
    client_p50 = float(np.percentile(latencies, 50)) * 1000
    report = {
        "index": str(args.index),
        "requests": len(profiled),
        "client_p50_ms": round(client_p50, 2),
        "client_mean_ms": round(float(np.mean(latencies)) * 1000, 2),
        "server_busy_ms_per_request": round(sum(per_request.values()), 3),
        "breakdown_ms_per_request": per_request,
        "bare": baseline,
        "empty_route_p50_ms": floor,
    }
    print(f"{len(profiled)} default searches over {args.index}, one at a time")
    print(f"  client p50 {client_p50:.2f} ms, mean {report['client_mean_ms']:.2f} ms")
    print(f"  bare encode + nearest papers in-process: p50 {baseline['p50_ms']:.2f} ms")
    print(f"  an empty route over the same HTTP stack: p50 {floor:.2f} ms")
    print("  server threads busy, ms a request:")
    for category, ms in per_request.items():
        print(f"    {category:<42}{ms:>7.3f}")
    print(f"    {'total':<42}{report['server_busy_ms_per_request']:>7.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {args.out}")
    return 0


def http_floor(queries: Sequence[str]) -> float:
    """p50 of ``queries`` sent to ``empty_app``, one at a time over one connection."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("uvicorn")), "profile_search:empty_app"]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    server = subprocess.Popen(command, cwd=Path(__file__).resolve().parent)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get("/search", params={"q": "x"}).raise_for_status()
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        sys.exit("error: the empty app did not start")
                    time.sleep(0.05)
            latencies = []
            for query in queries:
                began = time.perf_counter()
                client.get("/search", params={"q": query}).raise_for_status()
                latencies.append(time.perf_counter() - began)
    finally:
        stop_server(server)  # type: ignore[arg-type]
    return round(float(np.percentile(latencies, 50)) * 1000, 2)


def _wait(client: httpx.Client, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"error: the server exited:\n{log.read_text(errors='replace')}")
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    sys.exit("error: the server was not ready within 300 s")


if __name__ == "__main__":
    sys.exit(main())
