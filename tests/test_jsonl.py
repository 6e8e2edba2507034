"""JSONL corpora: plain papers, arXiv metadata (gzip too) and BEIR corpus.jsonl."""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import pytest

from indexing.corpus import MAX_PAGE_BYTES, CorpusError, read_corpus
from indexing.parsers.jsonl import LINE_TOO_LONG, MAX_LINE_BYTES
from indexing.records import ParseIssue
from tests.conftest import SEEDS, shared_data

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
    # A bare year is read as its 1 January, and marked as such: the day is not the source's.
    assert second.published_inferred and not first.published_inferred


@pytest.mark.parametrize("year", ["2021", 2021, " 2021 "])
def test_a_year_only_date_is_marked_inferred(tmp_path, year):
    rows = [
        {"id": "plain", "abstract": "A plain record.", "date": year},
        {"id": "2101.00001", "categories": "cs.IR", "abstract": "A dump's.", "update_date": year},
        {"id": "full", "abstract": "With a full date.", "published": "2021-03-04"},
    ]
    plain, dump, full = read_corpus([write_jsonl(tmp_path / "p.jsonl", rows)], CAPTURE).papers
    assert plain.published == dump.published == date(2021, 1, 1)
    assert plain.published_inferred and dump.published_inferred
    assert full.published == date(2021, 3, 4) and not full.published_inferred


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


