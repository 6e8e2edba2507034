"""``kill -9`` of the indexing job, and of ``add``, ``remove`` and ``merge``, at random points:
the index folder always serves the last complete build (checksums verified), the next run
completes, and the embedding cache the killed runs wrote into gives the vectors a cache that
no run ever interrupted gives."""

from __future__ import annotations

import json
import random
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from indexing.corpus import read_corpus
from indexing.embedding_cache import CACHE_FILE
from indexing.manifest import Manifest, read_manifest
from indexing.reader import PaperIndex
from indexing.writer import builds_dir, leftovers
from models import DEFAULT_MODEL
from service.settings import SEED_CAPTURE_DATE
from tests.conftest import PAPERSEARCH
from tests.utils.index_files import build_folders, live_build

SEED = 20260630  # the kill schedule is random, and the same on every run
PART_SIZE = 10  # papers per corpus file: about half a second of embedding each
KILLS_BY_TIME = 3  # cold runs killed at points spread over a whole run's duration


def write_parts(seed_index: Path, folder: Path, parts: int) -> list[Path]:
    """JSONL corpus files of ``PART_SIZE`` seed papers each, no paper in two files."""
    index = PaperIndex.open(seed_index, model=DEFAULT_MODEL)
    try:
        papers = index.list_papers(parts * PART_SIZE, 0)
    finally:
        index.close()
    folder.mkdir()
    paths = []
    for part in range(parts):
        path = folder / f"part{part}.jsonl"
        chunk = papers[part * PART_SIZE : (part + 1) * PART_SIZE]
        path.write_text(
            "".join(
                json.dumps({"id": p.id, "title": p.title, "abstract": p.abstract}) + "\n"
                for p in chunk
            ),
            encoding="utf-8",
        )
        paths.append(path)
    return paths


class Indexer:
    """``papersearch index`` as a real process, into one index folder with one cache."""

    def __init__(self, index_dir: Path, cache_dir: Path, log: Path) -> None:
        self.index_dir, self.cache_dir, self.log = index_dir, cache_dir, log
        self.builds = builds_dir(index_dir)

    def start(self, corpus: list[Path]) -> subprocess.Popen:
        with self.log.open("a") as log:
            return subprocess.Popen(
                [PAPERSEARCH, "index", *map(str, corpus), "--out", str(self.index_dir),
                 "--cache-dir", str(self.cache_dir), "--capture-date",
                 SEED_CAPTURE_DATE.isoformat(), "--force", "--quiet"],
                stdout=log, stderr=log,
            )  # fmt: skip

    def run(self, corpus: list[Path]) -> float:
        """Run to completion; its duration in seconds."""
        started = time.monotonic()
        assert self.start(corpus).wait(timeout=120) == 0, self.log.read_text(encoding="utf-8")
        return time.monotonic() - started

    def kill_after(self, corpus: list[Path], seconds: float) -> int:
        """SIGKILL ``seconds`` after the start (unless it finished first); the exit status."""
        process = self.start(corpus)
        try:
            return process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            return process.wait(timeout=30)

    def kill_when(self, corpus: list[Path], seen: Callable[[], bool], delay: float) -> int:
        """SIGKILL ``delay`` seconds after ``seen()`` first holds (polled every 0.5 ms)."""
        process = self.start(corpus)
        while process.poll() is None and not seen():
            time.sleep(0.0005)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        return process.wait(timeout=30)

    def cache_written(self) -> Callable[[], bool]:
        """Holds once the cache's write-ahead log is written to: a chunk of vectors is being
        committed (reading, and opening the cache a run was killed with, write none)."""
        wal = self.cache_dir / f"{CACHE_FILE}-wal"

        def signature() -> tuple[int, int] | None:
            return (wal.stat().st_size, wal.stat().st_mtime_ns) if wal.exists() else None

        before = signature()
        return lambda: (now := signature()) is not None and now[0] > 0 and now != before

    def build_started(self) -> Callable[[], bool]:
        """Holds once a new build folder exists: the run is writing the index."""
        before = set(self.builds.iterdir())
        return lambda: bool(set(self.builds.iterdir()) - before)


