"""Benchmark: Papersearch beside its closest peer, txtai, on one corpus with one client.

Both are built from the same SciFact subset (every paper judged for a test query, then random
others up to ``--subset``, seed 0) with the same model (all-MiniLM-L6-v2 from its package),
each with its own defaults, and each served the way a user starts it: txtai's API under
uvicorn, Papersearch by ``papersearch serve``. txtai (pinned) lives in its own virtual
environment under the work folder, installed on the first run (torch pinned first, as in
the Makefile, so no CUDA build is pulled).

For each system, in one run, one after the other on the same machine:

- build: the wall clock of the whole indexing command (interpreter, imports, model load,
  parsing, embedding, writing; Papersearch with an empty embedding cache), as documents/s;
- start-up: from spawning the server to its first 200 answer to a search;
- sequential: the 300 SciFact test queries over one keep-alive connection (p50, p99: the
  1-client level), whose answers also give nDCG@10 against the test judgments;
- concurrency: 8, then 16 clients (threads of this process, one keep-alive connection each,
  on the same cores as the server) over SciFact train queries: requests/s, p50, p99;
- memory after the load: the RSS of the largest server process, and the PSS summed over
  all of them (several workers share pages; PSS divides them fairly);
- the query cache (Papersearch): on a server of one worker, the 300 test queries sent twice,
  new and then repeated.

Every timed query is new to the server: the warm-up takes the first 30 train queries, and each
later phase the next unseen ones, so Papersearch's query-vector cache answers none of them
(its effect is measured apart, on a server of its own). The same queries go to every system
in the same order. Then, in this process, the bare cost Papersearch's HTTP latency is compared with:
embedding each test query and finding its nearest papers (same backend, same index), nothing
else.

Results: ``benchmarks/results/peer.json`` and a table of ratios against txtai. Usage::

    python benchmarks/peer.py --scifact ../shared/data/scifact
    python benchmarks/peer.py --scifact ... --systems papersearch,txtai-dense --keep-builds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_and_query import free_port, time_bare_queries
from loadtest import stop_all
from scale import run_clients, server_memory, server_processes

from indexing.manifest import read_manifest
from indexing.reader import PaperIndex
from models import KNOWN_MODELS, load_embedder
from service.evaluation import read_qrels, read_queries, score_run

PAPERSEARCH = Path(sys.executable).with_name("papersearch")
TXTAI_VERSION = "9.14.0"
TORCH = "torch==2.13.0"  # as the Makefile pins it: the CPU wheel on this machine
SUBSET_SEED = 0
TOP_K = 10
WARMUP_QUERIES = 30
CLIENT_LEVELS = (8, 16)
READY_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class System:
    """One server to measure: how to build its index and start it, and what to ask it."""

    name: str
    kind: str  # "papersearch" or "txtai"
    options: dict[str, str] = field(default_factory=dict)  # papersearch request parameters
    backend: str | None = None  # papersearch index backend (None: the default)
    hybrid: bool = False  # txtai: dense vectors plus its BM25 scoring


SYSTEMS = {
    system.name: system
    for system in (
        System("txtai-dense", "txtai"),
        System("txtai-hybrid", "txtai", hybrid=True),
        System("papersearch", "papersearch"),
        System("papersearch-dense", "papersearch", {"mode": "dense", "highlight": "false"}),
        System("papersearch-torch", "papersearch", backend="torch"),
    )
}
# Targets of the performance issue, against txtai dense in the same run.
REFERENCE = "txtai-dense"


# --- corpus and queries --------------------------------------------------------------------


@dataclass(frozen=True)
class QuerySets:
    warmup: list[str]
    sequential: list[tuple[str, str]]  # (query id, text): the test queries, judged
    concurrent: dict[int, list[str]]  # clients -> queries no phase before has sent

    @classmethod
    def of(cls, scifact: Path, judged: set[str]) -> QuerySets:
        train = list(read_queries(scifact / "queries_train.jsonl").values())
        test = [(qid, text) for qid, text in read_queries(scifact / "queries.jsonl").items()]
        test = [(qid, text) for qid, text in test if qid in judged]
        rest = train[WARMUP_QUERIES:]
        share = len(rest) // len(CLIENT_LEVELS)
        concurrent = {
            clients: rest[i * share : (i + 1) * share] for i, clients in enumerate(CLIENT_LEVELS)
        }
        return cls(train[:WARMUP_QUERIES], test, concurrent)


def write_subset(scifact: Path, judged_docs: set[str], size: int, folder: Path) -> Path:
    """Every paper judged for a test query, then random others up to ``size`` (fixed seed)."""
    lines = (scifact / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    keep = [line for line in lines if json.loads(line)["_id"] in judged_docs]
    others = [line for line in lines if json.loads(line)["_id"] not in judged_docs]
    keep += random.Random(SUBSET_SEED).sample(others, max(0, size - len(keep)))
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.jsonl"
    text = "\n".join(keep) + "\n"
    if not corpus.is_file() or corpus.read_text(encoding="utf-8") != text:
        corpus.write_text(text, encoding="utf-8")
    return corpus


# --- txtai ---------------------------------------------------------------------------------


def txtai_python(work: Path) -> Path:
    """The txtai environment's interpreter, installed on first use (pinned versions)."""
    venv = work / f"txtai-{TXTAI_VERSION}"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.is_file():
        return python
    print(f"installing txtai {TXTAI_VERSION} into {venv} (once)", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, TORCH], check=True)
    subprocess.run([*pip, f"txtai[api]=={TXTAI_VERSION}"], check=True)
    marker.touch()
    return python


