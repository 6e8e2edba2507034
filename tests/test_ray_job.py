"""The indexing job on Ray (`papersearch index --ray`) against the real 2-node test cluster:
the same index as a local build, cached papers never sent, a lost worker and a killed
driver survived, a bad address refused in one line."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from indexing.build import ENCODE_CHUNK, BuildReport
from indexing.corpus import read_corpus
from indexing.embedding_cache import CACHE_FILE
from indexing.manifest import checked_build
from indexing.ray_job import RayJob, RayJobFailed
from indexing.reader import PaperIndex
from indexing.writer import leftovers
from models import DEFAULT_BACKEND
from service.schemas import SearchRequest
from service.search import SearchEngine
from service.settings import SEED_CAPTURE_DATE, Settings
from tests.conftest import PAPERSEARCH, SEEDS, free_port, index_corpus

pytestmark = pytest.mark.usefixtures("ray_cluster")

VARIANTS = 150  # papers beyond the seeds: enough that a kill lands while embedding goes on
LOST_WORKER_CHUNK = 8  # the lost-worker job's chunk: 31 chunks of the seeds and variants
# Short papers for the killed driver: chunks of the CLI's size, with most of them still to
# come when the first is back (and short, so that they are embedded quickly).
SHORT_PAPERS = 12 * ENCODE_CHUNK
SHORT_WORDS = 20
QUERIES = ("recommender systems ranking", "graph neural networks", "large language models")


def _build(
    paths: list[Path],
    out: Path,
    cache_dir: Path,
    ray: RayJob | None = None,
    backend: str = DEFAULT_BACKEND,
) -> BuildReport:
    return index_corpus(paths, out, cache_dir, ray=ray, backend=backend)


def _normalised(summary: str, index_dir: Path) -> str:
    """A summary line without what differs between two equal builds: folder and seconds."""
    return re.sub(r"[\d.]+ s$", "S s", summary.replace(str(index_dir), "DIR"))


def _assert_same_index(built: Path, reference: Path) -> None:
    """Same papers in the same rows, vectors within 1e-5."""
    ours, theirs = PaperIndex.open(built), PaperIndex.open(reference)
    try:
        assert ours.paper_ids() == theirs.paper_ids()
        rows = range(len(theirs))
        assert np.allclose(ours.vectors_at(rows), theirs.vectors_at(rows), atol=1e-5, rtol=0)
    finally:
        ours.close()
        theirs.close()


def _results(index_dir: Path, cache_dir: Path) -> list[list[tuple[str, float]]]:
    engine = SearchEngine.load(Settings(index_dir=index_dir, cache_dir=cache_dir))
    try:
        return [
            [(hit.id, round(hit.score, 4)) for hit in engine.search(request).results]
            for query in QUERIES
            for mode in ("dense", "lexical", "hybrid")
            for request in [SearchRequest(q=query, k=10, mode=mode)]
        ]
    finally:
        engine.close()


@dataclass(frozen=True)
class Variants:
    """The seeds plus a JSONL of papers no cache holds, and their local build."""

    paths: list[Path]
    papers: int
    local: Path  # the index a local build made of ``paths``


def _seed_papers() -> list[Any]:
    return read_corpus([SEEDS], SEED_CAPTURE_DATE).papers


@pytest.fixture(scope="module")
def short_papers(tmp_path_factory: pytest.TempPathFactory) -> Variants:
    """A JSONL of short papers no cache holds, in 12 of the CLI's chunks, and their local
    build."""
    folder = tmp_path_factory.mktemp("short-papers")
    seeds = _seed_papers()
    lines = [
        json.dumps(
            {
                "id": f"short-{k}",
                "title": f"{paper.title} (short {k})",
                "abstract": " ".join(paper.abstract.split()[:SHORT_WORDS]) + f" Short {k}.",
            }
        )
        for k in range(SHORT_PAPERS)
        for paper in [seeds[k % len(seeds)]]
    ]
    jsonl = folder / "short.jsonl"
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = _build([jsonl], folder / "local", folder / "local-cache")
    assert report.papers == SHORT_PAPERS
    return Variants([jsonl], report.papers, report.index_dir)


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> Variants:
    folder = tmp_path_factory.mktemp("variants")
    seeds = _seed_papers()
    lines = [
        json.dumps(
            {
                "id": f"variant-{k}",
                "title": f"{paper.title} (variant {k})",
                "abstract": f"{paper.abstract} This is variant {k} of the study.",
            }
        )
        for k in range(VARIANTS)
        for paper in [seeds[k % len(seeds)]]
    ]
    jsonl = folder / "variants.jsonl"
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    paths = [SEEDS, jsonl]
    report = _build(paths, folder / "local", folder / "local-cache")
    return Variants(paths, report.papers, report.index_dir)


def test_ray_build_is_the_local_build(
    ray_cluster: object, seed_build: BuildReport, cache_dir: Path, tmp_path: Path
) -> None:
    address = ray_cluster.address  # type: ignore[attr-defined]
    # Small chunks, so both nodes' actors embed some of the seeds.
    report = _build([SEEDS], tmp_path / "ray", tmp_path / "cache", RayJob(address, chunk_size=16))
    assert (report.papers, report.embedded, report.reused) == (seed_build.papers, 98, 0)
    _assert_same_index(report.index_dir, seed_build.index_dir)
    assert _results(report.index_dir, cache_dir) == _results(seed_build.index_dir, cache_dir)

    # Rebuilt with the cache now warm, nothing goes to the cluster, and the summary line is,
    # word for word and count for count, the local job's over the same cache.
    again = _build([SEEDS], tmp_path / "again", tmp_path / "cache", RayJob(address))
    local = _build([SEEDS], tmp_path / "local", tmp_path / "cache")
    assert (again.embedded, again.reused) == (0, 98)
    assert _normalised(again.summary(), again.index_dir) == _normalised(
        local.summary(), local.index_dir
    )
    assert _normalised(report.summary(), report.index_dir) == (
        "indexed 98 papers from 5 files into DIR: 98 embedded, 0 reused from cache, "
        "0 skipped, 0 duplicates merged, S s"
    )


def _embedding_actors() -> dict[str, dict[str, Any]]:
    """This driver's embedding actors, by actor id, each with its process id, state and
    restart count, from Ray's actor table. (The GCS's table: Ray's state API,
    ``ray.util.state``, asks the dashboard, which the test cluster runs without.)"""
    import ray
    from ray._private import state

    job = ray.get_runtime_context().get_job_id()
    return {
        actor_id: actor
        for actor_id, actor in state.actors().items()
        if actor["JobID"] == job and "EmbeddingActor" in actor["ActorClassName"]
    }


def _cached_rows(cache_dir: Path) -> int:
    try:
        db = sqlite3.connect(cache_dir / CACHE_FILE, timeout=5)
        try:
            return int(db.execute("SELECT count(*) FROM embeddings").fetchone()[0])
        finally:
            db.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_the_job_survives_a_lost_worker(
    ray_cluster: object, variants: Variants, tmp_path: Path
) -> None:
    """One of this job's actors is killed while most chunks are still out: Ray starts it
    again (the same actor, a new process), its chunks are retried, and the index is the
    local build's."""
    cache = tmp_path / "cache"
    earlier = set(_embedding_actors())  # other tests' pools: this process is their driver too
    done = threading.Event()
    killed: list[tuple[str, int, int]] = []  # (actor id, pid, rows cached when it was killed)

    def kill_a_working_actor() -> None:
        """SIGKILL an actor of this job once a chunk is back: it is then alive (its model
        loaded) and handed chunks, of which most are still to embed."""
        deadline = time.monotonic() + 120
        while not done.is_set() and time.monotonic() < deadline:
            cached = _cached_rows(cache)
            if cached >= LOST_WORKER_CHUNK:
                working = [
                    (actor_id, actor["Pid"])
                    for actor_id, actor in _embedding_actors().items()
                    if actor_id not in earlier and actor["State"] == "ALIVE"
                ]
                if working:
                    actor_id, pid = working[0]
                    os.kill(pid, signal.SIGKILL)
                    killed.append((actor_id, pid, cached))
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_working_actor)
    killer.start()
    try:
        address = ray_cluster.address  # type: ignore[attr-defined]
        job = RayJob(address, chunk_size=LOST_WORKER_CHUNK)
        report = _build(variants.paths, tmp_path / "ray", cache, job)
    finally:
        done.set()
        killer.join()
    assert killed, "no actor of the job was found alive to kill"
    (actor_id, pid, cached_then) = killed[0]
    print(f"killed {actor_id} (pid {pid}) with {cached_then} of {variants.papers} rows cached")
    assert cached_then <= variants.papers // 2  # half the chunks or more were still out
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    # Ray restarted that very actor (after the job its pool is gone: no restart from a kill
    # that came too late), and every chunk came back to the driver, embedded once here.
    assert _embedding_actors()[actor_id]["NumRestarts"] >= 1
    papers = variants.papers
    assert (report.papers, report.embedded, report.reused) == (papers, papers, 0)
    assert _cached_rows(cache) == papers
    _assert_same_index(report.index_dir, variants.local)


