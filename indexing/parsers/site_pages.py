"""Pages scraped from the paper site: author pages and listing pages.

Both kinds share the entry header ``[score]CATEGORYMon D[, YYYY][Code]``. On author pages the
title, the author list and the abstract follow on lines of their own; on listing pages the title
and the author list are glued into one line, which :func:`split_title_and_authors` takes apart.

The parser cuts the page at header lines and then insists that each entry has exactly the lines
it should. An entry that does not is reported with its line and skipped, so a missing line can
never shift an abstract into the neighbouring paper.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from indexing.records import AuthorProfile, Paper, ParseIssue, derived_paper_id

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

ENTRY_HEADER = re.compile(
    r"^(?P<score>\d+(?:\.\d+)?)?"
    r"(?P<category>[A-Za-z][A-Za-z.\-]*?)"
    rf"(?P<month>{'|'.join(MONTHS)}) (?P<day>\d{{1,2}})"
    r"(?:, (?P<year>\d{4}))?"
    r"(?P<code>Code)?$"
)

_PROFILE_FIELDS = {
    "h_index": re.compile(r"^h-index\s*(\d+)$"),
    "papers": re.compile(r"^(\d+)\s*papers$"),
    "citations": re.compile(r"^(\d+)\s*citations$"),
    "novelty_percent": re.compile(r"^Novelty\s*(\d+)%$"),
    "ai_score": re.compile(r"^AI Score\s*(\d+)$"),
}
_LISTED_COUNT = re.compile(r"^(\d+) Papers$")

# Words that end an organisation's name in an author list ("OneRec Team").
_ORGANISATION_WORDS = frozenset(
    {"Team", "Lab", "Labs", "Group", "Consortium", "Collaboration", "Project", "Initiative"}
)
# Lower-case particles that may stand inside a person's name ("Ludwig van Beethoven").
_NAME_PARTICLES = frozenset({"van", "von", "de", "der", "den", "da", "di", "du", "del", "la", "le"})
_ET_AL = re.compile(r"\s*\bet al\.?$")


@dataclass(frozen=True)
class AuthorList:
    names: list[str]
    truncated: bool
    affiliation: str | None


def looks_like_site_page(text: str) -> bool:
    return any(ENTRY_HEADER.match(line.strip()) for line in text.splitlines())


def parse_author_list(line: str) -> AuthorList:
    """``A, B, C et al. · affiliation`` -> names, whether the list was cut, the affiliation."""
    text, _, affiliation = line.strip().partition(" · ")
    text, truncated = _ET_AL.sub("", text), bool(_ET_AL.search(text))
    names = [name.strip() for name in text.split(",") if name.strip()]
    return AuthorList(names, truncated, affiliation.strip() or None)


def _is_name_word(word: str) -> bool:
    """``Xu``, ``Jean-Pierre``, ``O'Neil``, ``J.``, ``van``; not ``OneRec`` or ``RecipeYahui``."""
    if word in _NAME_PARTICLES or re.fullmatch(r"[A-Z]\.", word):
        return True
    parts = re.split(r"[-']", word)
    if not all(parts) or not parts[0][0].isupper():
        return False
    return all(
        part[0].isalpha() and (part[1:] == "" or (part[1:].isalpha() and part[1:].islower()))
        for part in parts
    )


def _is_plausible_first_author(name: str) -> bool:
    """A person (2-5 capitalised words, no capital inside a word) or an organisation team."""
    words = name.split()
    if not words:
        return False
    if words[-1] in _ORGANISATION_WORDS:
        return 2 <= len(words) <= 3 and all(w[0].isupper() for w in words)
    return 2 <= len(words) <= 5 and words[0][0].isupper() and all(map(_is_name_word, words))


def split_title_and_authors(line: str) -> tuple[str, AuthorList] | None:
    """Split ``<title><First Author>, <Second>, … et al.`` where no space marks the seam.

    The seam is a capital letter glued to the character before it. Titles have such spots too
    (``GoLongRL``, ``OneReason``), so the earliest spot wins whose remainder reads as an author
    list: a plausible first author (a person's name has no capital inside a word, which is
    exactly what the glue creates) followed by comma-separated names.
    """
    for seam in range(1, len(line)):
        if not line[seam].isupper() or line[seam - 1].isspace():
            continue
        title, authors = line[:seam].strip(), parse_author_list(line[seam:])
        if title and authors.names and _is_plausible_first_author(authors.names[0]):
            return title, authors
    return None


