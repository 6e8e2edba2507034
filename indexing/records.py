"""The paper record every parser produces and every later stage (index, API, CLI) reads."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date

from pydantic import BaseModel, ConfigDict, Field


class AuthorProfile(BaseModel):
    """The author page a paper was listed on (author-page seeds only)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    field: str | None = None
    h_index: int | None = None
    papers: int | None = None
    citations: int | None = None
    novelty_percent: int | None = None
    ai_score: int | None = None


class Paper(BaseModel):
    """One research paper as stored in the index and returned by the API."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        description="Stable across re-indexing; 'arxiv:<id>' where an arXiv id is known."
    )
    title: str | None = Field(None, description="Null where the source has no title.")
    authors: list[str] = Field(default_factory=list)
    authors_truncated: bool = Field(False, description="The source cut the list ('et al.').")
    affiliation: str | None = Field(None, description="Affiliation given after the authors.")
    published: date | None = None
    published_inferred: bool = Field(
        False,
        description="Part of the date is not the source's: a date shown without a year was "
        "resolved against the capture date, or a bare year was read as its 1 January.",
    )
    category: str | None = Field(None, description="The primary category.")
    categories: list[str] = Field(
        default_factory=list,
        description="Every category the source lists, the primary first (arXiv cross-lists); "
        "the category filter matches any of them.",
    )
    has_code: bool = False
    site_score: float | None = Field(None, description="Score the paper site showed, if any.")
    arxiv_id: str | None = None
    doi: str | None = Field(None, description="The paper's DOI (10.…), where the source gave one.")
    comment: str | None = None
    abstract: str
    source: str = Field(description="File the paper was read from.")
    profile: AuthorProfile | None = Field(None, description="Author page the paper came from.")


@dataclass(frozen=True)
class ParseIssue:
    """An entry that could not be turned into a paper; reported, never silently dropped."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class PaperAtLine:
    """A paper and the line of its record, so that checks made after parsing can point at it.

    Records of data files (JSONL) carry ids of their own; when a later record repeats an id,
    possibly in another file, the report names the lines of both records.
    """

    paper: Paper
    line: int


_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise_title(title: str) -> str:
    """Lower-case words without punctuation: the form titles are compared and hashed in."""
    return _NON_ALNUM.sub(" ", title.lower()).strip()


def derived_paper_id(title: str | None, abstract: str) -> str:
    """A readable id that depends only on the paper's content, so re-indexing keeps it.

    A short slug of the title helps a person (or an assistant) recognise the id; the hash of
    the normalised title (or of the abstract when there is no title) keeps it unique.
    """
    basis = normalise_title(title) if title else " ".join(abstract.split())
    digest = hashlib.sha256(basis.encode("utf-8")).hexdigest()[:10]
    slug = "-".join(normalise_title(title).split()[:6]) if title else "untitled"
    return f"{slug}-{digest}"


_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)


def clean_doi(value: str | None) -> str | None:
    """The bare DOI (``10.1000/xyz``), whether written as a URL, ``doi:…`` or plain; None
    for anything that is not one. Every format's DOI goes through here."""
    doi = _DOI_PREFIX.sub("", (value or "").strip()).strip()
    return doi if doi.startswith("10.") else None


def all_categories(paper: Paper) -> list[str]:
    """Every category of a paper: those the source listed, or its one category."""
    return paper.categories or ([paper.category] if paper.category else [])


def embedding_text(paper: Paper) -> str:
    """The text that is embedded for a paper: title and abstract."""
    return f"{paper.title}\n{paper.abstract}" if paper.title else paper.abstract
