"""How to cite a paper: a link, a one-line reference and BibTeX, from the metadata we hold.

Nothing is invented: a field the source did not give is left out, and BibTeX is offered only
when there is a title, a year and either authors or an arXiv id to go with them.
"""

from __future__ import annotations

import re

from indexing.records import Paper

CITATION_AUTHORS = 3


def paper_url(paper: Paper) -> str | None:
    return f"https://arxiv.org/abs/{paper.arxiv_id}" if paper.arxiv_id else None


def one_line_citation(paper: Paper) -> str:
    """``Zhu, Jiang, Chen et al. (2025). Title. arXiv:2501.00001.``, or ``arXiv:ID (2025).``"""
    year = f" ({paper.published.year})" if paper.published else ""
    where = f" arXiv:{paper.arxiv_id}." if paper.arxiv_id and paper.title else ""
    title = paper.title or (f"arXiv:{paper.arxiv_id}" if paper.arxiv_id else "Untitled")
    if not paper.authors:
        return f"{title}{year}.{where}"
    names = ", ".join(paper.authors[:CITATION_AUTHORS])
    if paper.authors_truncated or len(paper.authors) > CITATION_AUTHORS:
        names += " et al."
    return f"{names}{year}. {title}.{where}"


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
