"""JSONL corpora: plain papers, arXiv metadata (gzip too) and BEIR corpus.jsonl."""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import pytest

from indexing.corpus import CorpusError, read_corpus
from tests.conftest import shared_data

CAPTURE = date(2026, 6, 30)


def write_jsonl(path: Path, rows: list[object], *, gz: bool = False) -> Path:
    text = "\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n"
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_plain_jsonl(tmp_path):
    path = write_jsonl(
        tmp_path / "mine.jsonl",
        [
            {
                "title": "A Paper",
                "abstract": "We study things.",
                "authors": ["Ada Lovelace", "Alan Turing"],
                "published": "2024-05-01",
                "category": "cs.IR",
                "has_code": True,
            },
            {
                "id": "my-7",
                "title": "Another",
                "abstract": "More things.",
                "authors": "A. One and B. Two",
                "year": 2021,
            },
        ],
    )
    corpus = read_corpus([path], CAPTURE)
    assert corpus.issues == []
    first, second = corpus.papers
    assert first.title == "A Paper" and first.authors == ["Ada Lovelace", "Alan Turing"]
    assert first.published == date(2024, 5, 1) and first.has_code and first.category == "cs.IR"
    assert first.id.startswith("a-paper-") and first.source == "mine.jsonl"
    assert second.id == "my-7" and second.authors == ["A. One", "B. Two"]
    assert second.published == date(2021, 1, 1)


def test_arxiv_metadata_gzip_whatever_the_name(tmp_path):
    path = write_jsonl(
        tmp_path / "dump.jsonl",
        [
            {
                "id": "2503.11731",
                "title": "Sensor Simulation\n  via Splatting",
                "abstract": "Sensor simulation is pivotal\nfor validation.",
                "authors": ["X Zeng", "S Du"],
                "categories": ["cs.CV", "cs.RO"],
                "listing_date": "2025-03-18",
                "comment": None,
            },
        ],
        gz=True,
    )
    (paper,) = read_corpus([path], CAPTURE).papers
    assert paper.id == "arxiv:2503.11731" and paper.arxiv_id == "2503.11731"
    assert paper.title == "Sensor Simulation via Splatting"
    assert paper.abstract == "Sensor simulation is pivotal for validation."
    assert paper.category == "cs.CV" and paper.published == date(2025, 3, 18)


def test_beir_folder_reads_only_the_corpus_and_keeps_ids(tmp_path):
    write_jsonl(
        tmp_path / "corpus.jsonl",
        [
            {
                "_id": "4983",
                "title": "Microstructural development",
                "text": "Alterations of white matter.",
            },
            {
                "_id": "5836",
                "title": "",
                "text": "Alterations of white matter.",
            },  # same text, other doc
        ],
    )
    write_jsonl(tmp_path / "queries.jsonl", [{"_id": "1", "text": "a query, not a paper"}])
    corpus = read_corpus([tmp_path], CAPTURE)
    assert [(p.id, p.title) for p in corpus.papers] == [
        ("4983", "Microstructural development"),
        ("5836", None),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "invalid JSON"),
        ('["a", "list"]', "JSON object"),
        ('{"title": "No abstract"}', "missing or empty"),
        ('{"title": 5, "abstract": "Text."}', "expected a string"),
        ('{"abstract": "Text.", "published": "last tuesday"}', "unreadable date"),
    ],
)
def test_bad_lines_are_reported_with_line_numbers(tmp_path, line, reason):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"title": "Good", "abstract": "Fine."}, line])
    corpus = read_corpus([path], CAPTURE)
    assert [p.title for p in corpus.papers] == ["Good"]
    (issue,) = corpus.issues
    assert (issue.source, issue.line) == ("bad.jsonl", 2)
    assert reason in issue.reason


@pytest.mark.parametrize("name", ["missing", "empty-folder"])
def test_unreadable_paths_raise_a_clear_error(tmp_path, name):
    if name == "empty-folder":
        (tmp_path / name).mkdir()
    with pytest.raises(CorpusError, match=name):
        read_corpus([tmp_path / name], CAPTURE)


@pytest.mark.parametrize(
    ("name", "content", "line", "reason"),
    [
        ("latin1.txt", "Caf\xe9 au lait\n".encode("latin-1"), 1, "not UTF-8 text"),
        ("bad-bytes.jsonl", b'{"abstract": "fine"}\n{"abstract": "\xff\xfe"}\n', 2, "not UTF-8"),
        ("cut.jsonl.gz", gzip.compress(b'{"abstract": "fine"}\n' * 50)[:-12], None, "damaged gzip"),
        ("binary.txt", bytes(range(256)), 2, "not UTF-8 text"),  # byte 10 is a newline,
    ],
)
def test_damaged_files_become_issues_not_tracebacks(tmp_path, name, content, line, reason):
    path = tmp_path / name
    path.write_bytes(content)
    corpus = read_corpus([path], CAPTURE)
    (issue,) = corpus.issues
    assert issue.source == name and reason in issue.reason
    if line is not None:  # where a gzip stream breaks depends on its read-ahead
        assert issue.line == line


def test_real_scifact_corpus():
    corpus = read_corpus([shared_data("scifact")], CAPTURE)
    assert len(corpus.papers) == 5183 and corpus.issues == []
    assert corpus.papers[0].id == "4983"


def test_real_arxiv_dump_first_lines(tmp_path):
    source = shared_data("arxiv/arxiv-75k.jsonl.gz")
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        lines = [next(handle) for _ in range(300)]
    sample = tmp_path / "arxiv-300.jsonl.gz"
    with gzip.open(sample, "wt", encoding="utf-8") as handle:
        handle.writelines(lines)
    corpus = read_corpus([sample], CAPTURE)
    assert len(corpus.papers) == 300 and corpus.issues == []
    assert all(
        p.id == f"arxiv:{p.arxiv_id}" and p.title and p.authors and p.published
        for p in corpus.papers
    )
    assert all("\n" not in p.abstract for p in corpus.papers)
