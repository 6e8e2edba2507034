"""A researcher's library: BibTeX (``.bib``) and CSL-JSON (Zotero, Mendeley, Better BibTeX).

BibTeX is read by bibtexparser and its LaTeX (accents, protecting braces, ``\\&``, math) is
turned into text by pylatexenc, so a title reads as it would be typeset. Ids stay the same
across re-imports of the same entries: ``arxiv:<id>`` where an arXiv id is known (as every
other format names arXiv papers, so copies from an arXiv dump merge with the library's),
else ``doi:<lowercased DOI>``, else the citation key. An entry without an abstract has
nothing to embed: it is reported with its key and skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import bibtexparser
from bibtexparser.bparser import BibTexParser
from bibtexparser.customization import splitname
from pylatexenc.latex2text import LatexNodes2Text

from indexing.parsers.jsonl import ARXIV_ID
from indexing.records import Paper, PaperAtLine, ParseIssue, clean_doi

# An entry header at the start of a line, ``@article{key,``; ``@string``, ``@preamble`` and
# ``@comment`` are not entries.
_ENTRY_HEADER = re.compile(r"^[ \t]*@[ \t]*([A-Za-z]+)[ \t]*[{(][ \t]*([^,\s]*)", re.MULTILINE)
_NOT_ENTRIES = {"string", "preamble", "comment"}
_ARXIV_URL = re.compile(r"arxiv\.org/(?:abs|pdf)/([^?#\s]+?)(?:\.pdf)?(?:[?#]|$)", re.IGNORECASE)
_ARXIV_DOI = re.compile(r"^10\.48550/arxiv\.(.+)$", re.IGNORECASE)
_ISO_DATE = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")
# LaTeX reads ``%`` as the start of a comment; in a BibTeX field typed by hand it is a percent.
_BARE_PERCENT = re.compile(r"(?<!\\)%")
# CSL-JSON titles may carry the rich-text tags the CSL specification allows.
_CSL_MARKUP = re.compile(r"</?(?:i|b|sup|sub|sc|span(?:\s[^>]*)?)>", re.IGNORECASE)
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_LATEX = LatexNodes2Text()
# What LaTeX typesets differently from the letters themselves: commands, groups, math, ties,
# dashes and quote ligatures.
_LATEX_MARKUP = re.compile(r"[\\{}$~%]|--|``|''")

# Commands that print a character LaTeX otherwise reads as markup (as exports write them):
# pylatexenc renders some as look-alikes or nothing, so they are read as the character.
_PRINTED_AS = {
    "textasciicircum": "^",
    "textbraceleft": "\\{",
    "textbraceright": "\\}",
}
_PRINTED = re.compile(r"\\(textasciicircum|textbraceleft|textbraceright)(?:\{\}|\b)")


def _printed(match: re.Match[str]) -> str:
    return _PRINTED_AS[match.group(1)]


NO_ABSTRACT = "no abstract, nothing to search by; the entry is skipped"


def looks_like_bibtex(text: str) -> bool:
    """A BibTeX file begins (past blank lines and ``%`` comments) with an ``@type{key``
    entry: a page that only quotes an entry somewhere ("Cite as: @misc{…") is a page."""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("%"):
            continue
        found = _ENTRY_HEADER.match(stripped)
        return found is not None
    return False


def looks_like_csl_json(head: bytes) -> bool:
    """CSL-JSON exports are one JSON array of item objects (``[{``, or ``[]``); JSONL starts
    with an object instead, and a text that merely starts with ``[`` is not JSON."""
    return re.match(rb"\s*\[\s*[{\]]", head) is not None


def latex_text(value: str) -> str:
    """LaTeX markup as the text it typesets to, on one line.

    Text without anything LaTeX would change is taken as it is: most abstracts and names are
    plain, and pylatexenc costs as much per field as bibtexparser does per entry.
    """
    if not _LATEX_MARKUP.search(value):
        return " ".join(value.split())
    try:
        text = _LATEX.latex_to_text(_BARE_PERCENT.sub(r"\\%", _PRINTED.sub(_printed, value)))
    except Exception:  # pylatexenc is tolerant; should it still fail, raw text beats no paper
        text = value
    return " ".join(text.split())


def parse_bibtex(text: str, source: str) -> Iterator[PaperAtLine | ParseIssue]:
    """Each entry with its line (the duplicate-id check and reports point at it)."""
    headers: list[tuple[str, int]] = []
    line, counted = 1, 0
    for match in _ENTRY_HEADER.finditer(text):  # lines counted onwards: a long file costs O(n)
        if match.group(1).lower() not in _NOT_ENTRIES:
            line += text.count("\n", counted, match.start())
            counted = match.start()
            headers.append((match.group(2), line))
    parser = BibTexParser(common_strings=True)
    parser.ignore_nonstandard_types = False  # @online, @software… are papers too
    try:
        entries = bibtexparser.loads(text, parser).entries
    except Exception as exc:  # e.g. a @string macro defined in another file
        yield ParseIssue(source, 1, f"not readable as BibTeX: {exc}")
        return
    lines: dict[str, list[int]] = {}
    for key, line in headers:
        lines.setdefault(key, []).append(line)
    for entry in entries:
        key = str(entry.get("ID", ""))
        found = lines.get(key)
        line = found.pop(0) if found else 1
        try:
            paper = _bibtex_paper(entry, key, source)
        except ValueError as exc:
            yield ParseIssue(source, line, f"entry {key!r}: {exc}")
            continue
        yield (
            PaperAtLine(paper, line)
            if paper
            else ParseIssue(source, line, f"entry {key!r}: {NO_ABSTRACT}")
        )
    for key, left in lines.items():  # headers bibtexparser could not make an entry of
        for line in left:
            yield ParseIssue(source, line, f"entry {key!r}: not readable as BibTeX; skipped")


def _bibtex_paper(entry: dict[str, str], key: str, source: str) -> Paper | None:
    abstract = latex_text(entry.get("abstract", ""))
    if not abstract:
        return None
    if not key:
        raise ValueError("no citation key")
    doi = _doi(entry.get("doi"))
    arxiv_id = _arxiv_id(
        eprint=entry.get("eprint"),
        eprint_type=entry.get("archiveprefix") or entry.get("eprinttype"),
        url=entry.get("url"),
        doi=doi,
    )
    published, inferred = _bibtex_date(entry)
    names = [n.strip() for n in re.split(r"\s+and\s+", entry.get("author", "")) if n.strip()]
    truncated = bool(names) and names[-1].lower() == "others"
    return Paper(
        id=_paper_id(arxiv_id, doi, key),
        title=latex_text(entry.get("title", "")) or None,
        authors=[_bibtex_name(name) for name in (names[:-1] if truncated else names)],
        authors_truncated=truncated,
        published=published,
        published_inferred=inferred,
        category=(entry.get("primaryclass", "").strip() or None) if arxiv_id else None,
        arxiv_id=arxiv_id,
        doi=doi,
        abstract=abstract,
        source=source,
    )


def _bibtex_name(name: str) -> str:
    """``Müller, Hans`` or ``Hans Müller`` as "Hans Müller" (given names first)."""
    try:
        parts = splitname(name, strict_mode=False)
    except Exception:  # an odd name is still a name
        return latex_text(name)
    ordered = [*parts["first"], *parts["von"], *parts["last"], *parts["jr"]]
    return latex_text(" ".join(ordered)) or latex_text(name)


def _bibtex_date(entry: dict[str, str]) -> tuple[date | None, bool]:
    """biblatex ``date`` (``2020-05-17``, ``2020-05``), else ``year`` with ``month``; a date
    the source gives without its day or month is marked inferred."""
    if found := _ISO_DATE.match(entry.get("date", "").strip()):
        return _date_of(found.group(1), found.group(2), found.group(3))
    year = re.search(r"\d{4}", entry.get("year", ""))
    if year is None:
        return None, False
    month_text = entry.get("month", "").strip().lower().rstrip(".")
    month = str(_MONTHS[month_text]) if month_text in _MONTHS else month_text
    return _date_of(year.group(0), month if month.isdigit() else None, None)


def _date_of(year: Any, month: Any, day: Any) -> tuple[date | None, bool]:
    try:
        return date(int(year), int(month or 1), int(day or 1)), day is None
    except (TypeError, ValueError):
        try:  # a day or month out of range: keep the year, which is rarely wrong
            return date(int(year), 1, 1), True
        except (TypeError, ValueError):
            return None, False


def parse_csl_json(text: str, source: str) -> Iterator[PaperAtLine | ParseIssue]:
    """Item by item, each with the line it starts on; a broken array ends the reading there."""
    decoder = json.JSONDecoder()
    at = text.index("[") + 1
    line, counted = 1, 0

    def line_of(position: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, position)
        counted = position
        return line

    while True:
        at = _skip_space(text, at)
        if at >= len(text) or text[at] == "]":
            return
        try:
            item, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            yield ParseIssue(
                source,
                line_of(exc.pos),
                f"invalid JSON: {exc.msg}; the rest of the file is skipped",
            )
            return
        where = line_of(at)
        at = _skip_space(text, end)
        if at < len(text) and text[at] == ",":
            at += 1
        if not isinstance(item, dict):
            yield ParseIssue(source, where, "expected a CSL-JSON item (a JSON object)")
            continue
        key = str(item.get("citation-key") or item.get("id") or "")
        try:
            paper = _csl_paper(item, key, source)
        except (ValueError, TypeError) as exc:
            yield ParseIssue(source, where, f"item {key!r}: {exc}")
            continue
        yield (
            PaperAtLine(paper, where)
            if paper
            else ParseIssue(source, where, f"item {key!r}: {NO_ABSTRACT}")
        )


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


def _csl_paper(item: dict[str, Any], key: str, source: str) -> Paper | None:
    abstract = _csl_text(item.get("abstract"))
    if not abstract:
        return None
    if not key:
        raise ValueError("no 'id' or 'citation-key'")
    doi = _doi(_csl_text(item.get("DOI")))
    number = _csl_text(item.get("number")) or ""
    arxiv_id = _arxiv_id(
        eprint=number.removeprefix("arXiv:") if number.lower().startswith("arxiv:") else None,
        eprint_type="arxiv",
        url=_csl_text(item.get("URL")),
        doi=doi,
    )
    published, inferred = _csl_date(item.get("issued"))
    return Paper(
        id=_paper_id(arxiv_id, doi, key),
        title=_csl_text(item.get("title")) or None,
        authors=[name for name in map(_csl_name, _listed(item.get("author"))) if name],
        published=published,
        published_inferred=inferred,
        arxiv_id=arxiv_id,
        doi=doi,
        abstract=abstract,
        source=source,
    )


def _listed(value: Any) -> list[Any]:
    """A CSL name list; a single name given as a string or an object is a list of one."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _csl_text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise TypeError(f"expected text, got {type(value).__name__}: {value!r:.40}")
    return " ".join(_CSL_MARKUP.sub("", str(value)).split())


def _csl_name(name: Any) -> str:
    """``{"family": "Müller", "given": "Hans"}`` as "Hans Müller"; ``{"literal": …}`` as is."""
    if isinstance(name, str):
        return name.strip()
    if not isinstance(name, dict):
        raise TypeError(f"an author must be an object, got {type(name).__name__}")
    if name.get("literal"):
        return _csl_text(name["literal"])
    parts = ("given", "dropping-particle", "non-dropping-particle", "family", "suffix")
    return " ".join(text for part in parts if (text := _csl_text(name.get(part))))


def _csl_date(issued: Any) -> tuple[date | None, bool]:
    """``{"date-parts": [[2020, 5, 17]]}`` (parts may be strings) or ``{"raw": "2020-05"}``."""
    if not isinstance(issued, dict):
        return None, False
    parts = issued.get("date-parts")
    if isinstance(parts, list) and parts and isinstance(parts[0], list) and parts[0]:
        first = [*parts[0], None, None][:3]
        return _date_of(*first)
    raw = issued.get("raw") or issued.get("literal")
    if isinstance(raw, str) and (found := _ISO_DATE.match(raw.strip())):
        return _date_of(found.group(1), found.group(2), found.group(3))
    return None, False


_doi = clean_doi


def _arxiv_id(
    *, eprint: str | None, eprint_type: str | None, url: str | None, doi: str | None
) -> str | None:
    """From an arXiv eprint, an arxiv.org link or an arXiv DOI (10.48550/arXiv.<id>)."""
    candidates = []
    if eprint and (eprint_type or "").strip().lower() == "arxiv":
        candidates.append(eprint.strip().removeprefix("arXiv:"))
    if url and (found := _ARXIV_URL.search(url.strip())):
        candidates.append(found.group(1))
    if doi and (found := _ARXIV_DOI.match(doi)):
        candidates.append(found.group(1))
    for candidate in candidates:
        if ARXIV_ID.match(candidate):
            return re.sub(r"v\d+$", "", candidate)
    return None


def _paper_id(arxiv_id: str | None, doi: str | None, key: str) -> str:
    if arxiv_id:
        return f"arxiv:{arxiv_id}"
    if doi:
        return f"doi:{doi.lower()}"
    return key
