"""Load test: a server under 32 concurrent clients, checked for errors, latency and memory.

For each ``--index`` and each ``--workers`` count (default 1, then 2), ``papersearch serve``
is started on a free loopback port and driven by a fixed, seeded mix of the requests users
make (``request_mix``). For each server, in this order:

1. warm-up: a few of every kind of request from one client, then a burst at full
   concurrency, so that the thread pool, the allocator's arenas and the query batcher reach
   the size the load gives them before memory is first read;
2. memory at the start: every process of the server (uvicorn's supervisor and each worker,
   or the one process), from ``/proc/PID/smaps_rollup``: RSS; PSS, which divides each shared
   page among the processes mapping it (RSS counts the shared libraries and the
   memory-mapped vectors in full in every worker); USS, the pages the process alone holds
   (freed if it exits); and the anonymous part, its own heap (the model, the records);
3. baseline: the same mix from one client, sequential;
4. load: ``--clients`` clients (threads of this process, one keep-alive connection each)
   share ``--requests`` requests, stopping early at ``--max-seconds``; memory is sampled
   every second, and its middle sample kept;
5. memory at the end, right after the load.

An error is a transport failure, a timeout, or a status other than the one the request
expects: 200 mostly, a 404 or 422 for the few deliberately wrong requests of the mix (an
unknown id, ``k=0``), since clients send those too and they must not cost more than an
answer. Memory growth is end over start of the RSS and of the anonymous memory, each summed
over the processes; above ``--max-growth`` (10 %) it is flagged. PSS is reported but not
checked: it also moves when unrelated processes map the same libraries (any other process
importing torch shares its pages), which on a shared machine swings it by 15 %.

The machine's load moves absolute figures, so the comparable ones are ratios measured in the
same run: the load's req/s over the single client's on the same server, and each worker
count's req/s and summed memory over the first count's (1 worker), whose difference is the
memory an extra worker costs. The query cache is off, as in
the other benchmarks: the mix repeats queries, and cached ones would skip the model, which is
what a search costs.

Exit status 1 if any request failed or memory grew beyond the threshold. Results go to
``benchmarks/results/loadtest.json``; the README's load test table is copied from them.
Usage (``make loadtest`` runs the seeds, and SciFact where ``../shared/data`` has it):

    python benchmarks/loadtest.py --index data/index [--index data/bench/scifact]
        [--workers 1 2] [--clients 32] [--requests 3000] [--max-seconds 300]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_and_query import (
    QUERIES,
    STOP_GRACE_S,
    free_port,
    machine_info,
    start_server,
    stop_server,
    wait_ready,
)
from scale import memory_of, percentile, server_processes

RESULTS = Path("benchmarks/results")
# Logged by each worker once its lifespan has loaded the index and the model; /readyz
# answers as soon as the first one has, but the load must find all of them serving.
WORKER_READY = "Application startup complete"
WORKERS_READY_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 60.0
SAMPLE_INTERVAL_S = 1.0
MIB = 2**20
# Summed over the server's processes; the first two are the ones whose growth is checked.
TOTALS = ("rss", "anonymous", "pss", "private")
GROWTH_CHECKED = TOTALS[:2]
MEMORY_COLUMNS = (
    ("RSS", "rss"),
    ("PSS", "pss"),
    ("USS", "private"),
    ("anonymous", "anonymous"),
    ("shared", "shared"),
)


# --- the request mix ----------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request of the mix and the status it must get."""

    kind: str
    method: str
    path: str
    params: dict[str, str | int] | None = None
    body: dict[str, object] | None = None
    expect: int = 200


# Shares of the mix, in percent. Searches dominate, as on a search page; the deliberately
# wrong requests are a few percent.
KIND_WEIGHTS = {
    "search": 40,
    "search with filters": 15,
    "search (POST)": 5,
    "similar by title": 10,
    "similar by id": 15,
    "paper": 8,
    "list": 3,
    "expected 4xx": 4,
}