def served(index_dir: Path) -> Manifest:
    """The manifest of what the folder serves, after every file is checked against it."""
    index = PaperIndex.open(index_dir, model=DEFAULT_MODEL)  # raises unless complete and intact
    try:
        return index.manifest
    finally:
        index.close()


def test_killing_the_indexing_job_never_serves_a_partial_index_or_poisons_the_cache(
    seed_build, tmp_path
):
    rng = random.Random(SEED)
    parts = write_parts(seed_build.index_dir, tmp_path / "corpus", KILLS_BY_TIME + 2)
    first, *others = parts
    checksum = {path: read_corpus([path], SEED_CAPTURE_DATE).checksum() for path in parts}
    index_dir = tmp_path / "data" / "index"
    indexer = Indexer(index_dir, tmp_path / "cache", tmp_path / "indexer.log")

    # The previous complete index, by a run timed from start to exit with a cold cache:
    # interpreter start, imports, parsing, model load, embedding, writing.
    duration = indexer.run([first])
    previous = served(index_dir)
    print(f"\nfull run with a cold cache: {duration:.2f} s")

    # Each killed run but the last indexes a corpus part no run has embedded yet, so it goes
    # through every phase of a cold run. The cache commit and the writing of the index take
    # milliseconds, too short for a random point of a whole run to hit: two kills wait for
    # them. The last run's part was embedded by the first run: it reaches writing at once.
    kills = [
        (part, "start", duration * (i + rng.uniform(0.05, 0.95)) / KILLS_BY_TIME)
        for i, part in enumerate(others[:KILLS_BY_TIME])
    ]
    kills += [(others[-1], "cache commit", rng.uniform(0, 0.005))]
    kills += [(first, "build folder", rng.uniform(0, 0.015))]
    triggers = {"cache commit": indexer.cache_written, "build folder": indexer.build_started}
    stale: set[Path] = set()  # build folders not served after a kill
    for part, since, seconds in kills:
        if since == "start":
            status = indexer.kill_after([part], seconds)
        else:
            status = indexer.kill_when([part], triggers[since](), seconds)
        current = served(index_dir)  # complete and intact, whatever the kill interrupted
        new_build = current != previous
        print(
            f"{part.name}: SIGKILL {seconds:.4f} s after the {since}: "
            f"{'finished first' if status == 0 else 'killed'}, serving the "
            f"{'new' if new_build else 'previous'} build"
        )
        assert status in (0, -signal.SIGKILL), indexer.log.read_text(encoding="utf-8")
        if status == 0 or new_build:  # it completed: the new build, whole
            assert new_build and current.corpus_checksum == checksum[part]
        unserved = set(build_folders(index_dir)) - {live_build(index_dir)}
        if since == "build folder" and not new_build:
            assert unserved  # the half-written (or unlinked) build of the killed run
        stale |= unserved
        previous = current

    # The next run completes, reusing what the killed runs cached, and cleans up after them.
    indexer.run(parts)
    log = indexer.log.read_text(encoding="utf-8")
    embedded, reused = map(int, re.findall(r"(\d+) embedded, (\d+) reused", log)[-1])
    print(f"final run: {embedded} embedded, {reused} reused; {len(stale)} stale builds removed")
    assert embedded + reused == len(parts) * PART_SIZE and reused >= PART_SIZE
    assert build_folders(index_dir) == [live_build(index_dir)]
    assert not any(build.exists() for build in stale)
    assert leftovers(index_dir) == []  # no build folder or unswapped link of a killed run
    cache = sqlite3.connect(tmp_path / "cache" / CACHE_FILE)
    try:
        assert cache.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        cache.close()

    # The seed index was embedded in-process through the session's cache, which no run ever
    # interrupted: the same texts must have the same vectors.
    final = PaperIndex.open(index_dir, model=DEFAULT_MODEL)
    reference = PaperIndex.open(seed_build.index_dir, model=DEFAULT_MODEL)
    try:
        rows = [reference.row_of(paper.id) for paper in final.list_papers(len(final), 0)]
        assert len(rows) == len(parts) * PART_SIZE and None not in rows
        assert np.allclose(
            final.vectors_at(range(len(final))), reference.vectors_at(rows), atol=1e-5
        )
    finally:
        final.close()
        reference.close()


