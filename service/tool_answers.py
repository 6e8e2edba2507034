"""What the assistant tools answer: a page of papers, brief by default, and where the next starts.

An assistant pays for every token of a tool's answer, and the API's full hits (abstracts,
BibTeX, highlight offsets) are several times what it needs to choose which papers to read. So
the list tools answer ``brief`` hits unless asked for ``full`` ones, and every answer says
how to ask for the next page, in its structured content (``next_offset``) and in its text.
The shapes are defined once, here, and serve as the tools' output schemas too.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from service.citations import CREDITED_AUTHORS, author_credit
from service.ranking import SearchMode, SortOrder
from service.schemas import (
    MAX_OFFSET,
    CitedPaper,
    PaperId,
    RecommendResponse,
    RequestModel,
    SearchHit,
    SearchResponse,
    SimilarPage,
)

# How many ids one get_papers call takes: a page of brief hits at the most an assistant asks for.
MAX_PAPER_IDS = 50
# The longest evidence a brief hit quotes: most matching sentences whole, a long one cut at a
# word, so that one rambling abstract cannot swell a page an assistant pays for.
EVIDENCE_CHARS = 160


class Detail(StrEnum):
    BRIEF = "brief"
    FULL = "full"


class PageRequest(RequestModel):
    """What every list tool takes besides its question: which page, and in how much detail."""

    detail: Detail = Field(
        Detail.BRIEF,
        description="`brief`: id, title, first authors, year, score and one evidence sentence "
        "of each paper (the text cites each in a line); `full`: whole records (abstract, "
        "citation, BibTeX, highlights). Ask get_papers for the full records of the few papers "
        "that matter.",
    )


class PaperIds(RequestModel):
    paper_ids: list[PaperId] = Field(
        min_length=1,
        max_length=MAX_PAPER_IDS,
        description="Paper ids from earlier results, e.g. arxiv:2502.09375; answered in the "
        "order given.",
    )


class BriefPaper(BaseModel):
    """A paper as a list shows it to an assistant: enough to name and pick it. Its one-line
    citation is left to the answer's text (the numbered lines), which carries it anyway:
    made of this title, these authors and this year, it would repeat them a second time."""

    id: str
    label: str = Field(description="The title; where none, `arXiv:<id>` or the paper id.")
    credit: str | None = Field(
        description=f'The first {CREDITED_AUTHORS} authors, "et al." where there are more; '
        "null where none is known."
    )
    year: int | None = Field(description="Null when undated.")
    url: str | None = Field(description="The arXiv abstract page, where an arXiv id is known.")

    @classmethod
    def fields_of(cls, paper: CitedPaper) -> dict[str, object]:
        return {
            "id": paper.id,
            "label": paper.label,
            "credit": paper.credit,
            "year": paper.published.year if paper.published else None,
            "url": paper.url,
        }

    @classmethod
    def of(cls, paper: CitedPaper) -> BriefPaper:
        return cls.model_validate(cls.fields_of(paper))


class BriefHit(BriefPaper):
    score: float = Field(description="Relevance, higher is better (as the API's `score`).")
    evidence: str | None = Field(
        description=f"The abstract sentence that best matches the query, cut at a word with "
        f"'…' past {EVIDENCE_CHARS} characters (for similar papers, the sentence sharing most "
        "of the key terms); null where none does."
    )

    @classmethod
    def of_hit(cls, hit: SearchHit) -> BriefHit:
        evidence = shortened(hit.highlights[0].text) if hit.highlights else None
        return cls.model_validate({**cls.fields_of(hit), "score": hit.score, "evidence": evidence})


class Page(BaseModel):
    """What every list answer carries: its detail and where the next page starts."""

    offset: int = Field(description="Results skipped before these.")
    detail: Detail
    next_offset: int | None = Field(
        description="Call the tool again with the same arguments and this `offset` for the next "
        "page; null when there is no more."
    )


def page_fields(offset: int, total: int, hits: list[SearchHit], detail: Detail) -> dict[str, Any]:
    """The fields every list answer fills the same way: its page, its hits in the detail
    asked for, and where the next page starts."""
    return {
        "offset": offset,
        "total": total,
        "detail": detail,
        "results": hits_in(hits, detail),
        "next_offset": next_offset(offset, len(hits), total),
    }


class SearchAnswer(Page):
    """``search_papers``'s answer: the ``/search`` response, brief or full, with its next page."""

    query: str
    mode: SearchMode
    sort: SortOrder
    k: int
    total: int = Field(description="Papers this query can page through (as `/search` counts).")
    results: list[BriefHit] | list[SearchHit] = Field(
        description="Brief hits, or the API's full hits with `detail=full`."
    )

    @classmethod
    def of(cls, response: SearchResponse, detail: Detail) -> SearchAnswer:
        return cls(
            **response.model_dump(include={"query", "mode", "sort", "k"}),
            **page_fields(response.offset, response.total, response.results, detail),
        )