def test_a_folder_reads_gzip_files_whatever_their_name(tmp_path):
    """Formats are recognised by content and gzip is read whatever the name, so a folder's
    ``.gz`` files are all corpus files: a gzipped page as much as a gzipped dump."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl.gz", [{"id": "a", "abstract": "First."}], gz=True)
    write_jsonl(folder / "b.ndjson.gz", [{"id": "b", "abstract": "Second."}], gz=True)
    write_jsonl(folder / "c.gz", [{"id": "c", "abstract": "Third."}], gz=True)
    page = (SEEDS / "000_c81c81f2dcbdc6e0.txt").read_bytes()
    (folder / "page.txt.gz").write_bytes(gzip.compress(page))
    (folder / "notes.md").write_text("not a corpus file", encoding="utf-8")
    corpus = read_corpus([folder], CAPTURE)
    assert corpus.issues == []
    assert [path.name for path in corpus.files] == [
        "a.jsonl.gz",
        "b.ndjson.gz",
        "c.gz",
        "page.txt.gz",
    ]
    assert {"a", "b", "c"} <= {paper.id for paper in corpus.papers}
    assert sum(paper.source == "page.txt.gz" for paper in corpus.papers) == 7


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
        (
            "latin1.jsonl",
            '{"abstract": "Caf\xe9"}\n'.encode("latin-1"),
            1,
            "(byte 0xe9 in column 18)",
        ),
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


def record_of_length(length: int, title: str) -> bytes:
    """A paper record of exactly ``length`` bytes, its line break not counted."""
    head, tail = f'{{"title": "{title}", "abstract": "'.encode(), b'"}'
    return head + b"a" * (length - len(head) - len(tail)) + tail


@pytest.mark.parametrize("gz", [False, True])
def test_a_line_over_the_limit_is_skipped_and_reading_goes_on(tmp_path, gz):
    lines = [
        record_of_length(100, "before"),
        record_of_length(MAX_LINE_BYTES, "at the limit"),
        record_of_length(MAX_LINE_BYTES + 1, "over the limit"),
        record_of_length(100, "after"),
    ]
    content = b"\n".join(lines) + b"\n"
    path = tmp_path / "long.jsonl"
    path.write_bytes(gzip.compress(content) if gz else content)
    corpus = read_corpus([path], CAPTURE)
    assert [p.title for p in corpus.papers] == ["before", "at the limit", "after"]
    assert corpus.issues == [ParseIssue("long.jsonl", 3, LINE_TOO_LONG)]


def test_an_over_long_last_line_without_a_line_break_is_skipped(tmp_path):
    path = tmp_path / "cut.jsonl"
    path.write_bytes(record_of_length(100, "first") + b"\n" + b"{" * (MAX_LINE_BYTES + 1))
    corpus = read_corpus([path], CAPTURE)
    assert [p.title for p in corpus.papers] == ["first"]
    assert corpus.issues == [ParseIssue("cut.jsonl", 2, LINE_TOO_LONG)]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (gzip.compress(b""), "empty file"),
        (b"\n  \n\t\n", "empty file (blank lines)"),
    ],
)
def test_empty_files_are_reported_as_empty(tmp_path, content, reason):
    (tmp_path / "empty.jsonl").write_bytes(content)
    corpus = read_corpus([tmp_path / "empty.jsonl"], CAPTURE)
    assert corpus.issues == [ParseIssue("empty.jsonl", 1, reason)]


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        (b"IRMar 4\n" + b"a" * (MAX_LINE_BYTES + 1), 2, f"{LINE_TOO_LONG}: not a site page"),
        (b"IRMar 4\n" * (MAX_PAGE_BYTES // 8 + 1), 1, "not JSONL and over 64 MiB"),
    ],
    ids=["one-long-line", "too-large"],
)
def test_text_files_that_cannot_be_pages_are_skipped_whole(tmp_path, content, line, reason):
    (tmp_path / "page.txt").write_bytes(content)
    (issue,) = read_corpus([tmp_path / "page.txt"], CAPTURE).issues
    assert (issue.source, issue.line) == ("page.txt", line)
    assert issue.reason.startswith(reason) and issue.reason.endswith("the file is skipped")


def test_a_byte_order_mark_does_not_hide_jsonl(tmp_path):
    (tmp_path / "bom.jsonl").write_bytes(b'\xef\xbb\xbf{"abstract": "Saved on Windows."}\n')
    corpus = read_corpus([tmp_path / "bom.jsonl"], CAPTURE)
    assert corpus.issues == [] and [p.abstract for p in corpus.papers] == ["Saved on Windows."]


@pytest.mark.parametrize(
    ("files", "issue", "abstracts"),
    [
        pytest.param(
            {"a.jsonl": [{"id": "x", "abstract": "A."}, {"id": "y", "abstract": "B."}]}
            | {"b.jsonl": [{"id": "z", "abstract": "C."}, {"id": "x", "abstract": "D."}]},
            "b.jsonl:2: duplicate id 'x', first read from a.jsonl line 1, which is kept",
            ["A.", "B.", "C."],
            id="across-files",
        ),
        pytest.param(
            {"a.jsonl": [{"id": "x", "abstract": "A."}, {"id": "x", "abstract": "A."}]},
            "a.jsonl:2: duplicate id 'x': repeats a.jsonl line 1",
            ["A."],
            id="exact-repeat",
        ),
        pytest.param(
            {"corpus.jsonl": [{"_id": "7", "text": "A."}, "", {"_id": "7", "text": "B."}]},
            "corpus.jsonl:3: duplicate id '7', first read from corpus.jsonl line 1, which is kept",
            ["A."],
            id="beir",
        ),
        pytest.param(
            {
                "dump.jsonl": [
                    {"id": "2503.11731", "categories": "cs.CV", "abstract": "A."},
                    {"id": "2503.11731v2", "categories": "cs.CV", "abstract": "B."},
                ]
            },
            "dump.jsonl:2: duplicate id 'arxiv:2503.11731', first read from dump.jsonl line 1, "
            "which is kept",
            ["A."],
            id="arxiv-dump",
        ),
    ],
)
def test_a_second_record_under_an_id_is_reported_and_skipped(tmp_path, files, issue, abstracts):
    paths = [write_jsonl(tmp_path / name, rows) for name, rows in files.items()]
    corpus = read_corpus(paths, CAPTURE)
    assert [str(i) for i in corpus.issues] == [issue]
    assert [p.abstract for p in corpus.papers] == abstracts and corpus.merged_duplicates == 0


def test_records_without_ids_of_their_own_are_still_merged(tmp_path):
    paper = {"title": "Twice", "abstract": "The same text twice."}
    path = write_jsonl(tmp_path / "a.jsonl", [paper, {**paper, "category": "cs.IR"}])
    corpus = read_corpus([path], CAPTURE)
    assert corpus.issues == [] and corpus.merged_duplicates == 1
    (merged,) = corpus.papers
    assert merged.category == "cs.IR"  # the later copy filled what the first lacked


def test_a_paper_on_an_arxiv_listing_and_in_a_dump_is_merged_not_reported(tmp_path):
    listing = SEEDS / "001_0f1b2dcb4cc15811.txt"
    dump = write_jsonl(
        tmp_path / "dump.jsonl",
        [{"id": "2502.09375", "categories": "cs.IR", "title": "FARM", "abstract": "Elsewhere."}],
    )
    corpus = read_corpus([listing, dump], CAPTURE)
    assert corpus.issues == [] and corpus.merged_duplicates == 1
    (farm,) = [p for p in corpus.papers if p.id == "arxiv:2502.09375"]
    assert farm.title == "FARM" and farm.source == listing.name


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