def served_state(index_dir: Path) -> tuple[frozenset[str], tuple[tuple[int, int], ...]]:
    """The papers the folder serves, and its segments' rows and tombstones, after every file
    is checked against the manifest."""
    index = PaperIndex.open(index_dir)
    try:
        segments = tuple((s.entry.rows, s.entry.deleted) for s in index.segments)
        return frozenset(index.paper_ids()), segments
    finally:
        index.close()


def test_killing_an_update_or_a_merge_serves_the_old_index_or_the_new_one(seed_build, tmp_path):
    """Each update is killed at random points of a run and once as it writes its build; the
    folder serves the papers before it or after it, intact, and a rerun completes."""
    rng = random.Random(SEED + 1)
    first, added = write_parts(seed_build.index_dir, tmp_path / "corpus", 2)
    index_dir = tmp_path / "data" / "index"
    indexer = Indexer(index_dir, tmp_path / "cache", tmp_path / "updates.log")
    indexer.run([first])
    removed = sorted(served_state(index_dir)[0])[:3]
    where = ["--index", str(index_dir)]
    updates = [
        ("add", [PAPERSEARCH, "add", str(added), *where, "--cache-dir", str(indexer.cache_dir),
                 "--capture-date", SEED_CAPTURE_DATE.isoformat(), "--quiet"]),
        ("remove", [PAPERSEARCH, "remove", *removed, *where]),
        ("merge", [PAPERSEARCH, "merge", *where]),
    ]  # fmt: skip
    for name, command in updates:
        before = served_state(index_dir)
        # The update's own duration, on a copy of the index, spaces the kills over a run.
        copy = tmp_path / name / "index"
        copy.parent.mkdir()
        copy.symlink_to(live_build(index_dir))
        started = time.monotonic()
        at_copy = [str(copy) if part == str(index_dir) else part for part in command]
        assert subprocess.run(at_copy, capture_output=True, timeout=120).returncode == 0
        duration = time.monotonic() - started
        after = served_state(copy)
        with indexer.log.open("a") as log:
            for kill in range(KILLS_BY_TIME + 1):
                seen = indexer.build_started() if kill == KILLS_BY_TIME else lambda: True
                delay = rng.uniform(0, 0.01) if kill == KILLS_BY_TIME else rng.uniform(0, duration)
                process = subprocess.Popen(command, stdout=log, stderr=log)
                while process.poll() is None and not seen():
                    time.sleep(0.0005)
                time.sleep(delay)
                process.send_signal(signal.SIGKILL)
                status = process.wait(timeout=30)
                served_now = served_state(index_dir)  # complete and intact
                print(f"{name}: SIGKILL after {delay:.3f} s: status {status}, serving the "
                      f"{'new' if served_now == after != before else 'previous'} papers")  # fmt: skip
                assert served_now in (before, after)
                if served_now == after:
                    break  # done: killing a rerun would find nothing left to do
        if served_state(index_dir) != after:  # every run was killed before its swap
            assert subprocess.run(command, capture_output=True, timeout=120).returncode == 0
        assert served_state(index_dir) == after
    # A merge with nothing to merge still clears what the killed runs left.
    assert subprocess.run(updates[-1][1], capture_output=True, timeout=120).returncode == 0
    assert build_folders(index_dir) == [live_build(index_dir)] and leftovers(index_dir) == []
    assert [(s.rows, s.deleted) for s in read_manifest(index_dir).segments] == [(17, 0)]
