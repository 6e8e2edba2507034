"""arXiv listing pages: abstract, optional comment lines, ``arXiv:ID``, ``Created: YYYY-MM-DD``.

These pages carry no titles and no authors; the records keep them empty rather than invent any.
"""

from __future__ import annotations

import re
from datetime import date

from indexing.records import Paper, ParseIssue

ARXIV_ID_LINE = re.compile(
    r"^arXiv:\s*(?P<id>\d{4}\.\d{4,5}(?:v\d+)?|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})$"
)
CREATED_LINE = re.compile(r"^Created:\s*(?P<date>\d{4}-\d{2}-\d{2})$")
# A first line shorter than this is a comment ("Work in progress"), not an abstract.
MIN_ABSTRACT_CHARS = 100


def looks_like_arxiv_listing(text: str) -> bool:
    lines = [line.strip() for line in text.splitlines()]
    return any(ARXIV_ID_LINE.match(line) for line in lines) and any(
        CREATED_LINE.match(line) for line in lines
    )


def parse_arxiv_listing(text: str, source: str) -> tuple[list[Paper], list[ParseIssue]]:
    papers: list[Paper] = []
    issues: list[ParseIssue] = []
    entry: list[tuple[int, str]] = []  # non-blank lines of the entry being read
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        entry.append((number, line))
        if CREATED_LINE.match(line):
            paper = _parse_entry(entry, source)
            if isinstance(paper, str):
                issues.append(ParseIssue(source, entry[0][0], paper))
            else:
                papers.append(paper)
            entry = []
    if entry:
        issues.append(ParseIssue(source, entry[0][0], "entry ends without a 'Created:' line"))
    return papers, issues


def _parse_entry(entry: list[tuple[int, str]], source: str) -> Paper | str:
    lines = [line for _, line in entry]
    if len(lines) < 3 or not ARXIV_ID_LINE.match(lines[-2]):
        return "expected abstract, optional comments, 'arXiv:ID' and 'Created:' in that order"
    abstract, comments = lines[0], lines[1:-2]
    if len(abstract) < MIN_ABSTRACT_CHARS or any(ARXIV_ID_LINE.match(c) for c in comments):
        return f"entry has no abstract (first line {abstract[:40]!r})"
    arxiv_id = ARXIV_ID_LINE.match(lines[-2])["id"]  # type: ignore[index]
    created = CREATED_LINE.match(lines[-1])["date"]  # type: ignore[index]
    try:
        published = date.fromisoformat(created)
    except ValueError:
        return f"invalid date {created!r}"
    return Paper(
        id=f"arxiv:{arxiv_id}",
        arxiv_id=arxiv_id,
        published=published,
        comment="; ".join(comments) or None,
        abstract=abstract,
        source=source,
    )
