"""benchmarks/known_item.py: the known-item set, written from real corpora and read back by
the readers ``papersearch eval`` uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from indexing.build import BuildReport
from indexing.reader import PaperIndex
from indexing.sentences import sentence_spans
from models import DEFAULT_MODEL
from service.evaluation import read_qrels, read_queries
from tests.conftest import REPO, SEEDS, shared_data
from tests.utils.scripts import load_script


@pytest.fixture(scope="module")
def known_item() -> ModuleType:
    return load_script("known_item")


@pytest.fixture(scope="module")
def seed_abstracts(seed_build: BuildReport) -> dict[str, str]:
    """Every paper of the seed index, as the service would serve it: id -> abstract."""
    index = PaperIndex.open(seed_build.index_dir, model=DEFAULT_MODEL)
    try:
        return {p.id: p.abstract for p in index.papers_at(list(range(len(index))))}
    finally:
        index.close()


def test_seed_set_reads_back_and_judges_indexed_papers(
    known_item: ModuleType, seed_abstracts: dict[str, str], tmp_path: Path
) -> None:
    written = known_item.write_known_item_set(SEEDS, tmp_path, count=40, seed=0)
    assert written.count == 40
    queries, qrels = read_queries(written.queries), read_qrels(written.qrels)
    assert len(queries) == len(qrels) == 40
    for query_id, judged in qrels.items():
        assert judged == {query_id: 1}  # one relevant paper: the one the query came from
        abstract = seed_abstracts[query_id]  # an id the seed index gives a paper
        query = queries[query_id]
        spans = sentence_spans(abstract)
        assert len(spans) >= 2
        assert query == abstract[spans[0][0] : spans[0][1]]  # its first sentence, verbatim
        assert abstract.startswith(query)
        assert len(query.split()) >= known_item.MIN_QUERY_WORDS


def test_same_seed_same_files_other_seed_other_sample(
    known_item: ModuleType, tmp_path: Path
) -> None:
    first = known_item.write_known_item_set(SEEDS, tmp_path / "a", count=20, seed=1)
    again = known_item.write_known_item_set(SEEDS, tmp_path / "b", count=20, seed=1)
    other = known_item.write_known_item_set(SEEDS, tmp_path / "c", count=20, seed=2)
    assert first.queries.read_bytes() == again.queries.read_bytes()
    assert first.qrels.read_bytes() == again.qrels.read_bytes()
    assert set(read_qrels(first.qrels)) != set(read_qrels(other.qrels))
    assert not [p.name for p in tmp_path.rglob(".*")]  # no temporary file left behind


def test_more_queries_than_papers_allow_is_one_clear_error(
    known_item: ModuleType, tmp_path: Path
) -> None:
    # Every seed abstract has two or more sentences and a long enough first one: 98 qualify.
    with pytest.raises(known_item.KnownItemError, match="only 98 of 98 papers make a query"):
        known_item.write_known_item_set(SEEDS, tmp_path, count=99, seed=0)
    assert not (tmp_path / known_item.QUERIES_FILE).exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--corpus", "no-such-corpus"], "no-such-corpus: no such file or folder"),
        (["--corpus", str(SEEDS), "--count", "0"], "count must be at least 1, not 0"),
    ],
)
def test_cli_refuses_bad_input_in_one_line(
    arguments: list[str], message: str, tmp_path: Path
) -> None:
    script = REPO / "benchmarks" / "known_item.py"
    done = subprocess.run(
        [sys.executable, str(script), *arguments, "--out", str(tmp_path / "set")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"known_item.py: error: {message}"]
    assert not (tmp_path / "set").exists()


def test_arxiv_sample(known_item: ModuleType, tmp_path: Path) -> None:
    corpus = shared_data("arxiv/arxiv-75k.jsonl.gz")
    written = known_item.write_known_item_set(corpus, tmp_path, count=50, seed=0)
    queries, qrels = read_queries(written.queries), read_qrels(written.qrels)
    assert written.count == len(queries) == len(qrels) == 50
    assert all(query_id.startswith("arxiv:") for query_id in qrels)
    assert all(len(text.split()) >= known_item.MIN_QUERY_WORDS for text in queries.values())
