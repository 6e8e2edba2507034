"""Human-readable CLI output: rank, score, title, first authors, date, matching sentences."""

from __future__ import annotations

import textwrap

from indexing.records import Paper
from service.schemas import SearchHit

FIRST_AUTHORS = 3


def paper_heading(paper: Paper) -> str:
    if paper.title:
        return paper.title
    label = f"arXiv:{paper.arxiv_id}" if paper.arxiv_id else paper.id
    return f"[untitled, {label}] {textwrap.shorten(paper.abstract, 90, placeholder='…')}"


def paper_byline(paper: Paper) -> str:
    authors = ", ".join(paper.authors[:FIRST_AUTHORS])
    if authors and (paper.authors_truncated or len(paper.authors) > FIRST_AUTHORS):
        authors += " et al."
    date = paper.published.isoformat() if paper.published else "undated"
    if paper.published_inferred:
        date += " (year inferred)"
    parts = [authors or "authors unknown", date]
    if paper.category:
        parts.append(paper.category)
    parts.append(paper.id)
    return " · ".join(parts)


def format_hits(hits: list[SearchHit], first_rank: int = 1) -> str:
    if not hits:
        return "no results"
    lines = []
    for rank, hit in enumerate(hits, start=first_rank):
        lines.append(f"{rank:>3}. {hit.score:.3f}  {paper_heading(hit)}")
        lines.append(f"{'':>12}{paper_byline(hit)}")
        for highlight in hit.highlights:
            lines.append(f"{'':>12}» {textwrap.shorten(highlight.text, 140, placeholder='…')}")
    return "\n".join(lines)