def test_a_killed_driver_leaves_the_previous_index(
    ray_cluster: object, short_papers: Variants, cache_dir: Path, tmp_path: Path
) -> None:
    """The CLI's job (its own chunk size, one actor) killed once its first chunk is back,
    with 11 still to come: the index is the previous one, and a rerun reuses what the
    killed run cached and embeds the rest."""
    out = tmp_path / "index"
    previous = _build([SEEDS], out, cache_dir).index_dir  # the index being served
    before = checked_build(out).manifest
    cache = tmp_path / "cache"
    address = ray_cluster.address  # type: ignore[attr-defined]
    command = [PAPERSEARCH, "index", *map(str, short_papers.paths), "--out", str(out)]
    # One actor: its chunks come back one after another, so the kill after the first lands
    # well before the last.
    command += ["--cache-dir", str(cache), "--ray", address, "--ray-embed-workers", "1"]
    driver = subprocess.Popen(command, stderr=subprocess.PIPE, env={**os.environ})
    assert driver.stderr is not None
    os.set_blocking(driver.stderr.fileno(), False)
    seen = b""
    deadline = time.monotonic() + 120
    # tqdm redraws on one line; the first chunk back shows as a non-zero count.
    while not re.search(rb"embedding: +\d+%.*?\| *[1-9]\d*/", seen):
        assert driver.poll() is None, seen.decode(errors="replace")
        assert time.monotonic() < deadline, seen.decode(errors="replace")
        seen += driver.stderr.read() or b""
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    driver.stderr.close()

    after = checked_build(out).manifest  # still opens, still the previous build
    assert (after.corpus_checksum, after.paper_count) == (before.corpus_checksum, 98)
    index = PaperIndex.open(previous)
    try:
        assert len(index) == 98
    finally:
        index.close()

    # Run again from this process (the cluster's driver already), in the CLI's chunks: no
    # second interpreter and connection to wait for.
    rerun = _build(short_papers.paths, out, cache, RayJob(address))
    embedded, reused = rerun.embedded, rerun.reused
    assert embedded + reused == short_papers.papers
    assert reused >= ENCODE_CHUNK  # the chunks the killed run got back and cached
    assert embedded >= ENCODE_CHUNK  # and the ones it did not: it was killed midway
    assert leftovers(out) == []
    _assert_same_index(out, short_papers.local)


