"""How to cite a paper: a link, a one-line reference and BibTeX, from the metadata we hold.

Nothing is invented: a field the source did not give is left out, and BibTeX is offered only
when there is a title, a year and either authors or an arXiv id to go with them.
"""

from __future__ import annotations

import re

from indexing.records import Paper

# Authors named before "et al." wherever a paper is credited in one line.
CREDITED_AUTHORS = 3
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def paper_label(title: str | None, arxiv_id: str | None, paper_id: str) -> str:
    """What names a paper everywhere it is listed: its title; an untitled one (arXiv
    listings have some) by its arXiv id, else by its id."""
    return title or (f"arXiv:{arxiv_id}" if arxiv_id else paper_id)


def author_credit(paper: Paper, first: int | None = CREDITED_AUTHORS) -> str | None:
    """``Zhu, Jiang, Chen et al.``: the ``first`` authors (all of them for None), "et al."
    where more were listed or the source itself cut the list; ``None`` where no author is
    known."""
    if not paper.authors:
        return None
    shown = paper.authors if first is None else paper.authors[:first]
    names = ", ".join(shown)
    if paper.authors_truncated or len(shown) < len(paper.authors):
        names += " et al."
    return names


def date_label(paper: Paper) -> str | None:
    """``3 Jan 2025``, marked "(date inferred)" where part of it is not the source's (a
    year resolved against the capture date, or a bare year read as its 1 January)."""
    if paper.published is None:
        return None
    day = paper.published
    label = f"{day.day} {MONTHS[day.month - 1]} {day.year}"
    return label + " (date inferred)" if paper.published_inferred else label


def paper_url(paper: Paper) -> str | None:
    """The arXiv page where there is one (the full text is a click away), else the DOI's."""
    if paper.arxiv_id:
        return f"https://arxiv.org/abs/{paper.arxiv_id}"
    return f"https://doi.org/{paper.doi}" if paper.doi else None


def one_line_citation(paper: Paper) -> str:
    """``Zhu, Jiang, Chen et al. (2025). Title. arXiv:2501.00001.``, or ``arXiv:ID (2025).``"""
    year = f" ({paper.published.year})" if paper.published else ""
    where = f" arXiv:{paper.arxiv_id}." if paper.arxiv_id and paper.title else ""
    title = paper_label(paper.title, paper.arxiv_id, paper.id)
    names = author_credit(paper)
    return f"{names}{year}. {title}.{where}" if names else f"{title}{year}.{where}"


def bibtex(paper: Paper) -> str | None:
    if not (paper.title and paper.published and (paper.authors or paper.arxiv_id)):
        return None
    first_author = paper.authors[0].split()[-1] if paper.authors else "arxiv"
    first_word = next(iter(re.findall(r"[A-Za-z]{3,}", paper.title)), "paper")
    key = re.sub(r"[^a-z0-9]", "", f"{first_author}{paper.published.year}{first_word}".lower())
    fields = [("title", "{" + _escape(paper.title) + "}")]
    if paper.authors:
        authors = " and ".join(_escape(name) for name in paper.authors)
        if paper.authors_truncated:
            authors += " and others"
        fields.append(("author", authors))
    fields.append(("year", str(paper.published.year)))
    if paper.arxiv_id:
        fields += [("eprint", paper.arxiv_id), ("archivePrefix", "arXiv")]
    if url := paper_url(paper):
        fields.append(("url", url))
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@misc{{{key},\n{body}\n}}"


def _escape(text: str) -> str:
    return re.sub(r"([&%$#_{}])", r"\\\1", text)
