"""``papersearch serve --workers 2``: a real multi-process server, checked over real HTTP.

Each worker is its own interpreter with its own model, opened over the same index files; a
client cannot choose the worker that answers, so every worker must give the same answer.
"""

from __future__ import annotations

import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from service.cli import main, settings_environment
from service.settings import Settings
from tests.conftest import Server, running_server
from tests.utils.index_files import plain_copy

WORKERS = 2
QUERIES = (
    "live streaming recommendation",
    "diffusion models for video generation",
    "code generation benchmarks",
    "click-through rate prediction",
)
REQUESTS_PER_QUERY = 10
# Logged by each worker once its lifespan has loaded the index and the model.
WORKER_READY = "Application startup complete"
START_TIMEOUT_S = 180


def _workers_of(server: Server) -> list[psutil.Process]:
    """The worker processes: uvicorn spawns them through multiprocessing (``spawn_main``);
    the server's other child is multiprocessing's resource tracker."""
    return [
        child
        for child in psutil.Process(server.process.pid).children()
        if "multiprocessing.spawn" in " ".join(child.cmdline())
    ]


def _wait_until_every_worker_is_ready(server: Server) -> None:
    """``/readyz`` answers once any one worker has started; wait for each of them, since
    requests reach only the workers already accepting on the shared socket."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while server.output().count(WORKER_READY) < WORKERS:
        assert server.process.poll() is None, server.output()
        assert time.monotonic() < deadline, f"workers not ready:\n{server.output()}"
        time.sleep(0.3)


def _ranking(base: str, query: str) -> tuple[int, list[tuple[str, float]]]:
    """One search on a new connection (so any worker may take it): status, ids and scores."""
    response = httpx.get(f"{base}/search", params={"q": query, "k": 10}, timeout=60)
    if response.status_code != 200:
        return response.status_code, []
    return 200, [(hit["id"], hit["score"]) for hit in response.json()["results"]]


def test_two_workers_answer_every_request_with_the_same_ranking(seed_build, tmp_path):
    index = tmp_path / "index"  # a copy: nothing the session shares is served
    plain_copy(seed_build.index_dir, index)
    with running_server(index, "--workers", str(WORKERS)) as server:
        _wait_until_every_worker_is_ready(server)
        workers = _workers_of(server)
        assert len(workers) == WORKERS
        # The flags reached the workers, and their model threads share the cores out.
        threads = str(max(1, len(os.sched_getaffinity(0)) // WORKERS))
        for worker in workers:
            environment = worker.environ()
            assert environment["PAPERSEARCH_INDEX_DIR"] == str(index)
            assert environment["PAPERSEARCH_WORKERS"] == str(WORKERS)
            assert environment["PAPERSEARCH_MODEL_THREADS"] == threads
            assert environment["OMP_NUM_THREADS"] == os.environ.get("OMP_NUM_THREADS", threads)

        asked = [query for query in QUERIES for _ in range(REQUESTS_PER_QUERY)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(lambda query: _ranking(server.url, query), asked))

        assert [status for status, _ in answers] == [200] * len(asked)
        for query in QUERIES:
            rankings = {tuple(r) for q, (_, r) in zip(asked, answers, strict=True) if q == query}
            assert len(rankings) == 1, f"{query!r} ranked differently: {rankings}"
            assert len(next(iter(rankings))) == 10
        # Both workers answered (each access-log line names its process), and /metrics, from
        # whichever worker is asked, counts the searches of both.
        searched_by = {
            entry["pid"]
            for line in server.output().splitlines()
            if line.startswith("{")
            and (entry := json.loads(line)).get("logger") == "papersearch.access"
            and entry["path"] == "/search"
        }
        assert searched_by == {worker.pid for worker in workers}
        for _ in range(3):
            metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
            counted = re.search(
                r'papersearch_http_requests_total\{method="GET",route="/search",status="200"\} (\S+)',
                metrics,
            )
            assert counted and float(counted.group(1)) == len(asked), metrics
    # running_server has sent SIGINT and checked the exit status 0; the workers went with it.
    _, left_running = psutil.wait_procs(workers, timeout=10)
    assert not left_running, "a worker outlived the server"


def test_serve_starts_one_worker_per_core_by_default(seed_build, tmp_path):
    """Unasked, ``serve`` uses the machine: a worker per core (at most four), each with its
    share of the cores for the model."""
    cores = len(os.sched_getaffinity(0))
    expected = min(cores, 4)
    index = tmp_path / "index"
    plain_copy(seed_build.index_dir, index)
    with running_server(index, workers=None) as server:
        if expected == 1:  # one process: uvicorn runs the app in the server process itself
            assert not _workers_of(server)
            return
        deadline = time.monotonic() + START_TIMEOUT_S
        while server.output().count(WORKER_READY) < expected:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.3)
        workers = _workers_of(server)
        assert len(workers) == expected
        for worker in workers:
            assert worker.environ()["PAPERSEARCH_MODEL_THREADS"] == str(cores // expected)
        assert httpx.get(f"{server.url}/search", params={"q": "recommendation"}).status_code == 200


def test_the_workers_environment_rebuilds_the_settings_serve_resolved(monkeypatch, tmp_path):
    """A worker builds ``Settings()`` from the environment ``serve`` exported: it must come
    out equal to what ``serve`` resolved from its flags, presets and key included."""
    resolved = Settings(
        index_dir=tmp_path / "index",
        port=8123,
        workers=3,
        model="fast",
        api_key="s3cret",
        reload_interval=0.5,
    )
    for name, value in settings_environment(resolved).items():
        monkeypatch.setenv(name, value)
    assert Settings() == resolved


def test_serve_refuses_zero_workers(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--workers", "0"])
    assert exited.value.code == 2
    assert "workers: Input should be greater than or equal to 1" in capsys.readouterr().err