def test_gpus_no_node_has_are_refused_not_waited_for(
    ray_cluster: object, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    _build([SEEDS], out, cache_dir)
    before = checked_build(out).manifest
    address = ray_cluster.address  # type: ignore[attr-defined]
    gpu_job = RayJob(address, gpus_per_worker=1)
    with pytest.raises(RayJobFailed, match="reserves 1 CPU and 1 GPU, and no node"):
        _build([SEEDS], out, tmp_path / "cache", gpu_job, backend="torch")
    # Only torch runs on a GPU: the int8 export is refused before the cluster is asked.
    with pytest.raises(RayJobFailed, match="only the torch backend can"):
        _build([SEEDS], out, tmp_path / "cache", gpu_job)
    assert checked_build(out).manifest == before


def test_an_unreachable_cluster_is_one_error_line(cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "index"
    _build([SEEDS], out, cache_dir)
    before = checked_build(out).manifest
    port = free_port()  # bound, then released: nothing listens there
    ray = ["--cache-dir", str(tmp_path / "cache"), "--ray", f"127.0.0.1:{port}"]
    started = time.monotonic()
    result = subprocess.run(
        [PAPERSEARCH, "index", str(SEEDS), "--out", str(out), "--force", "--quiet", *ray],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"papersearch: error: cannot connect to the Ray cluster at 127.0.0.1:{port}: "
        "Connection refused"
    ]
    assert checked_build(out).manifest == before
    assert leftovers(out) == []


@pytest.mark.parametrize("command", ["index", "serve"])
def test_without_ray_installed_ray_is_one_line_saying_how_to_install_it(
    command: str, seed_settings: Settings, tmp_path: Path
) -> None:
    """Ray is an optional extra: where it cannot be imported (``sys.modules`` entry None,
    as Python reads a missing package), `index --ray` (before the corpus is read) and
    `serve --ray` are one line."""
    out = tmp_path / "index"
    argv = {
        "index": ["index", str(SEEDS), "--out", str(out), "--ray", "auto"],
        "serve": ["serve", "--ray", "auto", "--index", str(seed_settings.index_dir)],
    }[command]
    script = f"import sys; sys.modules['ray'] = None; from service.cli import main; sys.exit(main({argv!r}))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "papersearch: error: Ray is not installed: pip install 'papersearch[ray]' or "
        "make install-ray"
    ]
    assert not out.exists()