# Run by the txtai environment's interpreter: its defaults, the same text Papersearch embeds
# (title, a line break, the abstract).
TXTAI_BUILD = textwrap.dedent(
    """
    import json, sys
    from txtai import Embeddings
    corpus, out, model, hybrid = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    documents = []
    with open(corpus, encoding="utf-8") as lines:
        for line in lines:
            doc = json.loads(line)
            text = f"{doc['title']}\\n{doc['text']}" if doc.get("title") else doc["text"]
            documents.append((doc["_id"], text, None))
    embeddings = Embeddings(path=model, content=True, hybrid=hybrid)
    embeddings.index(documents)
    embeddings.save(out)
    """
)


def offline_environment() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


# --- building ------------------------------------------------------------------------------


@dataclass
class Build:
    seconds: float
    documents: int
    reused: bool  # --keep-builds found it built already: no build time measured

    @property
    def documents_per_s(self) -> float | None:
        return None if self.reused else self.documents / self.seconds


def build(system: System, corpus: Path, documents: int, work: Path, keep: bool) -> Build:
    index = work / "indexes" / system_index_name(system)
    if keep and index.exists():
        return Build(0.0, documents, reused=True)
    index.parent.mkdir(parents=True, exist_ok=True)
    if system.kind == "txtai":
        shutil.rmtree(index, ignore_errors=True)
        model = str(KNOWN_MODELS["all-MiniLM-L6-v2"].path())
        command = [str(txtai_python(work)), "-c", TXTAI_BUILD, str(corpus), str(index), model]
        command.append("1" if system.hybrid else "0")
        started = time.perf_counter()
        subprocess.run(command, check=True, env=offline_environment(), capture_output=True)
        return Build(time.perf_counter() - started, documents, reused=False)
    with tempfile.TemporaryDirectory(prefix="peer-cache-") as cache:  # nothing cached
        command = [str(PAPERSEARCH), "index", str(corpus), "--out", str(index), "--force"]
        command += ["--cache-dir", cache, "--quiet"]
        if system.backend:
            command += ["--backend", system.backend]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        return Build(time.perf_counter() - started, documents, reused=False)


def system_index_name(system: System) -> str:
    if system.kind == "txtai":
        return "txtai-hybrid" if system.hybrid else "txtai-dense"
    return f"papersearch-{system.backend or 'default'}"


# --- serving -------------------------------------------------------------------------------


def start(system: System, work: Path, port: int, log: Path, *flags: str) -> subprocess.Popen[bytes]:
    index = work / "indexes" / system_index_name(system)
    if system.kind == "txtai":
        config = work / f"{system.name}.yml"
        config.write_text(f"path: {index}\nembeddings:\n  content: true\n", encoding="utf-8")
        python = txtai_python(work)
        command = [str(python), "-m", "uvicorn", "txtai.api:app"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        env = {**offline_environment(), "CONFIG": str(config)}
    else:
        command = [str(PAPERSEARCH), "serve", "--index", str(index), "--port", str(port)]
        command += flags
        env = dict(os.environ)
    with log.open("wb") as output:  # a file: an unread pipe would fill and block the server
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)