class SimilarAnswer(Page):
    """``find_similar_papers``'s answer, whether asked by title or id."""

    total: int = Field(description="Papers these results can page through.")
    paper: BriefPaper | CitedPaper = Field(description="The paper the results are similar to.")
    match_score: float | None = Field(
        None, description="How closely a typed title matched it (0-100); null when asked by id."
    )
    results: list[BriefHit] | list[SearchHit] = Field(
        description="Nearest papers, never the paper itself; brief, or full with `detail=full`."
    )

    @classmethod
    def of(
        cls, paper: CitedPaper, match_score: float | None, page: SimilarPage, detail: Detail
    ) -> SimilarAnswer:
        return cls(
            paper=paper if detail is Detail.FULL else BriefPaper.of(paper),
            match_score=match_score,
            **page_fields(page.offset, page.total, page.results, detail),
        )


class RecommendAnswer(Page):
    """``recommend_papers``'s answer: papers like the positive examples, never one of them."""

    positive: list[str]
    negative: list[str]
    total: int = Field(description="Papers these results can page through.")
    results: list[BriefHit] | list[SearchHit] = Field(
        description="Most like the examples first; brief, or full with `detail=full`."
    )

    @classmethod
    def of(cls, response: RecommendResponse, detail: Detail) -> RecommendAnswer:
        return cls(
            positive=response.positive,
            negative=response.negative,
            **page_fields(response.offset, response.total, response.results, detail),
        )


class PapersAnswer(BaseModel):
    """``get_papers``'s answer: the full records, in the order they were asked for."""

    papers: list[CitedPaper]


def shortened(text: str, limit: int = EVIDENCE_CHARS) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    return cut[: cut.rfind(" ")].rstrip(" ,;:") + "…" if " " in cut else cut + "…"


def short_reference(paper: CitedPaper) -> str:
    """``Yongchun Zhu et al. (2025). Title.``: the first author, the year and the title,
    the way a list cites a paper in passing; the full citation is one get_papers call away."""
    year = f" ({paper.published.year})" if paper.published else ""
    first = author_credit(paper, first=1)
    return f"{first}{year}. {paper.label}." if first else f"{paper.label}{year}."


def hits_in(hits: list[SearchHit], detail: Detail) -> list[BriefHit] | list[SearchHit]:
    return hits if detail is Detail.FULL else [BriefHit.of_hit(hit) for hit in hits]


def next_offset(offset: int, shown: int, total: int) -> int | None:
    """Where the next page starts, of ``total`` results: null when there is none, or when
    it lies past the deepest offset a tool takes (an assistant is told to stop rather than be
    refused)."""
    following = offset + shown
    return following if shown and following < total and following <= MAX_OFFSET else None


def next_page_line(tool: str, page: Page) -> str:
    """The text answer's last line: how to get more, in words an assistant acts on."""
    if page.next_offset is None:
        return "No more results."
    return f"More: call {tool} with the same arguments and offset={page.next_offset}."
