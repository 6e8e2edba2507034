"""Human-readable CLI output: rank, score, title, first authors, date, matching sentences."""

from __future__ import annotations

import textwrap

from service.schemas import CitedPaper, SearchHit


def paper_heading(paper: CitedPaper) -> str:
    """The paper's label; an untitled paper is recognised by its first words as well."""
    if paper.title:
        return paper.label
    return f"[untitled, {paper.label}] {textwrap.shorten(paper.abstract, 90, placeholder='…')}"


def paper_byline(paper: CitedPaper) -> str:
    parts = [paper.credit or "authors unknown", paper.date_label or "undated"]
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