def resolve_date(month: str, day: int, year: int | None, capture_date: date) -> tuple[date, bool]:
    """A header date; without a year it is the latest such day on or before the capture date."""
    month_number = MONTHS.index(month) + 1
    if year is not None:
        return date(year, month_number, day), False
    year = capture_date.year
    if (month_number, day) > (capture_date.month, capture_date.day):
        year -= 1
    return date(year, month_number, day), True


def _parse_profile(lines: list[tuple[int, str]]) -> tuple[AuthorProfile | None, int | None]:
    """The author-page preamble -> profile and the number of papers the page says it lists."""
    if not lines:
        return None, None
    values: dict[str, int] = {}
    free_text: list[str] = []
    listed: int | None = None
    for _, text in lines:
        if match := _LISTED_COUNT.match(text):
            listed = int(match.group(1))
            continue
        for key, pattern in _PROFILE_FIELDS.items():
            if match := pattern.match(text):
                values[key] = int(match.group(1))
                break
        else:
            free_text.append(text)
    name, field = free_text[0], (free_text[1] if len(free_text) > 1 else None)
    return AuthorProfile(name=name, field=field, **values), listed


def parse_site_page(
    text: str, source: str, capture_date: date
) -> tuple[list[Paper], list[ParseIssue]]:
    lines = [(number, raw.strip()) for number, raw in enumerate(text.splitlines(), start=1)]
    header_rows = [i for i, (_, line) in enumerate(lines) if ENTRY_HEADER.match(line)]
    papers: list[Paper] = []
    issues: list[ParseIssue] = []
    if not header_rows:
        return papers, [ParseIssue(source, 1, "no entry header like 'IRMar 4' found")]

    preamble = [(n, line) for n, line in lines[: header_rows[0]] if line]
    profile, listed = _parse_profile(preamble)

    for position, row in enumerate(header_rows):
        end = header_rows[position + 1] if position + 1 < len(header_rows) else len(lines)
        header_line_number, header = lines[row]
        body = [line for _, line in lines[row + 1 : end] if line]
        paper = _parse_entry(header, body, source, capture_date, profile)
        if isinstance(paper, str):
            issues.append(ParseIssue(source, header_line_number, paper))
        else:
            papers.append(paper)

    if listed is not None and listed != len(header_rows):
        issues.append(
            ParseIssue(source, 1, f"page says {listed} papers but has {len(header_rows)} entries")
        )
    return papers, issues


def _parse_entry(
    header: str, body: list[str], source: str, capture_date: date, profile: AuthorProfile | None
) -> Paper | str:
    """One entry -> a paper, or the reason it cannot be read."""
    match = ENTRY_HEADER.match(header)
    assert match is not None  # only header rows reach here
    if len(body) == 3:  # author page: title / authors / abstract
        title, authors, abstract = body[0], parse_author_list(body[1]), body[2]
    elif len(body) == 2:  # listing page: title+authors glued / abstract
        split = split_title_and_authors(body[0])
        if split is None:
            return f"cannot find where the title ends and the authors begin in {body[0][:60]!r}"
        (title, authors), abstract = split, body[1]
    else:
        return f"expected title, authors and abstract after {header!r}, found {len(body)} lines"
    if not authors.names:
        return f"no authors in entry {title[:60]!r}"
    try:
        published, inferred = resolve_date(
            match["month"],
            int(match["day"]),
            int(match["year"]) if match["year"] else None,
            capture_date,
        )
    except ValueError as exc:
        return f"invalid date in header {header!r}: {exc}"
    return Paper(
        id=derived_paper_id(title, abstract),
        title=title,
        authors=authors.names,
        authors_truncated=authors.truncated,
        affiliation=authors.affiliation,
        published=published,
        published_inferred=inferred,
        category=match["category"],
        has_code=match["code"] is not None,
        site_score=float(match["score"]) if match["score"] else None,
        abstract=abstract,
        source=source,
        profile=profile,
    )
