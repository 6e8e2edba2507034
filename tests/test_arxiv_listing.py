"""arXiv listing pages: abstract, optional comments, id, creation date; no titles."""

from __future__ import annotations

from datetime import date

from indexing.parsers.arxiv_listing import parse_arxiv_listing

ABSTRACT_1 = (
    "In recent years, integrated short-video and live-streaming platforms have gained massive global "
    "adoption, offering dynamic content creation and consumption."
)
ABSTRACT_2 = (
    "Live-streaming services have attracted widespread popularity due to their real-time "
    "interactivity and entertainment value."
)
ABSTRACT_3 = (
    "Traditional recommender systems heavily rely on ID features, which often encounter challenges "
    "related to cold-start and generalization."
)

LISTING = f"""{ABSTRACT_1}

Work in progress

arXiv:2504.05217
Created: 2025-04-07

{ABSTRACT_2}

arXiv:2502.09375
Created: 2025-02-13

{ABSTRACT_3}

9 pages, 8 figures

arXiv:2404.06078
Created: 2024-04-09
"""


def test_entries_with_and_without_comments():
    papers, issues = parse_arxiv_listing(LISTING, "001.txt")
    assert issues == []
    assert [(p.id, p.arxiv_id, p.published, p.comment) for p in papers] == [
        ("arxiv:2504.05217", "2504.05217", date(2025, 4, 7), "Work in progress"),
        ("arxiv:2502.09375", "2502.09375", date(2025, 2, 13), None),
        ("arxiv:2404.06078", "2404.06078", date(2024, 4, 9), "9 pages, 8 figures"),
    ]
    assert [p.abstract for p in papers] == [ABSTRACT_1, ABSTRACT_2, ABSTRACT_3]
    assert all(p.title is None and p.authors == [] for p in papers)  # never invented


def test_misspelt_comment_is_kept_as_written():
    papers, _ = parse_arxiv_listing(
        LISTING.replace("Work in progress", "Work in progrees"), "001.txt"
    )
    assert papers[0].comment == "Work in progrees"


def test_entry_without_abstract_is_reported_and_skipped():
    broken = LISTING.replace(ABSTRACT_2 + "\n", "")
    papers, issues = parse_arxiv_listing(broken, "001.txt")
    assert [p.arxiv_id for p in papers] == ["2504.05217", "2404.06078"]
    # Line 8 is left blank; the entry now starts at its id line.
    assert [(i.source, i.line) for i in issues] == [("001.txt", 9)]
    assert "order" in issues[0].reason


def test_entry_without_id_is_reported_and_skipped():
    broken = LISTING.replace("arXiv:2502.09375\n", "")
    papers, issues = parse_arxiv_listing(broken, "001.txt")
    assert [p.arxiv_id for p in papers] == ["2504.05217", "2404.06078"]
    assert len(issues) == 1 and issues[0].line == 8


def test_trailing_entry_without_created_line_is_reported():
    papers, issues = parse_arxiv_listing(
        LISTING + f"\n{ABSTRACT_1}\n\narXiv:2501.00001\n", "001.txt"
    )
    assert len(papers) == 3
    assert "Created" in issues[0].reason