@dataclass
class Corpus:
    """What the mix is drawn from: a sample of the served papers, read over the API."""

    total: int
    papers: list[dict]

    @classmethod
    def sample(cls, http: httpx.Client, count: int = 300) -> Corpus:
        """Pages spread over the whole corpus, not only its first papers."""
        total = http.get("/papers", params={"limit": 1}).raise_for_status().json()["total"]
        pages = max(1, min(count, total) // 100)
        papers: list[dict] = []
        for page in range(pages):
            offset = page * total // pages
            response = http.get("/papers", params={"limit": 100, "offset": offset})
            papers += response.raise_for_status().json()["papers"]
        return cls(total, papers)


def _phrase(title: str, rng: random.Random) -> str:
    """A few consecutive words of a title: what someone half-remembering a paper types."""
    words = title.split()
    size = min(len(words), rng.randint(3, 6))
    start = rng.randint(0, len(words) - size)
    return " ".join(words[start : start + size])


def _filters(corpus: Corpus, rng: random.Random) -> dict[str, str | int]:
    """One or two filters, taken from a real paper where the corpus has the field."""
    paper = rng.choice(corpus.papers)
    options: list[dict[str, str | int]] = [
        {"mode": "lexical"},
        {"mode": "dense"},
        {"sort": "date"},
        {"offset": 10},
        {"has_code": "true"},
        {"k": 25},
    ]
    if paper.get("category"):
        options.append({"category": paper["category"]})
    if paper.get("published"):
        options.append({"year_from": int(paper["published"][:4])})
    surname = (paper.get("authors") or [""])[0].split()[-1:]
    if surname and len(surname[0]) >= 2:
        options.append({"author": surname[0]})
    chosen: dict[str, str | int] = {}
    for option in rng.sample(options, k=rng.randint(1, 2)):
        chosen |= option
    return chosen


def _search_text(corpus: Corpus, rng: random.Random) -> str:
    titled = [p["title"] for p in corpus.papers if p.get("title")]
    if titled and rng.random() < 0.5:
        return _phrase(rng.choice(titled), rng)
    return rng.choice(QUERIES)


def request_mix(corpus: Corpus, count: int, seed: int) -> list[Call]:
    """``count`` requests in the shares of ``KIND_WEIGHTS``, the same for a given seed."""
    rng = random.Random(seed)
    kinds = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()), k=count)
    titles = [p["title"] for p in corpus.papers if p.get("title")]
    calls: list[Call] = []
    for kind in kinds:
        paper = rng.choice(corpus.papers)
        if kind == "search":
            calls.append(Call(kind, "GET", "/search", {"q": _search_text(corpus, rng)}))
        elif kind == "search with filters":
            params = {"q": _search_text(corpus, rng), **_filters(corpus, rng)}
            calls.append(Call(kind, "GET", "/search", params))
        elif kind == "search (POST)":
            body = {"q": _search_text(corpus, rng), "k": 5, "highlight": False}
            calls.append(Call(kind, "POST", "/search", body=body))
        elif kind == "similar by title" and titles:
            title = rng.choice(titles)
            title = title.lower() if rng.random() < 0.3 else title  # case is forgiven
            calls.append(Call(kind, "GET", "/similar", {"title": title, "k": 5}))
        elif kind in ("similar by id", "similar by title"):  # no titles: by id instead
            calls.append(Call("similar by id", "GET", f"/papers/{paper['id']}/similar"))
        elif kind == "paper":
            calls.append(Call(kind, "GET", f"/papers/{paper['id']}"))
        elif kind == "list":
            offset = rng.randrange(0, max(1, corpus.total - 20))
            calls.append(Call(kind, "GET", "/papers", {"limit": 20, "offset": offset}))
        else:
            calls.append(
                rng.choice(
                    [
                        Call(kind, "GET", "/papers/no-such-paper-id/similar", expect=404),
                        Call(kind, "GET", "/search", {"q": "ranking", "k": 0}, expect=422),
                        Call(kind, "GET", "/similar", {"title": "qqzx vvkj wwpt"}, expect=404),
                    ]
                )
            )
    return calls


# --- driving the server -------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    seconds: float
    error: str | None


