"""Shared fixtures: one real index built from the seeds per session, one app over it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from indexing.build import BuildReport, build_index
from models import DEFAULT_BACKEND, DEFAULT_MODEL, load_embedder
from service.app import create_app
from service.settings import SEED_CAPTURE_DATE, Settings

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
SHARED_DATA = REPO.parent / "shared" / "data"
PAPERSEARCH = str(Path(sys.executable).with_name("papersearch"))


def shared_data(relative: str) -> Path:
    """A file of ../shared/data, or a skip where that folder is absent (a user's fresh clone)."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} not present: the shared data sets live beside the checkout only")
    return path


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the session: each seed paper is embedded once, then reused."""
    return tmp_path_factory.mktemp("embedding-cache")


def index_corpus(
    sources: list[Path],
    index_dir: Path,
    cache_dir: Path,
    *,
    backend: str = DEFAULT_BACKEND,
    **options: Any,
) -> BuildReport:
    """``sources`` indexed as `papersearch index` does (the default model, the seeds' capture
    date), without a progress bar; ``options``: the rest of ``build_index``'s."""
    return build_index(
        sources,
        index_dir,
        cache_dir=cache_dir,
        model_name=DEFAULT_MODEL,
        load_model=load_embedder,
        backend=backend,
        capture_date=SEED_CAPTURE_DATE,
        progress=False,
        **options,
    )


def _seed_index(folder: Path, cache_dir: Path, backend: str) -> BuildReport:
    return index_corpus([SEEDS], folder / "index", cache_dir, backend=backend)


@pytest.fixture(scope="session")
def seed_build(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> BuildReport:
    """The seeds indexed as `papersearch index` does by default (onnx-int8)."""
    return _seed_index(tmp_path_factory.mktemp("data"), cache_dir, DEFAULT_BACKEND)


@pytest.fixture(scope="session")
def torch_seed_build(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> BuildReport:
    """The seeds indexed with the reference backend, torch."""
    return _seed_index(tmp_path_factory.mktemp("torch-data"), cache_dir, "torch")


@pytest.fixture(scope="session")
def seed_settings(seed_build: BuildReport, cache_dir: Path) -> Settings:
    return Settings(index_dir=seed_build.index_dir, cache_dir=cache_dir)


def settings_with(settings: Settings, **changes: object) -> Settings:
    """``settings`` with some fields changed, validated as the environment's would be
    (``model_copy(update=...)`` would keep a plain string where a SecretStr belongs)."""
    return Settings(**{**settings.model_dump(), **changes})


@pytest.fixture(scope="session")
def client(seed_settings: Settings) -> Iterator[TestClient]:
    """The real app over the seed index; entering the client runs the lifespan (loads once)."""
    with TestClient(create_app(seed_settings)) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    process: subprocess.Popen
    log: Path  # everything the server wrote to stdout and stderr

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def running_server(
    index_dir: Path, *args: str, workers: int | None = 1, **env: str
) -> Iterator[Server]:
    """A real ``papersearch serve`` on a free loopback port, yielded once ready.

    ``args`` are extra ``serve`` flags, ``env`` extra variables (``PAPERSEARCH_API_KEY="..."``).
    ``workers`` is 1 unless given (None: what ``serve`` picks itself, one per core): a test
    of what a process does then reads one process's state and log.
    Its output goes to a file, not a pipe: a busy server's log lines would fill a pipe nobody
    reads and block it.
    """
    if workers is not None and "--workers" not in args:
        args = (*args, "--workers", str(workers))
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="papersearch-serve-", suffix=".log")[1])
    with log.open("w") as output:
        server = subprocess.Popen(
            [PAPERSEARCH, "serve", "--index", str(index_dir), "--port", str(port), *args],
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **env},
        )
    running = Server(f"http://127.0.0.1:{port}", server, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, running.output()
            try:
                if httpx.get(f"{running.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server not ready within 120 s"
            time.sleep(0.3)
        yield running
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    assert server.returncode == 0, running.output()
    log.unlink()


# The Ray tests' cluster: a head and one more node, each a real raylet with its own worker
# processes, bound to 127.0.0.1. Two logical CPUs each (this machine has two cores: Ray
# schedules by these counts, the operating system shares the cores).
RAY_NODE_CPUS = 2


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    """A 2-node Ray cluster on loopback, started once for the session and joined by this
    process as its driver; yields the ``ray.cluster_utils.Cluster`` (``.address`` for a CLI
    run that joins it as a second driver). Ray is installed by `make test` (`make
    install-ray`); without it these tests skip."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: `make install-ray`")
    # Nodes of a test cluster bind 127.0.0.1, not this machine's outside address.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": RAY_NODE_CPUS, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=RAY_NODE_CPUS)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    try:
        yield cluster
    finally:
        try:
            from ray import serve

            serve.shutdown()
        finally:
            ray.shutdown()
            cluster.shutdown()
