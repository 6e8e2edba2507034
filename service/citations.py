"""How to cite a paper: a link, a one-line reference and BibTeX, from the metadata we hold.

Nothing is invented: a field the source did not give is left out, and BibTeX is offered only
when there is a title, a year and either authors or an arXiv id to go with them.
"""

from __future__ import annotations

import re

from bibtexparser.bibdatabase import BibDatabase
from bibtexparser.bwriter import BibTexWriter

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
    """One paper's BibTeX, offered only where the metadata makes a usable reference."""
    if not (paper.title and paper.published and (paper.authors or paper.arxiv_id)):
        return None
    return write_bibtex([bibtex_entry(paper)]).strip()


def bibtex_entry(paper: Paper, key: str | None = None) -> dict[str, str]:
    """A paper as a bibtexparser entry: the one BibTeX rule, shared by a paper's ``bibtex``
    and by exports (which also write untitled or undated papers, named by their label).
    Text is LaTeX-escaped; the title is braced so BibTeX styles keep its capitals."""
    title = paper_label(paper.title, paper.arxiv_id, paper.id)
    entry = {"ENTRYTYPE": "misc", "ID": key or bibtex_key(paper)}
    entry["title"] = "{" + latex_escape(title) + "}"
    if paper.authors:
        authors = " and ".join(latex_escape(name) for name in paper.authors)
        entry["author"] = authors + (" and others" if paper.authors_truncated else "")
    if paper.published:
        entry["year"] = str(paper.published.year)
    if paper.arxiv_id:
        entry["eprint"], entry["archivePrefix"] = paper.arxiv_id, "arXiv"
    if paper.doi:
        entry["doi"] = paper.doi
    if url := paper_url(paper):
        entry["url"] = url
    return entry


def bibtex_key(paper: Paper) -> str:
    """``zhu2025long``: first author's surname, year, first word of the title."""
    first_author = paper.authors[0].split()[-1] if paper.authors else "arxiv"
    year = paper.published.year if paper.published else ""
    first_word = next(iter(re.findall(r"[A-Za-z]{3,}", paper.title or "")), "paper")
    return re.sub(r"[^a-z0-9]", "", f"{first_author}{year}{first_word}".lower()) or "paper"


BIBTEX_FIELDS = ["title", "author", "year", "eprint", "archivePrefix", "doi", "url", "abstract"]


def write_bibtex(entries: list[dict[str, str]]) -> str:
    """Entries as BibTeX text, written by bibtexparser in the order given."""
    database = BibDatabase()
    database.entries = entries
    writer = BibTexWriter()
    writer.indent = "  "
    writer.order_entries_by = None
    writer.display_order = BIBTEX_FIELDS
    return str(writer.write(database))


def latex_escape(text: str) -> str:
    """LaTeX's special characters (& % $ # _ { } \\ ~ ^) escaped, so text reads as written.
    BibTeX (and bibtexparser) match braces without regard to a backslash, so where the
    text's own braces do not pair up they are written as ``\\textbraceleft{}`` and
    ``\\textbraceright{}``, which keep a field's braces balanced."""
    braces = {"{": "\\{", "}": "\\}"} if _braces_pair(text) else BRACE_WORDS
    written = {**{c: "\\" + c for c in "&%$#_"}, **_COMMAND_WORDS, **braces}
    # A character LaTeX would join with the next one ("--" is a dash) is kept apart by {}.
    written.update({"-": "-{}", "`": "`{}", "'": "'{}"})
    return re.sub(r"[&%$#_{}\\~^]|[-`'](?=[-`'])", lambda c: written[c.group()], text)


BRACE_WORDS = {"{": "\\textbraceleft{}", "}": "\\textbraceright{}"}
# Characters LaTeX reads as commands or accents, written as the commands that print them.
_COMMAND_WORDS = {"\\": "\\textbackslash{}", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}"}


def _braces_pair(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0