@dataclass
class Phase:
    """The outcomes of one phase (warm-up, baseline or load) and its wall clock."""

    clients: int
    planned: int
    outcomes: list[Outcome] = field(default_factory=list)
    wall_seconds: float = 0.0

    def summary(self) -> dict:
        latencies = [o.seconds for o in self.outcomes]
        errors = [o.error for o in self.outcomes if o.error]
        by_kind: dict[str, dict[str, float]] = {}
        for kind in sorted({o.kind for o in self.outcomes}):
            mine = [o.seconds for o in self.outcomes if o.kind == kind]
            by_kind[kind] = {
                "requests": len(mine),
                "p50_ms": percentile(mine, 50) * 1e3,
                "p99_ms": percentile(mine, 99) * 1e3,
            }
        return {
            "clients": self.clients,
            "requests": len(self.outcomes),
            "stopped_at_time_limit": len(self.outcomes) < self.planned,
            "wall_seconds": self.wall_seconds,
            "requests_per_s": len(self.outcomes) / self.wall_seconds,
            "p50_ms": percentile(latencies, 50) * 1e3,
            "p95_ms": percentile(latencies, 95) * 1e3,
            "p99_ms": percentile(latencies, 99) * 1e3,
            "max_ms": max(latencies) * 1e3,
            "errors": len(errors),
            "error_examples": errors[:5],
            "by_kind": by_kind,
        }


def _send(http: httpx.Client, call: Call) -> str | None:
    """One request; the error it makes, if any (``None`` when it got the expected status)."""
    what = f"{call.method} {call.path} {call.params or call.body or ''}"
    try:
        response = http.request(call.method, call.path, params=call.params, json=call.body)
    except httpx.HTTPError as exc:
        return f"{what}: {type(exc).__name__}: {exc}"
    if response.status_code != call.expect:
        return f"{what}: {response.status_code}, expected {call.expect}: {response.text[:200]}"
    return None


def drive(base: str, calls: Sequence[Call], clients: int, max_seconds: float) -> Phase:
    """``clients`` threads, each with one keep-alive connection, take the next request of
    ``calls`` until none is left or ``max_seconds`` have passed (closed loop: a client sends
    its next request when the previous one is answered)."""
    phase = Phase(clients, len(calls))
    lock = threading.Lock()
    pending: Iterator[Call] = iter(calls)
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        with httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S) as http:
            while time.monotonic() < deadline:
                with lock:
                    call = next(pending, None)
                if call is None:
                    return
                started = time.perf_counter()
                error = _send(http, call)
                outcome = Outcome(call.kind, time.perf_counter() - started, error)
                with lock:
                    phase.outcomes.append(outcome)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.wall_seconds = time.perf_counter() - started
    return phase


# --- memory -------------------------------------------------------------------------------


def memory_snapshot(pid: int, since: float) -> dict:
    """Memory of every process of the server, and the totals over them."""
    processes = []
    for process, role in server_processes(pid):
        try:
            processes.append({"pid": process, "role": role, **memory_of(process)})
        except (FileNotFoundError, ProcessLookupError):
            continue
    totals = {f"total_{name}_bytes": sum(p[f"{name}_bytes"] for p in processes) for name in TOTALS}
    return {"seconds": time.monotonic() - since, **totals, "processes": processes}


class MemorySampler:
    """Samples the server's memory every ``SAMPLE_INTERVAL_S`` in a thread, during a phase."""

    def __init__(self, pid: int, since: float) -> None:
        self.pid, self.since = pid, since
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            self.samples.append(memory_snapshot(self.pid, self.since))

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _growth(start: dict, end: dict) -> dict[str, float]:
    return {name: end[f"total_{name}_bytes"] / start[f"total_{name}_bytes"] - 1 for name in TOTALS}


# --- one server ---------------------------------------------------------------------------


def wait_workers_ready(server: subprocess.Popen[bytes], log: Path, workers: int) -> None:
    """Until each worker has logged its start: a load begun earlier would land on the first
    ones alone, and the memory read after the warm-up would miss a worker still loading."""
    deadline = time.monotonic() + WORKERS_READY_TIMEOUT_S
    while log.read_text(errors="replace").count(WORKER_READY) < workers:
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"not all {workers} workers started:\n{log.read_text()}")
        time.sleep(0.2)