def search_request(system: System, query: str) -> tuple[str, dict[str, str | int]]:
    if system.kind == "txtai":
        return "/search", {"query": query, "limit": TOP_K}
    return "/search", {"q": query, "k": TOP_K, **system.options}


def result_ids(system: System, body: object) -> list[str]:
    hits = body if system.kind == "txtai" else body["results"]  # type: ignore[index]
    return [str(hit["id"]) for hit in hits]  # type: ignore[index, union-attr]


def first_answer(system: System, url: str, server: subprocess.Popen[bytes], log: Path) -> float:
    """Seconds from now (just after the spawn) to the first 200 answer to a search."""
    started = time.perf_counter()
    path, params = search_request(system, "warm-up")
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        while time.perf_counter() - started < READY_TIMEOUT_S:
            if server.poll() is not None:
                raise RuntimeError(f"{system.name} exited:\n{log.read_text(errors='replace')}")
            try:
                if client.get(path, params=params).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    raise RuntimeError(f"{system.name} gave no answer in {READY_TIMEOUT_S:.0f} s")


@dataclass
class Timed:
    latencies: list[float]
    seconds: float
    answers: list[list[str]]

    def summary(self, clients: int) -> dict[str, float]:
        ms = np.asarray(self.latencies) * 1000
        return {
            "clients": clients,
            "requests": len(ms),
            "requests_per_s": round(len(ms) / self.seconds, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
        }


def drive(system: System, url: str, queries: Sequence[str], clients: int) -> Timed:
    """``queries`` shared out over ``clients`` threads, each with its own connection."""
    shares = [list(range(i, len(queries), clients)) for i in range(clients)]
    latencies = [0.0] * len(queries)
    answers: list[list[str]] = [[] for _ in queries]
    failures: list[str] = []

    def client(positions: list[int]) -> None:
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as http:
            for position in positions:
                path, params = search_request(system, queries[position])
                began = time.perf_counter()
                response = http.get(path, params=params)
                latencies[position] = time.perf_counter() - began
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                    continue
                answers[position] = result_ids(system, response.json())

    seconds = run_clients(client, shares)
    if failures:
        raise RuntimeError(f"{system.name}: {len(failures)} failed requests, e.g. {failures[0]}")
    return Timed(latencies, seconds, answers)


def measure(system: System, work: Path, queries: QuerySets, qrels: dict) -> dict:
    port, log = free_port(), work / f"{system.name}.log"
    url = f"http://127.0.0.1:{port}"
    server = start(system, work, port, log)
    processes = [(server.pid, "server")]
    try:
        result: dict = {"start_to_first_answer_s": round(first_answer(system, url, server, log), 2)}
        drive(system, url, queries.warmup, 1)
        sequential = drive(system, url, [text for _, text in queries.sequential], 1)
        result["sequential"] = sequential.summary(1)
        run = {
            qid: {doc: float(TOP_K - rank) for rank, doc in enumerate(answer)}
            for (qid, _), answer in zip(queries.sequential, sequential.answers, strict=True)
        }
        judged = [qid for qid, _ in queries.sequential]
        result["ndcg_at_10"] = score_run(run, qrels, judged)["nDCG@10"]
        result["concurrent"] = [
            drive(system, url, queries.concurrent[clients], clients).summary(clients)
            for clients in CLIENT_LEVELS
        ]
        processes = server_processes(server.pid)
        result["memory_after_load"] = server_memory(server.pid)
    finally:
        stop_all(server, processes)
    return result


def query_cache_effect(system: System, work: Path, queries: Sequence[str]) -> dict:
    """Papersearch's query-vector cache: the same queries sent twice in a row to a server
    of one worker (each worker keeps its own cache, and which worker a connection reaches
    is the kernel's choice), new the first time, repeated the second."""
    port, log = free_port(), work / f"{system.name}-cache.log"
    url = f"http://127.0.0.1:{port}"
    server = start(system, work, port, log, "--workers", "1")
    try:
        first_answer(system, url, server, log)
        new = drive(system, url, queries, 1).summary(1)
        repeated = drive(system, url, queries, 1).summary(1)
    finally:
        stop_all(server, server_processes(server.pid))
    return {"new": new, "repeated": repeated}


# --- bare ----------------------------------------------------------------------------------


def bare(index_dir: Path, queries: Sequence[str]) -> dict[str, float]:
    """Embed each query and find its nearest papers in this process: what the HTTP p50 of
    Papersearch is compared with (same backend, the index's own, and the same search depth)."""
    manifest = read_manifest(index_dir)
    embedder = load_embedder(manifest.model, manifest.backend)
    index = PaperIndex.open(index_dir, model=manifest.model, backend=manifest.backend)
    time_bare_queries(embedder, index, queries[:WARMUP_QUERIES])  # warm-up, not counted
    latencies = time_bare_queries(embedder, index, queries)
    index.close()
    ms = np.asarray(latencies) * 1000
    return {
        "backend": manifest.backend,
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


# --- report --------------------------------------------------------------------------------


def ratios(results: dict[str, dict], reference: str) -> dict[str, dict[str, float]]:
    """Each system against ``reference``: the figures the README's table shows."""
    base = results.get(reference)
    if base is None:
        return {}
    out: dict[str, dict[str, float]] = {}
    for name, measured in results.items():
        if name == reference:
            continue
        eight = _level(measured, 8)
        ratio: dict[str, float] = {
            "sequential_p50": measured["sequential"]["p50_ms"] / base["sequential"]["p50_ms"],
            "requests_per_s_8_clients": eight["requests_per_s"] / _level(base, 8)["requests_per_s"],
            "requests_per_s_16_clients": _level(measured, 16)["requests_per_s"]
            / _level(base, 16)["requests_per_s"],
            "p99_over_p50_8_clients": eight["p99_ms"] / eight["p50_ms"],
            "largest_rss": measured["memory_after_load"]["largest_rss_bytes"]
            / base["memory_after_load"]["largest_rss_bytes"],
            "total_pss": measured["memory_after_load"]["total_pss_bytes"]
            / base["memory_after_load"]["total_pss_bytes"],
            "start_to_first_answer": measured["start_to_first_answer_s"]
            / base["start_to_first_answer_s"],
        }
        if measured["build"]["documents_per_s"] and base["build"]["documents_per_s"]:
            ratio["build_documents_per_s"] = (
                measured["build"]["documents_per_s"] / base["build"]["documents_per_s"]
            )
        out[name] = {key: round(value, 2) for key, value in ratio.items()}
    return out


def _level(measured: dict, clients: int) -> dict[str, float]:
    return next(level for level in measured["concurrent"] if level["clients"] == clients)


def print_table(results: dict[str, dict], compared: dict[str, dict[str, float]]) -> None:
    names = list(results)
    rows: list[tuple[str, Callable[[dict], str]]] = [
        ("build, documents/s", lambda m: _number(m["build"]["documents_per_s"], "{:.1f}")),
        ("start to first answer, s", lambda m: f"{m['start_to_first_answer_s']:.2f}"),
        (
            "sequential p50 / p99, ms",
            lambda m: f"{m['sequential']['p50_ms']:.1f} / {m['sequential']['p99_ms']:.1f}",
        ),
    ]
    for clients in CLIENT_LEVELS:
        rows.append(
            (
                f"{clients} clients: req/s, p50 / p99 ms",
                lambda m, c=clients: (
                    f"{_level(m, c)['requests_per_s']:.1f}, "
                    f"{_level(m, c)['p50_ms']:.0f} / {_level(m, c)['p99_ms']:.0f}"
                ),
            )
        )
    rows += [
        (
            "RSS largest process / PSS all, MB",
            lambda m: (
                f"{m['memory_after_load']['largest_rss_bytes'] / 1e6:.0f} / "
                f"{m['memory_after_load']['total_pss_bytes'] / 1e6:.0f}"
            ),
        ),
        ("SciFact subset nDCG@10", lambda m: f"{m['ndcg_at_10']:.4f}"),
        (
            "1 worker: new / repeated queries p50, ms",
            lambda m: (
                f"{m['query_cache']['new']['p50_ms']:.1f} / "
                f"{m['query_cache']['repeated']['p50_ms']:.1f}"
                if "query_cache" in m
                else "-"
            ),
        ),
    ]
    width = max(len(name) for name in names) + 2
    print(f"\n{'':<36}" + "".join(f"{name:>{width}}" for name in names))
    for label, cell in rows:
        print(f"{label:<36}" + "".join(f"{cell(results[name]):>{width}}" for name in names))
    if compared:
        targets = "req/s at 8 clients >= 3, p99/p50 <= 4, RSS <= 0.5"
        print(f"\nratios to {REFERENCE} (targets: {targets})")
        keys = list(next(iter(compared.values())))
        print(f"{'':<28}" + "".join(f"{name:>{width}}" for name in compared))
        for key in keys:
            values = "".join(
                f"{_number(compared[name].get(key), '{:.2f}'):>{width}}" for name in compared
            )
            print(f"{key:<28}{values}")


def _number(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scifact", type=Path, required=True, help="BEIR SciFact folder")
    parser.add_argument("--subset", type=int, default=2000, help="papers in the corpus subset")
    parser.add_argument("--work", type=Path, default=Path("data/peer"), help="builds, txtai")
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated, of: {', '.join(SYSTEMS)} (default: all)",
    )
    parser.add_argument(
        "--keep-builds",
        action="store_true",
        help="serve indexes a previous run built (no build figures) instead of rebuilding",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/peer.json"))
    args = parser.parse_args(argv)
    unknown = set(args.systems.split(",")) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    if not (args.scifact / "queries_train.jsonl").is_file():
        parser.error(f"{args.scifact} is not the SciFact folder (no queries_train.jsonl)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    systems = [SYSTEMS[name] for name in args.systems.split(",")]
    qrels = read_qrels(args.scifact / "qrels" / "test.tsv")
    judged_docs = {doc for docs in qrels.values() for doc in docs}
    corpus = write_subset(args.scifact, judged_docs, args.subset, args.work / "scifact-subset")
    documents = sum(1 for _ in corpus.open(encoding="utf-8"))
    queries = QuerySets.of(args.scifact, set(qrels))

    results: dict[str, dict] = {}
    builds: dict[str, dict] = {}  # index name -> its build, once per run
    for system in systems:
        name = system_index_name(system)
        if name not in builds:
            print(f"{system.name}: building", flush=True)
            built = build(system, corpus, documents, args.work, args.keep_builds)
            builds[name] = {
                "index": name,
                "seconds": round(built.seconds, 1),
                "reused": built.reused,
                "documents_per_s": _round(built.documents_per_s),
            }
        print(f"{system.name}: serving", flush=True)
        results[system.name] = {"build": builds[name], **measure(system, args.work, queries, qrels)}
        if system.kind == "papersearch" and not system.options:
            cache = query_cache_effect(system, args.work, [text for _, text in queries.sequential])
            results[system.name]["query_cache"] = cache
    bare_cost = None
    if "papersearch" in results:
        bare_cost = bare(
            args.work / "indexes" / system_index_name(SYSTEMS["papersearch"]),
            [text for _, text in queries.sequential],
        )
        http = results["papersearch"]["sequential"]["p50_ms"]
        bare_cost["http_p50_over_bare_p50"] = round(http / bare_cost["p50_ms"], 2)
    compared = ratios(results, REFERENCE)
    print_table(results, compared)
    if bare_cost:
        print(
            f"\nbare encode + nearest papers, in-process ({bare_cost['backend']}): p50 "
            f"{bare_cost['p50_ms']:.2f} ms; Papersearch's HTTP p50 is "
            f"{bare_cost['http_p50_over_bare_p50']:.2f}x that (target <= 1.2)"
        )
    report = {
        "benchmark": "peer",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "txtai_version": TXTAI_VERSION,
        "corpus": {"scifact_subset": documents, "seed": SUBSET_SEED},
        "queries": {
            "warmup": len(queries.warmup),
            "sequential": len(queries.sequential),
            **{f"clients_{c}": len(q) for c, q in queries.concurrent.items()},
        },
        "systems": results,
        f"ratios_to_{REFERENCE.replace('-', '_')}": compared,
        "papersearch_bare": bare_cost,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults written to {args.out}")
    return 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


if __name__ == "__main__":
    sys.exit(main())
