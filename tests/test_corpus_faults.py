"""Faulty corpus files through the real ``papersearch index``: reported, skipped, never fatal.

The good papers are seed papers, so their embeddings come from the session cache and these
tests never wait for the model.
"""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

from indexing.build import BuildReport
from indexing.corpus import read_corpus
from indexing.manifest import read_manifest
from indexing.reader import PaperIndex
from models import DEFAULT_MODEL
from service.settings import SEED_CAPTURE_DATE
from tests.conftest import PAPERSEARCH, SEEDS
from tests.utils.index_files import live_build, manifest_path


def seed_records(count: int) -> list[dict[str, object]]:
    """Seed papers as JSONL records with ids of their own; the session cache holds their vectors."""
    papers = read_corpus([SEEDS / "000_c81c81f2dcbdc6e0.txt"], SEED_CAPTURE_DATE).papers
    return [
        {"id": f"good-{n}", "title": paper.title, "abstract": paper.abstract}
        for n, paper in enumerate(papers[:count], start=1)
    ]


def jsonl(*records: dict[str, object]) -> bytes:
    return b"".join(json.dumps(record).encode("utf-8") + b"\n" for record in records)


def write_faulty_files(folder: Path, good: dict[str, object]) -> list[str]:
    """One file of each fault; returns the ``FILE:LINE: reason`` each must be reported with."""
    folder.mkdir(exist_ok=True)
    (folder / "empty.jsonl").write_bytes(b"")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 4)
    # Cut inside its first 4 KB: not one record can be read from it.
    (folder / "cut.jsonl.gz").write_bytes(gzip.compress(jsonl(good))[:-12])
    (folder / "latin1.jsonl").write_bytes(
        '\n{"id": "café", "abstract": "Un café crème."}\n'.encode("latin-1")
    )
    (folder / "huge.txt").write_bytes(b"a" * 50_000_000)
    return [
        "empty.jsonl:1: empty file",
        "binary.txt:2: not UTF-8 text (byte 0x80 in column 118); the file is skipped",
        "cut.jsonl.gz:1: cannot read the file: damaged gzip data",
        "latin1.jsonl:2: not UTF-8 text (byte 0xe9 in column 12)",
        "huge.txt:1: line is longer than 1 MiB: not a site page or arXiv listing",
    ]


def papersearch_index(
    folder: Path, index_dir: Path, cache_dir: Path
) -> subprocess.CompletedProcess:
    """The real command line, as a user runs it."""
    options = ["--out", str(index_dir), "--cache-dir", str(cache_dir), "--quiet"]
    return subprocess.run(
        [PAPERSEARCH, "index", str(folder), *options],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_faulty_files_are_reported_and_the_rest_is_indexed(
    seed_build: BuildReport, cache_dir: Path, tmp_path: Path
):
    good = seed_records(6)
    folder = tmp_path / "corpus"
    expected = write_faulty_files(folder, good[0])
    (folder / "good.jsonl").write_bytes(jsonl(*good[:4]))
    # Read after good.jsonl: another record under good-2's id, a new paper, that line again.
    fresh = {**good[4], "id": "fresh"}
    (folder / "later.jsonl").write_bytes(jsonl({**good[5], "id": "good-2"}, fresh, fresh))
    # A 50 MB record on one line, as from a dump that lost its line breaks, then a good one.
    huge_line = b'{"id": "big", "abstract": "' + b"a" * 50_000_000 + b'"}\n'
    (folder / "long.jsonl").write_bytes(huge_line + jsonl({**good[5], "id": "after-long"}))
    expected += [
        "later.jsonl:1: duplicate id 'good-2', first read from good.jsonl line 2, which is kept",
        "later.jsonl:3: duplicate id 'fresh': repeats later.jsonl line 2",
        "long.jsonl:1: line is longer than 1 MiB",
    ]

    result = papersearch_index(folder, tmp_path / "index", cache_dir)
    output = result.stdout + result.stderr

    assert result.returncode == 0, output
    assert "Traceback" not in output
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    for issue in expected:
        assert any(line.startswith(f"skipped {issue}") for line in skipped), (issue, output)
    assert len(skipped) == len(expected), output
    summary = f"indexed 6 papers from 8 files into {tmp_path / 'index'}"
    assert summary in result.stdout and f"{len(expected)} skipped" in result.stdout, output

    index = PaperIndex.open(tmp_path / "index", model=DEFAULT_MODEL)
    try:
        by_id = {paper.id: paper for paper in index.papers_at(list(range(len(index))))}
    finally:
        index.close()
    assert sorted(by_id) == ["after-long", "fresh", "good-1", "good-2", "good-3", "good-4"]
    assert by_id["good-2"].abstract == good[1]["abstract"]  # the first record under an id wins
    assert by_id["after-long"].source == "long.jsonl"  # reading went on after the long line


def test_a_build_from_faulty_files_only_leaves_the_index_as_it_was(
    seed_build: BuildReport, cache_dir: Path, tmp_path: Path
):
    good = seed_records(2)
    (tmp_path / "good.jsonl").write_bytes(jsonl(*good))
    index_dir = tmp_path / "index"
    assert papersearch_index(tmp_path / "good.jsonl", index_dir, cache_dir).returncode == 0
    manifest = manifest_path(index_dir).read_bytes()
    build = live_build(index_dir)

    expected = write_faulty_files(tmp_path / "faulty", good[0])
    result = papersearch_index(tmp_path / "faulty", index_dir, cache_dir)
    output = result.stdout + result.stderr

    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "no papers could be read" in result.stderr and "index unchanged" in result.stderr
    for issue in expected:  # the error lists what made each file unreadable
        assert issue in result.stderr, (issue, output)
    assert manifest_path(index_dir).read_bytes() == manifest
    assert live_build(index_dir) == build
    assert read_manifest(index_dir).paper_count == 2
    index = PaperIndex.open(index_dir, model=DEFAULT_MODEL)
    try:
        assert sorted(paper.id for paper in index.papers_at([0, 1])) == ["good-1", "good-2"]
    finally:
        index.close()