def stop_all(server: subprocess.Popen[bytes], processes: list[tuple[int, str]]) -> None:
    """Stop the server, then any process of it still running after a grace period (a
    supervisor killed after its own grace period leaves its workers behind, on the port)."""
    stop_server(server)
    children = [(pid, role) for pid, role in processes if pid != server.pid]
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and any(_alive(pid) for pid, _ in children):
        time.sleep(0.1)
    for pid, role in children:
        if _alive(pid):
            print(f"  stopping the {role} left running: {pid}", file=sys.stderr)
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent (init) to collect it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def run_server(index: Path, workers: int, args: argparse.Namespace, work: Path) -> dict:
    log = work / f"serve-{index.name}-{workers}.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    spawned = time.perf_counter()
    server = start_server(index, port, log, PAPERSEARCH_WORKERS=str(workers))
    processes: list[tuple[int, str]] = []
    try:
        with httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S) as http:
            wait_ready(http, server, spawned, log)
            wait_workers_ready(server, log, workers)
            startup = time.perf_counter() - spawned
            corpus = Corpus.sample(http)
        processes = server_processes(server.pid)
        calls = request_mix(corpus, args.requests, seed=args.seed)
        warm_up = request_mix(corpus, 40 + 4 * args.clients, seed=args.seed + 1)
        baseline_calls = request_mix(corpus, args.baseline_requests, seed=args.seed + 2)

        since = time.monotonic()
        warm = [drive(base, warm_up[:40], 1, args.max_seconds)]
        warm.append(drive(base, warm_up[40:], args.clients, args.max_seconds))
        start = memory_snapshot(server.pid, since)
        baseline = drive(base, baseline_calls, 1, args.max_seconds)
        load_started = time.monotonic() - since
        with MemorySampler(server.pid, since) as sampler:
            load = drive(base, calls, args.clients, args.max_seconds)
        end = memory_snapshot(server.pid, since)
    finally:
        stop_all(server, processes)

    middle_time = (load_started + end["seconds"]) / 2
    samples = sampler.samples or [end]
    middle = min(samples, key=lambda sample: abs(sample["seconds"] - middle_time))
    growth = _growth(start, end)
    warm_errors = [o.error for phase in warm for o in phase.outcomes if o.error]
    result = {
        "workers": workers,
        "startup_seconds": startup,
        "warm_up": {"requests": sum(len(p.outcomes) for p in warm), "errors": len(warm_errors)},
        "baseline_1_client": baseline.summary(),
        "load": load.summary(),
        "memory": {
            "start": start,
            "middle": middle,
            "end": end,
            "peak_total_rss_bytes": max(s["total_rss_bytes"] for s in [start, *samples, end]),
            # Start, every sample of the load, end: seconds since the warm-up began, then the
            # totals of TOTALS in MiB.
            "series": {
                "columns": ["seconds", *(f"total_{name}_mib" for name in TOTALS)],
                "rows": [
                    [
                        round(x["seconds"], 1),
                        *(round(x[f"total_{n}_bytes"] / MIB, 1) for n in TOTALS),
                    ]
                    for x in [start, *samples, end]
                ],
            },
            "growth_start_to_end": growth,
            "growth_flagged": max(growth[name] for name in GROWTH_CHECKED) > args.max_growth,
        },
    }
    result["errors"] = (
        len(warm_errors) + result["baseline_1_client"]["errors"] + result["load"]["errors"]
    )
    result["error_examples"] = (
        warm_errors
        + result["baseline_1_client"]["error_examples"]
        + result["load"]["error_examples"]
    )[:5]
    result["ratio_load_to_1_client_requests_per_s"] = (
        result["load"]["requests_per_s"] / result["baseline_1_client"]["requests_per_s"]
    )
    print(
        f"{index}, {workers} workers: {result['load']['requests']} requests, "
        f"{result['load']['requests_per_s']:.1f} req/s, {result['errors']} errors",
        flush=True,
    )
    return result


def run_section(index: Path, args: argparse.Namespace, work: Path) -> dict:
    runs = [run_server(index, workers, args, work) for workers in args.workers]
    first = runs[0]
    section: dict = {"index": str(index), "runs": runs, "ratios": {}}
    for run in runs:
        section["ratios"][f"{run['workers']} workers: {args.clients} clients / 1 client req/s"] = (
            run["ratio_load_to_1_client_requests_per_s"]
        )
    for run in runs[1:]:
        name = f"{run['workers']} workers / {first['workers']}"
        section["ratios"][f"{name}: req/s at {args.clients} clients"] = (
            run["load"]["requests_per_s"] / first["load"]["requests_per_s"]
        )
        end, first_end = run["memory"]["end"], first["memory"]["end"]
        extra = run["workers"] - first["workers"]
        for total in TOTALS:
            section["ratios"][f"{name}: total {total} memory at the end"] = (
                end[f"total_{total}_bytes"] / first_end[f"total_{total}_bytes"]
            )
        section[f"{run['workers']} workers: bytes added per worker over {first['workers']}"] = {
            total: (end[f"total_{total}_bytes"] - first_end[f"total_{total}_bytes"]) / extra
            for total in TOTALS
        }
    return section


# --- report -------------------------------------------------------------------------------


def print_section(section: dict, clients: int) -> None:
    print(f"\n{section['index']}")
    print(
        f"  {'workers':>7}{'start s':>9}{'1 client':>10}{f'{clients} clients':>12}"
        f"{'p50':>7}{'p95':>7}{'p99':>7}{'errors':>8}   total RSS MiB start/middle/end "
        "(growth; of the anonymous part)"
    )
    for run in section["runs"]:
        load, memory = run["load"], run["memory"]
        rss = [memory[at]["total_rss_bytes"] / MIB for at in ("start", "middle", "end")]
        growth = memory["growth_start_to_end"]
        flag = "  FLAGGED" if memory["growth_flagged"] else ""
        print(
            f"  {run['workers']:>7}{run['startup_seconds']:>9.1f}"
            f"{run['baseline_1_client']['requests_per_s']:>10.1f}{load['requests_per_s']:>12.1f}"
            f"{load['p50_ms']:>7.0f}{load['p95_ms']:>7.0f}{load['p99_ms']:>7.0f}"
            f"{run['errors']:>8}   {rss[0]:.0f} / {rss[1]:.0f} / {rss[2]:.0f} "
            f"({growth['rss']:+.1%}; {growth['anonymous']:+.1%}){flag}"
        )
        if load["stopped_at_time_limit"]:
            print(f"          stopped at the time limit after {load['requests']} requests")
        for example in run["error_examples"]:
            print(f"          error: {example}")
        for process in memory["end"]["processes"]:
            print(
                f"          {process['role']:<17}"
                + "".join(
                    f"{label} {process[f'{name}_bytes'] / MIB:>5.0f}  "
                    for label, name in MEMORY_COLUMNS
                )
                + "MiB"
            )
    for name, value in section["ratios"].items():
        print(f"  {name}: {value:.2f}x")
    for name, value in section.items():
        if "added per worker" in name:
            print(f"  {name}: " + ", ".join(f"{t} {b / MIB:.0f} MiB" for t, b in value.items()))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, action="append", required=True, help="index folder")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts, the first the base"
    )
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=3000, help="requests of the load")
    parser.add_argument(
        "--baseline-requests", type=int, default=200, help="requests of the 1-client baseline"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=300, help="time limit of each phase, in seconds"
    )
    parser.add_argument(
        "--max-growth", type=float, default=0.10, help="memory growth flagged above (0.10: 10 %%)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the request mix")
    parser.add_argument("--out", type=Path, default=RESULTS / "loadtest.json")
    args = parser.parse_args(argv)
    if min(args.workers) < 1 or args.clients < 1 or args.requests < 1:
        parser.error("--workers, --clients and --requests must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="papersearch-loadtest-") as scratch:
        sections = [run_section(index, args, Path(scratch)) for index in args.index]
    failures = [
        f"{section['index']}, {run['workers']} workers: {run['errors']} errors"
        for section in sections
        for run in section["runs"]
        if run["errors"]
    ] + [
        f"{section['index']}, {run['workers']} workers: memory grew "
        + ", ".join(
            f"{name} {run['memory']['growth_start_to_end'][name]:+.1%}" for name in GROWTH_CHECKED
        )
        + " from start to end"
        for section in sections
        for run in section["runs"]
        if run["memory"]["growth_flagged"]
    ]
    results = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {
            "clients": args.clients,
            "requests": args.requests,
            "baseline_requests": args.baseline_requests,
            "max_seconds": args.max_seconds,
            "max_growth": args.max_growth,
            "seed": args.seed,
            "mix_percent": KIND_WEIGHTS,
        },
        "sections": sections,
        "passed": not failures,
        "failures": failures,
    }
    for section in sections:
        print_section(section, args.clients)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {args.out}")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
